"""Grouping alerts into incidents, on the real SQLite incident store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from config.settings import IncidentSettings, TenantConfig
from config.tenants import TenantScope, TenantTree
from detections.incidents import IncidentService, incident_severity
from pipeline.records import IncidentState, Severity
from pipeline.store.base import IncidentQuery, IncidentStore
from pipeline.store.registry import open_incident_store
from tests.factories import make_alert

TREE = TenantTree.from_config([
    TenantConfig(id="national", name="N", kind="national"),
    TenantConfig(id="hanoi", name="HN", parent="national"),
    TenantConfig(id="danang", name="DN", parent="national"),
])
ALL = TenantScope.everything()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[IncidentStore]:
    instance = open_incident_store(f"sqlite:///{tmp_path / 'govsoc.db'}")
    yield instance
    instance.close()


def service(store: IncidentStore, window_s: int = 3600) -> IncidentService:
    return IncidentService(store, TREE, IncidentSettings(group_window_s=window_s))


def test_alerts_of_one_entity_and_rule_join_one_incident(store: IncidentStore) -> None:
    service(store).ingest([make_alert(n=0), make_alert(n=60), make_alert(n=120)])
    [incident] = store.incidents(ALL, IncidentQuery())
    assert incident.alert_count == 3
    assert incident.state is IncidentState.NEW
    assert incident.last_seen - incident.first_seen == timedelta(seconds=120)


def test_replaying_alerts_counts_nothing_twice(store: IncidentStore) -> None:
    alerts = [make_alert(n=0), make_alert(n=60)]
    service(store).ingest(alerts)
    assert service(store).ingest(alerts) == []
    [incident] = store.incidents(ALL, IncidentQuery())
    assert incident.alert_count == 2


def test_other_entity_tenant_or_rule_opens_another_incident(store: IncidentStore) -> None:
    service(store).ingest([
        make_alert(n=0), make_alert(n=1, entity={"source.address": "198.51.100.9"}),
        make_alert("danang", n=2), make_alert(n=3, rule_id="rule-2"),
    ])
    assert store.count_incidents(ALL, IncidentQuery()) == 4
    assert store.count_incidents(TREE.scope("danang"), IncidentQuery()) == 1


def test_an_alert_after_the_window_opens_a_new_incident(store: IncidentStore) -> None:
    service(store, window_s=600).ingest([make_alert(n=0), make_alert(n=3600)])
    assert store.count_incidents(ALL, IncidentQuery()) == 2


def test_severity_rises_with_a_high_value_asset(store: IncidentStore) -> None:
    service(store).ingest([make_alert(severity=Severity.HIGH, security_level=4)])
    [incident] = store.incidents(ALL, IncidentQuery())
    assert incident.severity is Severity.CRITICAL
    assert incident_severity(Severity.CRITICAL, 5) is Severity.CRITICAL
    assert incident_severity(Severity.MEDIUM, 2) is Severity.MEDIUM


def test_severity_rises_with_the_tenants_level_in_the_tree(store: IncidentStore) -> None:
    """`incidents.severity_raise_tenant_kinds` (default: the national centre) adds a step, on top
    of the asset's; other tenants keep the alert's severity."""
    service(store).ingest([make_alert(tenant="national", severity=Severity.MEDIUM),
                           make_alert(tenant="hanoi", severity=Severity.MEDIUM),
                           make_alert(tenant="national", rule_id="other", severity=Severity.HIGH, security_level=5)])
    by_tenant = {(i.tenant, i.rule_id): i.severity for i in store.incidents(ALL, IncidentQuery())}
    assert by_tenant[("national", "rule-1")] is Severity.HIGH
    assert by_tenant[("hanoi", "rule-1")] is Severity.MEDIUM
    assert by_tenant[("national", "other")] is Severity.CRITICAL  # two steps, capped
    none = IncidentService(store, TREE, IncidentSettings(severity_raise_tenant_kinds=()))
    assert none.ingest([make_alert(tenant="national", rule_id="third", severity=Severity.LOW)])[0].severity \
        is Severity.LOW


def test_every_change_is_audited_and_the_chain_verifies(store: IncidentStore) -> None:
    service(store).ingest([make_alert(n=0), make_alert(n=60)])
    [incident] = store.incidents(ALL, IncidentQuery())
    trail = store.audit_trail(ALL, object_id=incident.id)
    assert sorted(r.action for r in trail) == ["incident.alert_added", "incident.created"]
    assert store.verify_audit().ok
