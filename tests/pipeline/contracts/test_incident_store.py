"""The IncidentStore contract (pipeline/store/base.py), run against every implementation in conftest."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from config.tenants import TenantScope
from pipeline.errors import StoreError
from pipeline.records import (
    Alert,
    AuditRecord,
    DetectionKind,
    Incident,
    IncidentComment,
    IncidentState,
    Severity,
    StateChange,
    Suppression,
    to_iso,
)
from pipeline.store.base import AlertQuery, IncidentConflict, IncidentQuery, IncidentSort, IncidentStore

if TYPE_CHECKING:
    from tests.pipeline.contracts.conftest import StoreHarness

T0 = datetime(2025, 7, 1, 8, 0, tzinfo=UTC)
ATTACKER = {"source.ip": "203.0.113.7"}

# national -> province-a -> commune-a1, national -> province-b
EVERYTHING = TenantScope.everything()
PROVINCE_A = TenantScope(root="province-a", tenant_ids=frozenset({"province-a", "commune-a1"}))
COMMUNE_A1 = TenantScope(root="commune-a1", tenant_ids=frozenset({"commune-a1"}))
PROVINCE_B = TenantScope(root="province-b", tenant_ids=frozenset({"province-b"}))


def make_alert(n: int, *, tenant: str = "province-a", rule_id: str = "ssh-brute-force",
               entity: Mapping[str, str] = ATTACKER, severity: Severity = Severity.HIGH) -> Alert:
    """Alert number `n`, at T0 + n minutes."""
    first_event = f"event-{n}"
    return Alert(id=Alert.make_id(tenant, rule_id, entity, first_event), tenant=tenant,
                 timestamp=T0 + timedelta(minutes=n), kind=DetectionKind.SIGMA, rule_id=rule_id,
                 rule_title="SSH brute force", severity=severity, event_ids=(first_event, f"event-{n}-b"),
                 entity=dict(entity), tags=("attack.t1110",), description="Đăng nhập thất bại nhiều lần")


def make_incident(name: str, *, tenant: str = "province-a", rule_id: str = "ssh-brute-force",
                  entity: Mapping[str, str] = ATTACKER, state: IncidentState = IncidentState.NEW,
                  last_seen_minute: int = 0, severity: Severity = Severity.HIGH) -> Incident:
    return Incident(id=f"inc-{name}", tenant=tenant, title=f"SSH brute force {name}", severity=severity,
                    state=state, rule_id=rule_id, entity=dict(entity), first_seen=T0,
                    last_seen=T0 + timedelta(minutes=last_seen_minute), alert_count=1, created=T0,
                    updated=T0 + timedelta(minutes=last_seen_minute), tags=("attack.t1110",))


def ids(records: list[Any]) -> list[str]:
    return [record.id for record in records]


# --- alerts ---------------------------------------------------------------------------------

def test_write_alerts_returns_only_new_ones(incident_store: IncidentStore) -> None:
    a1, a2, a3, a4 = (make_alert(n) for n in range(1, 5))
    assert incident_store.write_alerts([a1, a2]) == [a1, a2]
    assert incident_store.write_alerts([a1, a3, a2]) == [a3]
    assert incident_store.write_alerts([a4, a4]) == [a4]
    assert incident_store.write_alerts([]) == []
    assert incident_store.count_alerts(EVERYTHING, AlertQuery()) == 4


def test_alerts_round_trip_newest_first(incident_store: IncidentStore) -> None:
    alerts = [make_alert(n) for n in (2, 1, 3)]
    incident_store.write_alerts(alerts)
    newest_first = sorted(alerts, key=lambda a: a.timestamp, reverse=True)
    assert incident_store.alerts(EVERYTHING, AlertQuery()) == newest_first


def test_alert_query_filters(incident_store: IncidentStore) -> None:
    alerts = [make_alert(n, rule_id="ssh-brute-force" if n % 2 else "port-scan") for n in range(6)]
    incident_store.write_alerts(alerts)
    incident_store.save_incident(make_incident("x"), [alerts[0].id, alerts[3].id])
    cases = {
        AlertQuery(start=T0 + timedelta(minutes=2), end=T0 + timedelta(minutes=4)): [3, 2],
        AlertQuery(rule_id="port-scan"): [4, 2, 0],
        AlertQuery(incident_id="inc-x"): [3, 0],
        AlertQuery(incident_id="inc-none"): [],
        AlertQuery(limit=2, offset=1): [4, 3],
    }
    for query, expected in cases.items():
        assert ids(incident_store.alerts(EVERYTHING, query)) == [alerts[n].id for n in expected], query
    assert incident_store.count_alerts(EVERYTHING, AlertQuery(rule_id="port-scan")) == 3


@pytest.mark.parametrize("scope, visible", [
    (EVERYTHING, {"province-a", "commune-a1", "province-b"}),
    (PROVINCE_A, {"province-a", "commune-a1"}),
    (COMMUNE_A1, {"commune-a1"}),
    (PROVINCE_B, {"province-b"}),
])
def test_alerts_stay_in_scope(incident_store: IncidentStore, scope: TenantScope, visible: set[str]) -> None:
    tenants = ["province-a", "commune-a1", "province-b"]
    incident_store.write_alerts([make_alert(n, tenant=t) for n, t in enumerate(tenants)])
    assert {a.tenant for a in incident_store.alerts(scope, AlertQuery())} == visible
    assert incident_store.count_alerts(scope, AlertQuery()) == len(visible)


# --- grouping: find_open_incident -----------------------------------------------------------

SINCE = T0 + timedelta(minutes=10)


def test_find_open_incident_matches_rule_entity_and_window(incident_store: IncidentStore) -> None:
    entity = {"source.ip": "203.0.113.7", "user.name": "root"}
    incident = make_incident("a", entity=entity, last_seen_minute=10)
    incident_store.save_incident(incident, [])
    reordered = {"user.name": "root", "source.ip": "203.0.113.7"}  # same entity, keys in another order
    assert incident_store.find_open_incident(PROVINCE_A, "ssh-brute-force", reordered, SINCE) == incident
    for rule_id, entity, since in [
        ("port-scan", reordered, SINCE),  # another detection
        ("ssh-brute-force", ATTACKER, SINCE),  # another entity
        ("ssh-brute-force", reordered, SINCE + timedelta(microseconds=1)),  # window passed
    ]:
        assert incident_store.find_open_incident(PROVINCE_A, rule_id, entity, since) is None


@pytest.mark.parametrize("state", list(IncidentState))
def test_find_open_incident_only_open_states(incident_store: IncidentStore, state: IncidentState) -> None:
    incident = make_incident("a", state=state, last_seen_minute=10)
    incident_store.save_incident(incident, [])
    found = incident_store.find_open_incident(PROVINCE_A, "ssh-brute-force", ATTACKER, SINCE)
    assert found == (incident if state.is_open else None)


def test_find_open_incident_newest_and_in_scope(incident_store: IncidentStore) -> None:
    older, newer = make_incident("old", last_seen_minute=11), make_incident("new", last_seen_minute=12)
    sibling = make_incident("sibling", tenant="province-b", last_seen_minute=13)
    for incident in (older, newer, sibling):
        incident_store.save_incident(incident, [])
    assert incident_store.find_open_incident(PROVINCE_A, "ssh-brute-force", ATTACKER, SINCE) == newer
    assert incident_store.find_open_incident(COMMUNE_A1, "ssh-brute-force", ATTACKER, SINCE) is None
    assert incident_store.find_open_incident(EVERYTHING, "ssh-brute-force", ATTACKER, SINCE) == sibling


# --- incidents --------------------------------------------------------------------------------

def test_save_incident_upserts_and_links_alerts(incident_store: IncidentStore) -> None:
    a1, a2 = make_alert(1), make_alert(2)
    incident_store.write_alerts([a1, a2])
    incident = make_incident("a")
    incident_store.save_incident(incident, [a1.id])
    worked = dataclasses.replace(incident, state=IncidentState.TRIAGE, alert_count=2, assignee="analyst-1",
                                 asset_id="portal", last_seen=T0 + timedelta(minutes=5))
    incident_store.save_incident(worked, [a2.id, a1.id])
    assert incident_store.incident(PROVINCE_A, "inc-a") == worked
    assert incident_store.count_incidents(EVERYTHING, IncidentQuery()) == 1
    assert ids(incident_store.alerts(PROVINCE_A, AlertQuery(incident_id="inc-a"))) == [a2.id, a1.id]


def test_incident_is_invisible_outside_scope(incident_store: IncidentStore) -> None:
    incident_store.save_incident(make_incident("a", tenant="commune-a1"), [])
    assert incident_store.incident(PROVINCE_A, "inc-a") is not None
    assert incident_store.incident(COMMUNE_A1, "inc-a") is not None
    assert incident_store.incident(PROVINCE_B, "inc-a") is None
    assert incident_store.incident(EVERYTHING, "inc-missing") is None


def test_incident_query_filters_and_order(incident_store: IncidentStore) -> None:
    specs = [("a", IncidentState.NEW, Severity.LOW, "ssh-brute-force", "province-a"),
             ("b", IncidentState.TRIAGE, Severity.HIGH, "ssh-brute-force", "commune-a1"),
             ("c", IncidentState.CLOSED, Severity.CRITICAL, "port-scan", "province-a"),
             ("d", IncidentState.NEW, Severity.MEDIUM, "port-scan", "province-b")]
    for minute, (name, state, severity, rule_id, tenant) in enumerate(specs):
        incident_store.save_incident(make_incident(name, state=state, severity=severity, rule_id=rule_id,
                                                   tenant=tenant, last_seen_minute=minute), [])
    cases = [
        (IncidentQuery(), EVERYTHING, ["d", "c", "b", "a"]),
        (IncidentQuery(), PROVINCE_A, ["c", "b", "a"]),
        (IncidentQuery(states=[IncidentState.NEW, IncidentState.TRIAGE]), EVERYTHING, ["d", "b", "a"]),
        (IncidentQuery(states=[]), EVERYTHING, []),
        (IncidentQuery(min_severity=Severity.HIGH), EVERYTHING, ["c", "b"]),
        (IncidentQuery(rule_id="port-scan"), PROVINCE_A, ["c"]),
        (IncidentQuery(limit=2, offset=1), EVERYTHING, ["c", "b"]),
    ]
    for query, scope, expected in cases:
        assert ids(incident_store.incidents(scope, query)) == [f"inc-{name}" for name in expected], query
    assert incident_store.count_incidents(PROVINCE_A, IncidentQuery()) == 3
    assert incident_store.count_incidents(EVERYTHING, IncidentQuery(min_severity=Severity.HIGH, limit=1)) == 2


def test_incident_queue_filters_by_owner_subtree_and_time_and_sorts(incident_store: IncidentStore) -> None:
    specs = [("a", Severity.LOW, "province-a", None, 3), ("b", Severity.CRITICAL, "commune-a1", "lan", 1),
             ("c", Severity.MEDIUM, "province-a", "mai", 0), ("d", Severity.CRITICAL, "province-b", None, 2)]
    for name, severity, tenant, assignee, minute in specs:
        incident = dataclasses.replace(make_incident(name, severity=severity, tenant=tenant, last_seen_minute=minute),
                                       assignee=assignee, created=T0 + timedelta(minutes=10 - minute))
        incident_store.save_incident(incident, [])
    cases = [
        (IncidentQuery(assignee="lan"), EVERYTHING, ["b"]),
        (IncidentQuery(assignee=""), EVERYTHING, ["a", "d"]),
        (IncidentQuery(within=COMMUNE_A1), EVERYTHING, ["b"]),
        (IncidentQuery(within=PROVINCE_B), PROVINCE_A, []),  # a narrower filter never widens the scope
        (IncidentQuery(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3)), EVERYTHING, ["d", "b"]),
        (IncidentQuery(sort=IncidentSort.SEVERITY), EVERYTHING, ["d", "b", "c", "a"]),
        (IncidentQuery(sort=IncidentSort.CREATED), EVERYTHING, ["c", "b", "d", "a"]),
        (IncidentQuery(sort=IncidentSort.OLDEST, limit=2), EVERYTHING, ["a", "d"]),
    ]
    for query, scope, expected in cases:
        assert ids(incident_store.incidents(scope, query)) == [f"inc-{name}" for name in expected], query
        everything = incident_store.incidents(scope, dataclasses.replace(query, limit=100))
        assert incident_store.count_incidents(scope, query) == len(everything)


# --- audit ------------------------------------------------------------------------------------

def append(store: IncidentStore, n: int, tenant: str = "province-a", object_id: str = "inc-a") -> AuditRecord:
    return store.append_audit(actor=f"analyst-{n}", tenant=tenant, action="incident.state",
                              object_type="incident", object_id=object_id,
                              details={"from": "new", "to": "triage", "note": f"bước {n}"})


def expected_hash(record: AuditRecord) -> str:
    """The documented formula, computed independently of the store."""
    payload = {"seq": record.seq, "ts": to_iso(record.timestamp), "actor": record.actor,
               "tenant": record.tenant, "action": record.action, "object_type": record.object_type,
               "object_id": record.object_id, "details": record.details}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((record.prev_hash + canonical).encode()).hexdigest()


def test_audit_chain(incident_store: IncidentStore) -> None:
    records = [append(incident_store, n) for n in range(3)]
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].prev_hash == "0" * 64
    assert [r.prev_hash for r in records[1:]] == [r.hash for r in records[:-1]]
    assert all(r.hash == expected_hash(r) for r in records)
    check = incident_store.verify_audit()
    assert (check.ok, check.entries, check.first_bad_seq) == (True, 3, None)
    assert incident_store.audit_trail(EVERYTHING) == records[::-1]


def test_empty_audit_verifies(incident_store: IncidentStore) -> None:
    assert incident_store.verify_audit().ok
    assert incident_store.verify_audit().entries == 0


def test_audit_details_are_stored_as_json(incident_store: IncidentStore) -> None:
    record = incident_store.append_audit(actor="a", tenant="province-a", action="x", object_type="incident",
                                         object_id="inc-a", details={"at": T0, "ids": ("e1", "e2")})
    assert record.details == {"at": to_iso(T0), "ids": ["e1", "e2"]}
    assert incident_store.audit_trail(EVERYTHING) == [record]
    with pytest.raises(StoreError, match="inc-a"):
        incident_store.append_audit(actor="a", tenant="province-a", action="x", object_type="incident",
                                    object_id="inc-a", details={"bad": object()})
    assert incident_store.verify_audit().ok


def test_audit_trail_filters(incident_store: IncidentStore) -> None:
    a = append(incident_store, 1, tenant="province-a", object_id="inc-a")
    b = append(incident_store, 2, tenant="commune-a1", object_id="inc-b")
    c = append(incident_store, 3, tenant="province-b", object_id="inc-a")
    assert incident_store.audit_trail(PROVINCE_A) == [b, a]
    assert incident_store.audit_trail(PROVINCE_B) == [c]
    assert incident_store.audit_trail(EVERYTHING, object_id="inc-a") == [c, a]
    assert incident_store.audit_trail(EVERYTHING, limit=1) == [c]


def test_audit_refuses_update_and_delete(incident_store: IncidentStore, harness: StoreHarness) -> None:
    for n in range(3):
        append(incident_store, n)
    with pytest.raises(harness.refused, match="append-only"):
        harness.update_audit(2, "incident.deleted")
    with pytest.raises(harness.refused, match="append-only"):
        harness.delete_audit(2)
    assert incident_store.verify_audit().ok


def test_verify_reports_first_tampered_entry(incident_store: IncidentStore, harness: StoreHarness) -> None:
    for n in range(4):
        append(incident_store, n)
    harness.tamper_audit(2, "incident.nothing_happened")
    check = incident_store.verify_audit()
    assert (check.ok, check.entries, check.first_bad_seq) == (False, 4, 2)
    assert "hash" in check.reason


def test_concurrent_appends_chain(incident_store: IncidentStore) -> None:
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for n in range(25):
                append(incident_store, k * 100 + n)
        except BaseException as e:  # reported below: an exception in a thread would be lost
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    check = incident_store.verify_audit()
    assert (check.ok, check.entries) == (True, 100)
    assert sorted(r.seq for r in incident_store.audit_trail(EVERYTHING, limit=1000)) == list(range(1, 101))


# --- lifecycle: times on incidents, comments, state history, suppressions -------------------

def test_lifecycle_fields_round_trip(incident_store: IncidentStore) -> None:
    worked = dataclasses.replace(
        make_incident("a"), state=IncidentState.RESOLVED, responded=T0 + timedelta(minutes=1),
        resolved=T0 + timedelta(hours=2), reported=T0 + timedelta(seconds=30),
        clocks_met={"initial-report": T0 + timedelta(hours=1), "acknowledge-report": T0 + timedelta(minutes=1)})
    incident_store.save_incident(worked, [])
    assert incident_store.incident(PROVINCE_A, "inc-a") == worked
    plain = make_incident("b")
    incident_store.save_incident(plain, [])
    stored = incident_store.incident(PROVINCE_A, "inc-b")
    assert stored == plain and stored is not None
    assert (stored.responded, stored.resolved, stored.reported, dict(stored.clocks_met)) == (None, None, None, {})


def make_comment(n: int, *, incident_id: str = "inc-a", tenant: str = "province-a") -> IncidentComment:
    return IncidentComment(id=f"c-{incident_id}-{n}", incident_id=incident_id, tenant=tenant, author=f"analyst-{n}",
                           text=f"Ghi chú {n}", created=T0 + timedelta(minutes=n))


def test_comments_are_kept_newest_first_and_in_scope(incident_store: IncidentStore) -> None:
    first, second = make_comment(1), make_comment(2)
    other = make_comment(3, incident_id="inc-b", tenant="province-b")
    for comment in (first, second, other, dataclasses.replace(first, text="changed")):
        incident_store.add_comment(comment)
    assert incident_store.comments(PROVINCE_A, "inc-a") == [second, first]  # the first text of an id stays
    assert incident_store.comments(PROVINCE_A, "inc-a", limit=1) == [second]
    assert incident_store.comments(PROVINCE_A, "inc-b") == []
    assert incident_store.comments(PROVINCE_B, "inc-a") == []
    assert incident_store.comments(EVERYTHING, "inc-b") == [other]


def test_state_history_newest_first_and_in_scope(incident_store: IncidentStore) -> None:
    steps = [StateChange(incident_id="inc-a", tenant="commune-a1", from_state=a, to_state=b, actor="analyst-1",
                         reason="", at=T0 + timedelta(minutes=n))
             for n, (a, b) in enumerate([(IncidentState.NEW, IncidentState.TRIAGE),
                                         (IncidentState.TRIAGE, IncidentState.FALSE_POSITIVE),
                                         (IncidentState.FALSE_POSITIVE, IncidentState.TRIAGE)])]
    for step in steps:
        incident_store.record_state_change(step)
    assert incident_store.state_history(PROVINCE_A, "inc-a") == steps[::-1]
    assert incident_store.state_history(COMMUNE_A1, "inc-a", limit=2) == steps[:0:-1]
    assert incident_store.state_history(PROVINCE_B, "inc-a") == []


def make_suppression(name: str, *, tenant: str = "province-a", expires_minute: int | None = None) -> Suppression:
    return Suppression(id=f"sup-{name}", tenant=tenant, reason=f"máy quét {name}", created_by="analyst-1",
                       created=T0, rule_id="port-scan", entity={"source.ip": "10.0.0.5"},
                       expires=None if expires_minute is None else T0 + timedelta(minutes=expires_minute))


def test_suppressions_upsert_expire_and_stay_in_scope(incident_store: IncidentStore) -> None:
    forever, brief = make_suppression("forever"), make_suppression("brief", expires_minute=10)
    sibling = make_suppression("sibling", tenant="province-b")
    for suppression in (forever, brief, sibling):
        incident_store.save_suppression(suppression)
    assert {s.id for s in incident_store.suppressions(PROVINCE_A)} == {"sup-forever", "sup-brief"}
    assert incident_store.suppressions(PROVINCE_A, active_at=T0 + timedelta(minutes=10)) == [forever]
    assert incident_store.suppressions(PROVINCE_B) == [sibling]
    extended = dataclasses.replace(brief, expires=T0 + timedelta(days=1), reason="gia hạn")
    incident_store.save_suppression(extended)
    assert extended in incident_store.suppressions(PROVINCE_A, active_at=T0 + timedelta(minutes=10))
    assert len(incident_store.suppressions(EVERYTHING)) == 3


def test_save_incident_compare_and_set(incident_store: IncidentStore) -> None:
    incident = make_incident("a")
    with pytest.raises(IncidentConflict, match="inc-a"):  # nothing stored yet to compare with
        incident_store.save_incident(incident, [], expected_updated=incident.updated)
    incident_store.save_incident(incident, [])
    triaged = dataclasses.replace(incident, state=IncidentState.TRIAGE, updated=T0 + timedelta(minutes=1))
    incident_store.save_incident(triaged, [], expected_updated=incident.updated)
    stale = dataclasses.replace(incident, alert_count=2, updated=T0 + timedelta(minutes=2))
    with pytest.raises(IncidentConflict):
        incident_store.save_incident(stale, [], expected_updated=incident.updated)
    assert incident_store.incident(EVERYTHING, "inc-a") == triaged
