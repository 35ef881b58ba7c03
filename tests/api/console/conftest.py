"""The console over tests/api/door.py's app (real stores, two sibling tenants), plus hostile evidence.

`console` installs the console on the door's app, then stores at Hà Nội an incident whose events,
alert, rule title and comment carry `<script>` and markup (`HOSTILE`), so every page can be
checked for escaping. `signed_in(client, name)` signs in through the console's own form.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from config.settings import IncidentSettings
from detections.incidents import IncidentService
from detections.incidents.lifecycle import IncidentLifecycle
from pipeline.records import Alert, DetectionKind, Severity, utc_now
from tests.api.door import PASSWORD, TREE, Door, open_door
from tests.factories import make_event

HOSTILE = "<script>alert(1)</script><b onmouseover=x>bold</b>"
HOSTILE_RULE = "govsoc.test.\"><svg onload=alert(2)>"


@dataclass
class Console:
    door: Door
    client: TestClient
    hostile_incident: str
    hostile_event: str


def seed_hostile(door: Door) -> tuple[str, str]:
    """An incident at Hà Nội whose evidence is hostile text; returns (incident id, event id)."""
    app = door.client.app
    assert isinstance(app, FastAPI)
    events, incidents = app.state.events, app.state.incidents
    now = utc_now()
    evil = make_event("hanoi", 900, at=now - timedelta(minutes=5), message=f"login {HOSTILE}",
                      source__ip="203.0.113.99", user__name=HOSTILE, event__original=f"sshd: {HOSTILE}")
    events.write([evil])
    alert = Alert(id=Alert.make_id("hanoi", HOSTILE_RULE, {"user.name": HOSTILE}, evil.id), tenant="hanoi",
                  timestamp=evil.timestamp, kind=DetectionKind.SIGMA, rule_id=HOSTILE_RULE,
                  rule_title=f"Rule {HOSTILE}", severity=Severity.CRITICAL, event_ids=(evil.id,),
                  entity={"user.name": HOSTILE}, tags=("attack.t1059.001",), description=HOSTILE)
    [incident] = IncidentService(incidents, TREE, IncidentSettings()).ingest([alert])
    IncidentLifecycle(incidents, IncidentSettings()).comment(TREE.scope("hanoi"), incident.id, f"note {HOSTILE}",
                                                            actor="analyst-hanoi", now=now)
    return incident.id, evil.id


def sign_in(client: TestClient, name: str, password: str = PASSWORD) -> str:
    """Sign in through the form at `/`; returns the session's CSRF token (read from the next page)."""
    form = client.get("/")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token, form.text
    answer = client.post("/login", data={"login_token": token.group(1), "name": name, "password": password},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    page = client.get("/incidents")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf, page.text
    return csrf.group(1)


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    with open_door(tmp_path) as door:
        app = door.client.app
        assert isinstance(app, FastAPI)
        incident_id, event_id = seed_hostile(door)
        yield Console(door, door.client, incident_id, event_id)
