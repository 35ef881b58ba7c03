"""Playbook runs on real incidents, a real SQLite store and a real HTTP receiver on loopback.

The shipped brute-force playbook: enrich, comment, triage, approval, block the source address
through the `http` connector, comment the outcome.
"""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from config.settings import IncidentSettings, TenantConfig, TenantKind
from config.tenants import TenantScope, TenantTree
from detections.incidents import IncidentLifecycle, IncidentService
from pipeline.records import Incident, IncidentState
from pipeline.store.base import IncidentQuery, IncidentStore
from pipeline.store.registry import open_incident_store
from playbooks import (
    LIBRARY,
    ConnectorRegistry,
    HttpConnector,
    Playbook,
    PlaybookError,
    PlaybookRunner,
    RunState,
    SqliteRunStore,
    StepState,
    load_playbook_text,
    load_playbooks,
    runs_db_path,
)
from playbooks.model import STEP_TYPES
from tests.factories import T0, make_alert, make_event
from tests.playbooks.conftest import Agencies, Mailbox, Receiver

TREE = TenantTree.from_config([
    TenantConfig(id="national", name="N", kind=TenantKind.NATIONAL),
    TenantConfig(id="hanoi", name="HN", parent="national", kind=TenantKind.PROVINCE),
])
ALL = TenantScope.everything()
NOW = T0 + timedelta(minutes=5)
LATER = NOW + timedelta(minutes=10)


@dataclass
class World:
    url: str
    store: IncidentStore
    runs: SqliteRunStore
    incident: Incident
    receiver: Receiver

    def runner(self, url: str | None = None, runs: SqliteRunStore | None = None) -> PlaybookRunner:
        """A runner as a fresh process would build it (a restart is a new runner on the same files)."""
        connectors = ConnectorRegistry({"http": HttpConnector(name="http", url=url or self.receiver.url, retries=0,
                                                             timeout_s=2.0)})
        return PlaybookRunner(self.store, IncidentLifecycle(self.store, IncidentSettings()), connectors, TREE,
                              runs or self.runs)

    def fresh_incident(self) -> Incident:
        found = self.store.incident(ALL, self.incident.id)
        assert found is not None
        return found


@pytest.fixture
def world(tmp_path: Path, receiver: Receiver) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'govsoc.db'}"
    store = open_incident_store(url)
    service = IncidentService(store, TREE, IncidentSettings())
    [incident] = service.ingest([make_alert("hanoi", 0), make_alert("hanoi", 1)])
    runs = SqliteRunStore(runs_db_path(url))
    yield World(url, store, runs, incident, receiver)
    runs.close()
    store.close()


@pytest.fixture
def brute_force() -> Playbook:
    playbooks, errors = load_playbooks([LIBRARY])
    assert errors == []
    return next(p for p in playbooks if p.id == "brute-force-login")


def states(world: World, run_id: str) -> dict[str, StepState]:
    run = world.runs.run(run_id)
    assert run is not None
    return {s.step_id: s.state for s in run.steps}


def comments(world: World) -> list[str]:
    return [c.text for c in reversed(world.store.comments(ALL, world.incident.id))]


def test_a_run_stops_at_the_approval_and_sends_nothing_before_it(world: World, brute_force: Playbook) -> None:
    run = world.runner().start(world.incident, brute_force, NOW)
    assert run.state is RunState.WAITING_APPROVAL and run.cursor == "approve-block"
    assert world.receiver.requests == []
    assert states(world, run.id) == {"enrich": StepState.DONE, "note": StepState.DONE, "triage": StepState.DONE,
                                     "approve-block": StepState.WAITING_APPROVAL, "block-source": StepState.PENDING,
                                     "outcome-note": StepState.PENDING}
    assert run.step("enrich").output["alert_count"] == 2
    assert world.fresh_incident().state is IncidentState.TRIAGE
    assert comments(world) == ["Brute force from 203.0.113.77: 2 alert(s) so far."]


def test_approval_sends_exactly_the_expected_request(world: World, brute_force: Playbook) -> None:
    runner = world.runner()
    run = runner.start(world.incident, brute_force, NOW)
    done = runner.approve(run.id, "approve-block", "lan", "analyst", LATER)
    assert done.state is RunState.DONE and done.cursor is None
    [sent] = world.receiver.requests
    key = f"{run.id}:block-source"
    assert sent["headers"]["Idempotency-Key"] == key
    assert sent["json"] == {"action": "block_address", "target": "203.0.113.77",
                            "payload": {"incident_id": world.incident.id}, "idempotency_key": key}
    assert done.step("block-source").output == {"status": 200, "body": {"ok": True}, "attempts": 1}
    assert comments(world)[-1] == "Blocking 203.0.113.77: approved."
    actions = [a.action for a in reversed(world.store.audit_trail(ALL, run.id, limit=1000))]
    assert actions[0] == "playbook.run.start" and actions[-1] == "playbook.run.done"
    assert "playbook.approval.approve" in actions and actions.count("playbook.step.done") == 6
    assert world.store.verify_audit().ok


def test_approval_needs_the_right_role_and_a_waiting_run(world: World, brute_force: Playbook) -> None:
    runner = world.runner()
    run = runner.start(world.incident, brute_force, NOW)
    with pytest.raises(PlaybookError, match="needs one of the roles analyst, admin, not 'auditor'"):
        runner.approve(run.id, "approve-block", "minh", "auditor", LATER)
    with pytest.raises(PlaybookError, match="not waiting for approval at step 'block-source'"):
        runner.approve(run.id, "block-source", "lan", "analyst", LATER)
    assert world.receiver.requests == []


def test_a_chain_of_two_approvers_is_needed_when_count_is_two(world: World) -> None:
    playbook = load_playbook_text("""\
id: two-people
name: Two people
steps:
  - id: ask
    type: approval
    roles: [admin, national_coordinator]
    count: 2
  - id: isolate
    type: contain
    connector: http
    action: isolate_host
    target: "${incident.id}"
""")
    runner = world.runner()
    run = runner.start(world.incident, playbook, NOW)
    run = runner.approve(run.id, "ask", "lan", "admin", LATER)
    with pytest.raises(PlaybookError, match="'lan' has already decided on step 'ask'"):
        runner.approve(run.id, "ask", "lan", "admin", LATER)  # the same person twice is refused
    with pytest.raises(PlaybookError, match="'lan' has already decided"):
        runner.approve(run.id, "ask", "lan", "national_coordinator", LATER)  # under another role too
    run = runner.run(run.id)
    assert run.state is RunState.WAITING_APPROVAL and world.receiver.requests == []
    assert [a["user"] for a in run.step("ask").output["approvals"]] == ["lan"]
    run = runner.approve(run.id, "ask", "hoa", "national_coordinator", LATER)
    assert run.state is RunState.DONE and len(world.receiver.requests) == 1
    assert run.step("ask").output == {"decision": "approved", "approvers": ["lan", "hoa"]}  # in the order they approved


def test_rejection_skips_the_side_effect_and_the_run_goes_on(world: World, brute_force: Playbook) -> None:
    runner = world.runner()
    run = runner.start(world.incident, brute_force, NOW)
    done = runner.reject(run.id, "approve-block", "lan", "admin", LATER, reason="a partner's scanner")
    assert done.state is RunState.DONE
    assert world.receiver.requests == []
    assert done.step("block-source").state is StepState.SKIPPED
    assert comments(world)[-1] == "Blocking 203.0.113.77: rejected."


def test_dry_run_sends_nothing_and_changes_nothing(world: World, brute_force: Playbook) -> None:
    run = world.runner().start(world.incident, brute_force, NOW, dry_run=True)
    assert run.state is RunState.DONE
    assert world.receiver.requests == []
    assert world.fresh_incident().state is IncidentState.NEW and comments(world) == []
    assert run.step("block-source").output["would_send"]["target"] == "203.0.113.77"
    assert run.step("note").output["would_comment"].startswith("Brute force from 203.0.113.77")


def test_starting_the_same_run_twice_runs_it_once(world: World, brute_force: Playbook) -> None:
    runner = world.runner()
    first = runner.start(world.incident, brute_force, NOW)
    second = runner.start(world.incident, brute_force, NOW)
    assert first.id == second.id and len(world.runs.runs()) == 1
    assert len(comments(world)) == 1


def test_a_completed_side_effect_is_never_repeated_on_resume(world: World, brute_force: Playbook) -> None:
    runner = world.runner()
    run = runner.start(world.incident, brute_force, NOW)
    runner.approve(run.id, "approve-block", "lan", "analyst", LATER)
    assert len(world.receiver.requests) == 1
    # The process died after the side effect was marked done but before its step was:
    with sqlite3.connect(world.runs.path) as db:
        db.execute("UPDATE playbook_runs SET state = 'running', cursor = 'block-source' WHERE id = ?", (run.id,))
        db.execute("UPDATE playbook_steps SET state = 'running' WHERE run_id = ? AND step_id IN "
                   "('block-source', 'outcome-note')", (run.id,))
    restarted = SqliteRunStore(world.runs.path)
    try:
        resumed = world.runner(runs=restarted).resume(run.id, LATER + timedelta(minutes=1))
    finally:
        restarted.close()
    assert resumed.state is RunState.DONE
    assert len(world.receiver.requests) == 1  # not sent again
    assert resumed.step("block-source").output["reused"] is True
    assert comments(world).count("Blocking 203.0.113.77: approved.") == 1  # re-run comment is the same one


def test_a_sweep_resumes_only_runs_left_running_and_idle(world: World, brute_force: Playbook) -> None:
    """`resume_interrupted`: what `govsoc up` runs at start (idle_for 0) and the playbook workers
    every minute (idle 5 minutes: a run another process is advancing is left to it)."""
    runner = world.runner()
    run = runner.start(world.incident, brute_force, NOW)
    runner.approve(run.id, "approve-block", "lan", "analyst", LATER)
    with sqlite3.connect(world.runs.path) as db:  # cut off after the approval, before the block was sent
        db.execute("UPDATE playbook_runs SET state = 'running', cursor = 'block-source' WHERE id = ?", (run.id,))
        db.execute("UPDATE playbook_steps SET state = 'pending' WHERE run_id = ? AND step_id IN "
                   "('block-source', 'outcome-note')", (run.id,))
    world.receiver.requests.clear()
    with sqlite3.connect(world.runs.path) as db:
        db.execute("DELETE FROM playbook_side_effects WHERE run_id = ?", (run.id,))
    assert runner.resume_interrupted(LATER + timedelta(minutes=1)) == []  # updated a minute ago: not idle
    [resumed] = runner.resume_interrupted(LATER + timedelta(minutes=6))
    assert resumed.id == run.id and resumed.state is RunState.DONE
    assert len(world.receiver.requests) == 1
    assert runner.resume_interrupted(LATER + timedelta(minutes=20), idle_for=timedelta(0)) == []  # nothing left


def test_a_side_effect_started_but_not_finished_is_resent_with_the_same_key(world: World,
                                                                            brute_force: Playbook) -> None:
    with socket.socket() as s:  # a port nobody listens on: the call dies after it was recorded as started
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    run = world.runner(url=dead).start(world.incident, brute_force, NOW)
    failed = world.runner(url=dead).approve(run.id, "approve-block", "lan", "analyst", LATER)
    assert failed.state is RunState.FAILED and failed.step("block-source").state is StepState.FAILED
    recorded = world.runs.side_effect(f"{run.id}:block-source")
    assert recorded is not None and recorded.state == "started"
    resumed = world.runner().resume(run.id, LATER + timedelta(minutes=1))
    assert resumed.state is RunState.DONE
    [sent] = world.receiver.requests
    assert sent["headers"]["Idempotency-Key"] == f"{run.id}:block-source"
    again = world.runner().resume(run.id, LATER + timedelta(minutes=2))
    assert again.state is RunState.DONE and len(world.receiver.requests) == 1


def test_runs_are_kept_next_to_the_incident_database(tmp_path: Path) -> None:
    assert runs_db_path(f"sqlite:///{tmp_path / 'govsoc.db'}") == tmp_path / "playbook_runs.db"
    assert runs_db_path("sqlite:///govsoc-data/govsoc.db") == Path("govsoc-data/playbook_runs.db")
    with pytest.raises(PlaybookError, match="not 'elasticsearch'"):
        runs_db_path("elasticsearch://localhost:9200")


def test_escalation_is_audited_for_the_parent_and_commented(world: World) -> None:
    playbook = load_playbook_text("""\
id: up
name: Up
steps:
  - id: up
    type: escalate
    to: national
    reason: "needs the national centre (${incident.severity})"
""")
    run = world.runner().start(world.incident, playbook, NOW)
    assert run.step("up").output == {"escalated_to": "national"}
    assert comments(world) == ["Escalated to national: needs the national centre (high)"]
    escalations = [a for a in world.store.audit_trail(ALL, world.incident.id) if a.action == "incident.escalate"]
    assert [a.tenant for a in escalations] == ["national"]


def test_a_template_naming_an_unknown_value_fails_the_step(world: World) -> None:
    playbook = load_playbook_text("""\
id: bad-template
name: Bad
steps:
  - id: say
    type: comment
    text: "host ${entity.host.name}"
""")
    run = world.runner().start(world.incident, playbook, NOW)
    assert run.state is RunState.FAILED
    assert "unknown value ${entity.host.name}" in run.step("say").error


def test_every_step_type_runs_dry(agencies: Agencies, receiver: Receiver, mailbox: Mailbox) -> None:
    """A dry run through one step of each type: every type in the schema has a handler, the
    read-only steps read, and nothing is sent, mailed, changed or opened."""
    agencies.events.write([make_event("danang", 1, source__ip="203.0.113.77")])
    incident = agencies.incident("hanoi")
    playbook = load_playbook_text("""\
id: every-type
name: Every type
steps:
  - {id: enrich, type: enrich, sources: [incident, tenant, alerts, intel]}
  - {id: related, type: query, before: 1d}
  - {id: hunt, type: hunt_indicators}
  - {id: say, type: comment, text: "x"}
  - {id: give, type: assign, assignee: lan}
  - {id: work, type: set_state, state: in_progress}
  - {id: up, type: escalate, to: parent}
  - {id: ask, type: approval, roles: [admin], levels: [tenant, parent]}
  - {id: tell, type: notify_webhook, connector: http, body: {incident: "${incident.id}"}}
  - {id: mail, type: notify_email, connector: mail, to: [soc@hanoi.gov.vn], subject: s, body: b, retries: 1}
  - {id: mail-them, type: notify_email, connector: mail, to_tenants_of: hunt, subject: s, body: b}
  - {id: block, type: contain, connector: http, action: block_address, target: "${entity.source.address}"}
  - {id: fork, type: branch, on_step: ask, key: decision, equals: approved, then: last}
  - {id: never, type: comment, text: "not reached"}
  - {id: last, type: comment, text: "end"}
""")
    assert {s.type for s in playbook.steps} == set(STEP_TYPES)
    connectors = ConnectorRegistry.from_config({
        "http": {"kind": "http", "url": receiver.url},
        "mail": {"kind": "smtp", "host": "127.0.0.1", "port": mailbox.port, "from": "govsoc@soc.gov.vn",
                 "security": "none", "recipients": {"danang": ["soc@danang.gov.vn"]}}})
    run = agencies.runner(connectors).start(incident, playbook, NOW, dry_run=True)
    assert run.state is RunState.DONE and receiver.requests == [] and mailbox.messages == []
    assert {s.step_id: s.state for s in run.steps} == {s.id: StepState.SKIPPED if s.id == "never" else StepState.DONE
                                                        for s in playbook.steps}
    assert run.step("up").output == {"dry_run": True, "would_escalate_to": "national"}
    assert run.step("related").output["count"] == 0
    assert run.step("hunt").output["would_open"] == ["danang"] and "linked" not in run.step("hunt").output
    assert run.step("mail").output["would_send"]["payload"]["to"] == ["soc@hanoi.gov.vn"]
    [per_tenant] = run.step("mail-them").output["would_send"]
    assert per_tenant["target"] == "danang" and per_tenant["idempotency_key"] == f"{run.id}:mail-them:danang"
    assert [i.tenant for i in agencies.incidents.incidents(ALL, IncidentQuery())] == ["hanoi"]  # none opened
    assert agencies.incidents.comments(ALL, incident.id) == []


def test_a_branch_skips_the_escalation_at_the_national_centre(world: World) -> None:
    playbooks, _ = load_playbooks([LIBRARY])
    exfil = next(p for p in playbooks if p.id == "data-exfiltration-anomaly")
    service = IncidentService(world.store, TREE, IncidentSettings())
    [national] = service.ingest([make_alert("national", 5, rule_id="ml-egress",
                                            entity={"destination.ip": "198.51.100.9"})])
    at_national = world.runner().start(national, exfil, NOW, dry_run=True)
    assert at_national.step("escalate").state is StepState.SKIPPED
    at_hanoi = world.runner().start(world.incident, exfil, NOW, dry_run=True)
    assert at_hanoi.step("escalate").output == {"dry_run": True, "would_escalate_to": "national"}
    assert at_national.step("block-destination").output["would_send"]["target"] == "198.51.100.9"
