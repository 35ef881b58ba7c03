"""The national playbook across agencies: an incident's indicator hunted in every tenant's events
(a real SQLite event store holding three agencies' events), linked incidents opened at exactly the
tenants that saw it, those tenants mailed (aiosmtpd on loopback) after the national approval, TLP
respected, and a resumed run that opens and mails nothing twice."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest

from config.tenants import TenantScope
from detections.intel import ImportOptions, IndicatorType, Tlp
from detections.intel.model import make_indicator
from pipeline.records import Event, Incident
from pipeline.store.base import AlertQuery, IncidentQuery
from playbooks import LIBRARY, ConnectorRegistry, Playbook, RunState, StepState, load_playbook_text, load_playbooks
from tests.factories import T0, make_event
from tests.playbooks.conftest import Agencies, Mailbox, Receiver

NOW = T0 + timedelta(minutes=5)
LATER = NOW + timedelta(minutes=10)
ALL = TenantScope.everything()
BAD = "203.0.113.77"


@pytest.fixture
def national() -> Playbook:
    playbooks, errors = load_playbooks([LIBRARY])
    assert errors == []
    return next(p for p in playbooks if p.id == "indicator-across-agencies")


def connectors(receiver: Receiver, mailbox: Mailbox) -> ConnectorRegistry:
    return ConnectorRegistry.from_config({
        "http": {"kind": "http", "url": receiver.url, "retries": 0},
        "mail": {"kind": "smtp", "host": "127.0.0.1", "port": mailbox.port, "from": "govsoc@soc.gov.vn",
                 "security": "none", "retries": 0,
                 "recipients": {"danang": ["soc@danang.gov.vn"], "hanoi-bavi": ["it@bavi.hanoi.gov.vn"],
                                "hue": ["soc@hue.gov.vn"]}}})


def three_agencies(agencies: Agencies) -> list[Event]:
    """Hà Nội (and its commune Ba Vì), Đà Nẵng and Huế: who saw 203.0.113.77, in which field, when."""
    events = [
        make_event("hanoi", 1, source__ip=BAD, message="the origin's own event"),
        make_event("danang", 2, source__ip=BAD, message="ssh from bad"),
        make_event("danang", 3, destination__ip=BAD, message="callback to bad"),
        make_event("hanoi-bavi", 4, related__ip=[BAD, "10.0.0.4"], message="seen in related.ip"),
        make_event("hue", 5, source__ip="198.51.100.5", message="another address"),
        make_event("hue", 6, source__ip=BAD, at=T0 - timedelta(days=40), message="too long ago"),
        make_event("national", 7, source__ip="192.0.2.1", message="nothing here"),
    ]
    agencies.events.write(events)
    return events


def intel_incident(agencies: Agencies, tlp: Tlp, publisher: str = "national") -> Incident:
    indicator = make_indicator(ImportOptions(publisher=publisher, source="test"), IndicatorType.IPV4, BAD, tlp=tlp)
    agencies.intel.publish([indicator])
    return agencies.incident("hanoi", rule_id=f"intel:{indicator.id}", entity={"source.ip": BAD})


def linked_at(agencies: Agencies, origin: Incident) -> dict[str, list[Incident]]:
    found: dict[str, list[Incident]] = {}
    for incident in agencies.incidents.incidents(ALL, IncidentQuery(limit=100)):
        if f"linked.incident:{origin.id}" in incident.tags:
            found.setdefault(incident.tenant, []).append(incident)
    return found


def test_linked_incidents_open_at_exactly_the_tenants_that_saw_the_indicator(
        agencies: Agencies, national: Playbook, receiver: Receiver, mailbox: Mailbox) -> None:
    events = three_agencies(agencies)
    origin = intel_incident(agencies, Tlp.GREEN)
    runner = agencies.runner(connectors(receiver, mailbox))
    run = runner.start(origin, national, NOW)
    assert run.state is RunState.WAITING_APPROVAL and run.cursor == "approve-share"
    hunt = run.step("hunt").output
    assert hunt["tenants"] == ["danang", "hanoi-bavi"] and hunt["hits"] == {"danang": 2, "hanoi-bavi": 1}
    assert hunt["indicators"] == [BAD] and hunt["found"] is True and hunt["withheld"] == 0
    linked = linked_at(agencies, origin)
    assert sorted(linked) == ["danang", "hanoi-bavi"]  # not hue (too long ago), not national, not hanoi itself
    assert {t: [i.id for i in found] for t, found in linked.items()} == hunt["linked"]
    [danang] = linked["danang"]
    assert danang.entity == {"destination.ip": BAD} and danang.severity == origin.severity  # one per value
    [alert] = agencies.incidents.alerts(ALL, AlertQuery(incident_id=danang.id))
    assert set(alert.event_ids) == {events[1].id, events[2].id}
    [note] = agencies.incidents.comments(ALL, danang.id)
    assert note.text.startswith(f"Linked to incident {origin.id} at hanoi: {BAD}")
    assert any(c.text == "Hunt across agencies: found at danang (2 event(s)), hanoi-bavi (1 event(s)); linked "
               "incidents opened there." for c in agencies.incidents.comments(ALL, origin.id))
    links = [a for a in agencies.incidents.audit_trail(ALL, limit=1000) if a.action == "incident.linked"]
    assert sorted(a.tenant for a in links) == ["danang", "hanoi-bavi"]
    assert mailbox.messages == [] and receiver.requests == []  # nothing leaves before the approval

    done = runner.approve(run.id, "approve-share", "quang", "national_coordinator", LATER, tenant="national")
    assert done.state is RunState.DONE
    assert sorted(to for _, tos in mailbox.envelopes for to in tos) == ["it@bavi.hanoi.gov.vn", "soc@danang.gov.vn"]
    subjects = {m["Subject"] for m in mailbox.messages}
    assert subjects == {f"[govsoc] Indicator from incident {origin.id} seen in your events"}
    assert f"Indicators: {BAD}" in mailbox.messages[0].get_content()
    assert done.step("notify-agencies").output["count"] == 2
    assert [r["json"]["action"] for r in receiver.requests] == ["notify", "block_indicator"]


def test_a_tlp_amber_indicator_of_hanoi_is_not_hunted_into_its_siblings(agencies: Agencies,
                                                                        national: Playbook) -> None:
    three_agencies(agencies)
    origin = intel_incident(agencies, Tlp.AMBER, publisher="hanoi")
    run = agencies.runner().start(origin, national, NOW)
    hunt = run.step("hunt").output
    assert hunt["tenants"] == ["hanoi-bavi"] and hunt["withheld"] == 1  # Đà Nẵng saw it but may not know it
    assert sorted(linked_at(agencies, origin)) == ["hanoi-bavi"]


def test_a_resumed_hunt_and_mail_open_and_send_nothing_twice(agencies: Agencies, national: Playbook,
                                                             receiver: Receiver, mailbox: Mailbox) -> None:
    three_agencies(agencies)
    origin = intel_incident(agencies, Tlp.GREEN)
    run = agencies.runner(connectors(receiver, mailbox)).start(origin, national, NOW)
    agencies.runner(connectors(receiver, mailbox)).approve(run.id, "approve-share", "quang", "national_coordinator",
                                                           LATER, tenant="national")
    assert len(mailbox.messages) == 2
    # The process died after the hunt and the mails were done, before their steps were recorded:
    with sqlite3.connect(agencies.runs.path) as db:
        db.execute("UPDATE playbook_runs SET state = 'running', cursor = 'hunt' WHERE id = ?", (run.id,))
        db.execute("UPDATE playbook_steps SET state = 'running' WHERE run_id = ? AND step_id IN "
                   "('hunt', 'notify-agencies')", (run.id,))
        db.execute("UPDATE playbook_steps SET state = 'done', output = '{\"decision\": \"approved\"}' "
                   "WHERE run_id = ? AND step_id = 'approve-share'", (run.id,))
    resumed = agencies.runner(connectors(receiver, mailbox)).resume(run.id, LATER + timedelta(minutes=1))
    assert resumed.state is RunState.DONE
    assert {t: len(found) for t, found in linked_at(agencies, origin).items()} == {"danang": 1, "hanoi-bavi": 1}
    assert len(mailbox.messages) == 2 and len(receiver.requests) == 2  # nothing sent again
    assert all(r["reused"] for r in resumed.step("notify-agencies").output["sent"].values())
    [danang] = linked_at(agencies, origin)["danang"]
    assert len(agencies.incidents.comments(ALL, danang.id)) == 1  # the link comment, once


def test_the_hunt_can_look_without_opening(agencies: Agencies) -> None:
    three_agencies(agencies)
    origin = agencies.incident("hanoi", entity={"source.ip": BAD})  # a Sigma incident: no TLP to respect
    playbook = load_playbook_text("""\
id: look
name: Look
steps:
  - {id: hunt, type: hunt_indicators, before: 1h, open_incidents: false}
""")
    run = agencies.runner().start(origin, playbook, NOW)
    assert run.step("hunt").state is StepState.DONE
    assert run.step("hunt").output["would_open"] == ["danang", "hanoi-bavi"] and linked_at(agencies, origin) == {}
