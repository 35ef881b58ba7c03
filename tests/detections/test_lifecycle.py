"""The incident lifecycle: every transition allowed and refused, and what each change stores and audits."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from config.settings import IncidentSettings, TenantConfig, TenantKind
from config.tenants import TenantScope, TenantTree
from detections.incidents import IncidentService
from detections.incidents.lifecycle import (
    STATE_LABELS_VI,
    TRANSITIONS,
    IncidentLifecycle,
    IncidentNotFound,
    LifecycleError,
    TransitionRefused,
    check_transition,
    needs_reason,
)
from pipeline.records import Incident, IncidentState
from pipeline.store.base import IncidentQuery, IncidentStore
from pipeline.store.registry import open_incident_store
from tests.factories import T0, make_alert

S = IncidentState
TREE = TenantTree.from_config([
    TenantConfig(id="national", name="N", kind=TenantKind.NATIONAL),
    TenantConfig(id="hanoi", name="HN", parent="national"),
    TenantConfig(id="danang", name="DN", parent="national"),
])
ALL = TenantScope.everything()
NOW = T0 + timedelta(hours=1)

ALLOWED = {
    (S.NEW, S.TRIAGE), (S.NEW, S.IN_PROGRESS), (S.NEW, S.FALSE_POSITIVE),
    (S.TRIAGE, S.IN_PROGRESS), (S.TRIAGE, S.FALSE_POSITIVE),
    (S.IN_PROGRESS, S.CONTAINED), (S.IN_PROGRESS, S.RESOLVED), (S.IN_PROGRESS, S.FALSE_POSITIVE),
    (S.CONTAINED, S.RESOLVED), (S.CONTAINED, S.IN_PROGRESS), (S.CONTAINED, S.FALSE_POSITIVE),
    (S.RESOLVED, S.CLOSED), (S.RESOLVED, S.IN_PROGRESS),
    (S.FALSE_POSITIVE, S.TRIAGE),
}
EVERY_PAIR = list(itertools.product(S, S))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[IncidentStore]:
    instance = open_incident_store(f"sqlite:///{tmp_path / 'govsoc.db'}")
    yield instance
    instance.close()


@pytest.fixture
def lifecycle(store: IncidentStore) -> IncidentLifecycle:
    return IncidentLifecycle(store, IncidentSettings())


def open_incident(store: IncidentStore, state: IncidentState = S.NEW, tenant: str = "hanoi") -> Incident:
    """A grouped incident, put in `state` directly (as if its history had happened)."""
    [incident] = IncidentService(store, TREE, IncidentSettings()).ingest([make_alert(tenant)])
    if state is not S.NEW:
        incident = dataclasses.replace(incident, state=state)
        store.save_incident(incident, [])
    return incident


def test_the_table_is_the_documented_one() -> None:
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED
    assert TRANSITIONS[S.CLOSED] == frozenset()
    assert set(STATE_LABELS_VI) == set(S)


@pytest.mark.parametrize("current, to", EVERY_PAIR, ids=[f"{a.value}->{b.value}" for a, b in EVERY_PAIR])
def test_every_transition_is_allowed_or_refused(store: IncidentStore, lifecycle: IncidentLifecycle,
                                                current: IncidentState, to: IncidentState) -> None:
    incident = open_incident(store, current)
    if (current, to) in ALLOWED:
        changed = lifecycle.transition(ALL, incident.id, to, actor="analyst-1", now=NOW, reason="checked")
        assert changed.state is to
        assert store.incident(ALL, incident.id) == changed
        [step] = store.state_history(ALL, incident.id)
        assert (step.from_state, step.to_state, step.actor, step.at) == (current, to, "analyst-1", NOW)
    else:
        with pytest.raises(TransitionRefused, match=f"from {current.value} to {to.value}"):
            lifecycle.transition(ALL, incident.id, to, actor="analyst-1", now=NOW, reason="checked")
        assert store.incident(ALL, incident.id) == incident
        assert store.state_history(ALL, incident.id) == []
        assert [r.action for r in store.audit_trail(ALL, object_id=incident.id)] == ["incident.created"]


def test_the_whole_way_through(store: IncidentStore, lifecycle: IncidentLifecycle) -> None:
    incident = open_incident(store)
    path = [S.TRIAGE, S.IN_PROGRESS, S.CONTAINED, S.RESOLVED, S.CLOSED]
    for minute, to in enumerate(path, start=1):
        incident = lifecycle.transition(ALL, incident.id, to, actor="a", now=NOW + timedelta(minutes=minute))
    assert incident.responded == NOW + timedelta(minutes=1)
    assert incident.resolved == NOW + timedelta(minutes=4)
    assert [c.to_state for c in store.state_history(ALL, incident.id)] == path[::-1]
    assert store.verify_audit().ok


@pytest.mark.parametrize("current, to", [(S.NEW, S.FALSE_POSITIVE), (S.CONTAINED, S.FALSE_POSITIVE),
                                         (S.RESOLVED, S.IN_PROGRESS), (S.FALSE_POSITIVE, S.TRIAGE)])
def test_false_positive_and_reopen_need_a_reason(current: IncidentState, to: IncidentState) -> None:
    assert needs_reason(current, to)
    with pytest.raises(TransitionRefused, match="needs a reason"):
        check_transition(current, to, "  ")
    check_transition(current, to, "the scanner is ours")


def test_a_reopen_clears_the_end_of_the_response(store: IncidentStore, lifecycle: IncidentLifecycle) -> None:
    incident = open_incident(store, S.IN_PROGRESS)
    resolved = lifecycle.transition(ALL, incident.id, S.RESOLVED, actor="a", now=NOW)
    assert resolved.resolved == NOW
    reopened = lifecycle.transition(ALL, incident.id, S.IN_PROGRESS, actor="a", now=NOW + timedelta(hours=1),
                                    reason="the attacker came back")
    assert reopened.resolved is None
    assert reopened.responded == NOW  # the first response stays the first


def test_a_transition_is_audited_with_before_and_after(store: IncidentStore, lifecycle: IncidentLifecycle) -> None:
    incident = open_incident(store)
    lifecycle.transition(ALL, incident.id, S.FALSE_POSITIVE, actor="analyst-1", now=NOW, reason="our scanner")
    entry = store.audit_trail(ALL, object_id=incident.id)[0]
    assert (entry.actor, entry.action) == ("analyst-1", "incident.transition")
    assert entry.details["before"]["state"] == "new"
    assert entry.details["after"]["state"] == "false_positive"
    assert entry.details["reason"] == "our scanner"


def test_assignment(store: IncidentStore, lifecycle: IncidentLifecycle) -> None:
    incident = open_incident(store)
    assigned = lifecycle.assign(ALL, incident.id, "nguyen.van.a", actor="lead", now=NOW)
    assert (assigned.assignee, assigned.responded, assigned.state) == ("nguyen.van.a", NOW, S.NEW)
    entry = store.audit_trail(ALL, object_id=incident.id)[0]
    assert (entry.details["before"]["assignee"], entry.details["after"]["assignee"]) == (None, "nguyen.van.a")
    assert lifecycle.assign(ALL, incident.id, None, actor="lead", now=NOW).assignee is None
    closed = open_incident(store, S.CLOSED, tenant="danang")
    with pytest.raises(TransitionRefused, match="closed"):
        lifecycle.assign(ALL, closed.id, "x", actor="lead", now=NOW)


def test_comments(store: IncidentStore, lifecycle: IncidentLifecycle) -> None:
    incident = open_incident(store)
    first = lifecycle.comment(ALL, incident.id, "Đã chặn địa chỉ nguồn", actor="a", now=NOW)
    lifecycle.comment(ALL, incident.id, "Đã chặn địa chỉ nguồn", actor="a", now=NOW)  # a resend: same comment
    second = lifecycle.comment(ALL, incident.id, "Theo dõi thêm", actor="b", now=NOW + timedelta(minutes=1))
    assert store.comments(ALL, incident.id) == [second, first]
    assert store.incident(ALL, incident.id).responded == NOW  # type: ignore[union-attr]
    with pytest.raises(LifecycleError, match="text"):
        lifecycle.comment(ALL, incident.id, "   ", actor="a", now=NOW)


def test_out_of_scope_is_not_found(store: IncidentStore, lifecycle: IncidentLifecycle) -> None:
    incident = open_incident(store, tenant="danang")
    hanoi = TREE.scope("hanoi")
    for change in (lambda: lifecycle.transition(hanoi, incident.id, S.TRIAGE, actor="a", now=NOW),
                   lambda: lifecycle.assign(hanoi, incident.id, "x", actor="a", now=NOW),
                   lambda: lifecycle.comment(hanoi, incident.id, "x", actor="a", now=NOW),
                   lambda: lifecycle.transition(ALL, "inc-missing", S.TRIAGE, actor="a", now=NOW)):
        with pytest.raises(IncidentNotFound):
            change()
    assert store.incidents(ALL, IncidentQuery()) == [incident]


def test_mark_a_regulatory_clock_met(store: IncidentStore, lifecycle: IncidentLifecycle) -> None:
    incident = open_incident(store)
    met = lifecycle.mark_clock_met(ALL, incident.id, "initial-report", actor="a", now=NOW)
    assert met.clocks_met == {"initial-report": NOW}
    assert store.incident(ALL, incident.id) == met
    with pytest.raises(LifecycleError, match="unknown regulatory clock 'nope'"):
        lifecycle.mark_clock_met(ALL, incident.id, "nope", actor="a", now=NOW)


def test_resolved_and_closed_incidents_take_no_more_alerts(store: IncidentStore,
                                                           lifecycle: IncidentLifecycle) -> None:
    incident = open_incident(store, S.IN_PROGRESS)
    lifecycle.transition(ALL, incident.id, S.RESOLVED, actor="a", now=NOW)
    [later] = IncidentService(store, TREE, IncidentSettings()).ingest([make_alert(n=60)])
    assert later.id != incident.id and later.state is S.NEW


def test_people_and_grouping_never_undo_each_other(store: IncidentStore, lifecycle: IncidentLifecycle) -> None:
    """Alerts join the incident from one thread while a person reassigns it from another: every
    alert is counted and the last assignment stays (compare-and-set, retried)."""
    incident = open_incident(store)
    service = IncidentService(store, TREE, IncidentSettings())
    errors: list[BaseException] = []

    def run(work: Callable[[int], object]) -> None:
        try:
            for n in range(1, 41):
                work(n)
        except BaseException as e:  # reported below: an exception in a thread would be lost
            errors.append(e)

    threads = [threading.Thread(target=run, args=(lambda n: service.ingest([make_alert(n=n)]),)),
               threading.Thread(target=run, args=(lambda n: lifecycle.assign(
                   ALL, incident.id, f"analyst-{n}", actor="lead", now=NOW + timedelta(seconds=n)),))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    final = store.incident(ALL, incident.id)
    assert final is not None and (final.alert_count, final.assignee) == (41, "analyst-40")
    assert store.verify_audit().ok
