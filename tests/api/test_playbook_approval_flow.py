"""Issue 8's acceptance for playbooks, through the API over real parts: a run against a webhook
server and an SMTP server on loopback (aiosmtpd) sends exactly the requests and mails expected,
stops at its approval chain, continues when the approvers decide through the API's approve route,
and survives restarts in the middle (a new runner and app over the same files) without sending
any side effect twice."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import token_sha256
from config.settings import ApiToken, IncidentSettings, Role, TenantConfig, TenantKind
from config.tenants import TenantScope, TenantTree
from detections.incidents import IncidentLifecycle, IncidentService
from pipeline.records import Incident
from pipeline.store.base import EventStore, IncidentStore
from pipeline.store.registry import open_event_store, open_incident_store
from playbooks import (
    ConnectorRegistry,
    PlaybookRunner,
    PlaybookSources,
    RunState,
    SqliteRunStore,
    load_playbook_text,
    runs_db_path,
)
from tests.factories import T0, make_alert
from tests.playbooks.conftest import Mailbox, Receiver, free_port, http_receiver, smtp_server

TREE = TenantTree.from_config([
    TenantConfig(id="national", name="Trung tâm quốc gia", kind=TenantKind.NATIONAL),
    TenantConfig(id="hanoi", name="Hà Nội", parent="national", kind=TenantKind.PROVINCE),
    TenantConfig(id="danang", name="Đà Nẵng", parent="national", kind=TenantKind.PROVINCE),
])
TOKENS = {("hanoi", Role.ANALYST): "t-hanoi-analyst", ("hanoi", Role.AUDITOR): "t-hanoi-auditor",
          ("danang", Role.ANALYST): "t-danang-analyst",
          ("national", Role.NATIONAL_COORDINATOR): "t-national-coordinator"}
NOW = T0 + timedelta(minutes=5)

PLAYBOOK = load_playbook_text("""\
id: block-with-notice
name: Block with notice
steps:
  - id: facts
    type: enrich
  - id: heads-up
    type: notify_email
    connector: mail
    automatic: true
    to: [soc@hanoi.gov.vn]
    subject: "Incident ${incident.id}: ${incident.title}"
    body: "${steps.facts.alert_count} alert(s) from ${entity.source.address}; a block awaits approval."
  - id: approve
    type: approval
    roles: [analyst, national_coordinator]
    levels: [tenant, parent]
  - id: tell-owner
    type: notify_webhook
    connector: http
    body: {incident: "${incident.id}", decision: "${steps.approve.decision}"}
  - id: mail-owner
    type: notify_email
    connector: mail
    to: [owner@hanoi.gov.vn]
    subject: "Blocking ${entity.source.address}"
    body: "Approved by ${steps.approve.approvers}."
  - id: block
    type: contain
    connector: http
    action: block_address
    target: "${entity.source.address}"
    retries: 0
  - id: done
    type: comment
    text: "Blocked ${entity.source.address}."
""")


@dataclass
class Deployment:
    """The files a deployment keeps, and the servers outside it; `process()` is one process's life."""

    url: str
    receiver: Receiver
    mailbox: Mailbox

    @contextmanager
    def process(self) -> Iterator[tuple[TestClient, PlaybookRunner, IncidentStore]]:
        """A fresh process: stores, runner and app opened over the same files, closed at the end."""
        events: EventStore = open_event_store(self.url)
        incidents: IncidentStore = open_incident_store(self.url)
        runs = SqliteRunStore(runs_db_path(self.url))
        connectors = ConnectorRegistry.from_config({
            "http": {"kind": "http", "url": self.receiver.url, "retries": 0, "timeout_s": 5},
            "mail": {"kind": "smtp", "host": "127.0.0.1", "port": self.mailbox.port, "from": "govsoc@soc.gov.vn",
                     "security": "none", "retries": 0}})
        runner = PlaybookRunner(incidents, IncidentLifecycle(incidents, IncidentSettings()), connectors, TREE, runs,
                                sources=PlaybookSources(events=events))
        tokens = tuple(ApiToken(name=f"{role.value}-{tenant}", tenant=tenant, role=role, sha256=token_sha256(token))
                       for (tenant, role), token in TOKENS.items())
        app = create_app(tree=TREE, tokens=tokens, events_store=events, incidents_store=incidents,
                         playbook_runner=runner)
        try:
            with TestClient(app) as client:
                yield client, runner, incidents
        finally:
            runs.close()
            incidents.close()
            events.close()


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    with http_receiver() as receiver, smtp_server() as mailbox:
        yield Deployment(f"sqlite:///{tmp_path / 'govsoc.db'}", receiver, mailbox)


def decide(client: TestClient, tenant: str, role: Role, run_id: str, verdict: str = "approve") -> Any:
    return client.post(f"/api/v1/runs/{run_id}/steps/approve/{verdict}",
                       headers={"Authorization": f"Bearer {TOKENS[(tenant, role)]}"})


def seed(incidents: IncidentStore) -> Incident:
    [incident] = IncidentService(incidents, TREE, IncidentSettings()).ingest(
        [make_alert("hanoi", 0), make_alert("hanoi", 1)])
    return incident


def test_a_run_waits_for_its_chain_continues_through_the_api_and_survives_restarts(deployment: Deployment) -> None:
    receiver, mailbox = deployment.receiver, deployment.mailbox
    with deployment.process() as (_client, runner, incidents):
        incident = seed(incidents)
        run = runner.start(incident, PLAYBOOK, NOW)
    # Before any approval: only the automatic heads-up went out.
    assert run.state is RunState.WAITING_APPROVAL and run.cursor == "approve"
    assert receiver.requests == []
    [heads_up] = mailbox.messages
    assert mailbox.envelopes == [("govsoc@soc.gov.vn", ["soc@hanoi.gov.vn"])]
    assert heads_up["Subject"] == f"Incident {incident.id}: {incident.title}"
    assert heads_up.get_content().strip() == "2 alert(s) from 203.0.113.77; a block awaits approval."

    with deployment.process() as (client, _runner, _incidents):  # a restart while the run waits
        assert decide(client, "danang", Role.ANALYST, run.id).status_code == 404  # a sibling never sees it
        assert decide(client, "hanoi", Role.AUDITOR, run.id).status_code == 403  # may not decide
        first = decide(client, "hanoi", Role.ANALYST, run.id)
        assert first.status_code == 200, first.text
        assert first.json()["state"] == "waiting_approval" and first.json()["waiting_on"] == "approve"
        again = decide(client, "hanoi", Role.ANALYST, run.id)
        assert again.status_code == 409 and "has already decided on step 'approve'" in again.json()["detail"]
        assert receiver.requests == [] and len(mailbox.messages) == 1
        receiver.statuses = [200, 503]  # the owner's webhook answers; the firewall is down
        second = decide(client, "national", Role.NATIONAL_COORDINATOR, run.id)
        assert second.status_code == 200, second.text
        body = second.json()
        assert body["state"] == "failed" and body["waiting_on"] == "block"
        steps = {s["step_id"]: s for s in body["steps"]}
        assert steps["approve"]["output"]["chain"] == {"tenant": "analyst-hanoi",
                                                      "parent": "national_coordinator-national"}
        assert "HTTP 503" in steps["block"]["error"]
    assert [r["json"]["action"] for r in receiver.requests] == ["notify", "block_address"]
    assert receiver.requests[0]["json"]["payload"] == {"incident": incident.id, "decision": "approved"}
    assert [tos for _, tos in mailbox.envelopes] == [["soc@hanoi.gov.vn"], ["owner@hanoi.gov.vn"]]
    assert mailbox.messages[1].get_content().strip() == \
        "Approved by analyst-hanoi, national_coordinator-national."

    with deployment.process() as (client, runner, incidents):  # the worker restarts and resumes the run
        resumed = runner.resume(run.id, NOW + timedelta(minutes=30))
        assert resumed.state is RunState.DONE
        assert resumed.step("tell-owner").output["status"] == 200 and resumed.step("block").output["status"] == 200
        listed = client.get(f"/api/v1/incidents/{incident.id}/runs",
                            headers={"Authorization": f"Bearer {TOKENS[('hanoi', Role.ANALYST)]}"}).json()
        assert [r["state"] for r in listed["runs"]] == ["done"]
        texts = [c.text for c in incidents.comments(TenantScope.everything(), incident.id)]
        assert texts == ["Blocked 203.0.113.77."]
    # Exactly: one webhook, the block twice under one key (refused once, then done), two mails.
    assert [r["json"]["action"] for r in receiver.requests] == ["notify", "block_address", "block_address"]
    keys = [r["headers"]["Idempotency-Key"] for r in receiver.requests]
    assert keys == [f"{run.id}:tell-owner", f"{run.id}:block", f"{run.id}:block"]
    assert len(mailbox.messages) == 2
    assert {m["X-Idempotency-Key"] for m in mailbox.messages} == {f"{run.id}:heads-up", f"{run.id}:mail-owner"}


def test_a_mail_whose_sending_died_is_resent_with_the_same_message_id(deployment: Deployment) -> None:
    """The SMTP server is down when the approval arrives: the run fails at the mail with the mail
    recorded as started; after a restart it is sent once, under the Message-ID it had."""
    with deployment.process() as (client, runner, incidents):
        run = runner.start(seed(incidents), PLAYBOOK, NOW)
    [heads_up] = deployment.mailbox.messages
    down = Deployment(deployment.url, deployment.receiver, Mailbox(port=free_port()))  # nobody listens
    with down.process() as (client, runner, _incidents):
        decide(client, "hanoi", Role.ANALYST, run.id)
        answer = decide(client, "national", Role.NATIONAL_COORDINATOR, run.id).json()
        assert answer["state"] == "failed" and answer["waiting_on"] == "mail-owner"
        recorded = runner.runs.side_effect(f"{run.id}:mail-owner")
        assert recorded is not None and recorded.state == "started"
    assert len(deployment.receiver.requests) == 1  # the webhook before it went out once
    with deployment.process() as (_client, runner, _incidents):
        resumed = runner.resume(run.id, NOW + timedelta(minutes=30))
    assert resumed.state is RunState.DONE
    assert deployment.mailbox.messages[0] is heads_up and len(deployment.mailbox.messages) == 2
    owner = deployment.mailbox.messages[1]
    digest = hashlib.sha256(f"{run.id}:mail-owner".encode()).hexdigest()[:32]
    assert owner["Message-ID"] == resumed.step("mail-owner").output["body"]["message_id"] == \
        f"<{digest}@govsoc.playbooks>"
    assert [r["json"]["action"] for r in deployment.receiver.requests] == ["notify", "block_address"]
