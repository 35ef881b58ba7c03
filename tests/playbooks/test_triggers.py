"""Which playbooks an incident triggers: by rule, tag, severity, tenant and entity field."""

from __future__ import annotations

import dataclasses

import pytest

from config.settings import TenantConfig, TenantKind
from config.tenants import TenantTree
from pipeline.records import Incident, IncidentState, Severity
from playbooks import load_playbook_text, matches, triggered_playbooks
from playbooks.model import Trigger
from tests.factories import T0

TREE = TenantTree.from_config([
    TenantConfig(id="national", name="N", kind=TenantKind.NATIONAL),
    TenantConfig(id="hanoi", name="HN", parent="national", kind=TenantKind.PROVINCE),
    TenantConfig(id="hanoi-ba-dinh", name="BD", parent="hanoi", kind=TenantKind.COMMUNE),
    TenantConfig(id="danang", name="DN", parent="national"),
])
INCIDENT = Incident(
    id="inc-1", tenant="hanoi-ba-dinh", title="SSH brute force", severity=Severity.HIGH, state=IncidentState.NEW,
    rule_id="ssh-brute-force", entity={"source.address": "203.0.113.77"}, first_seen=T0, last_seen=T0,
    alert_count=3, created=T0, updated=T0, tags=("attack.credential_access", "attack.t1110.001"),
)


@pytest.mark.parametrize(("trigger", "expected"), [
    (Trigger(), True),
    (Trigger(rules=("ssh-brute-force",)), True),
    (Trigger(rules=("other",)), False),
    (Trigger(tags=("attack.t1110",)), True),
    (Trigger(tags=("attack.t111",)), False),
    (Trigger(tags=("ATTACK.T1110.001",)), True),
    (Trigger(min_severity="high"), True),
    (Trigger(min_severity="critical"), False),
    (Trigger(tenants=("hanoi",)), True),  # a tenant above the incident's
    (Trigger(tenants=("hanoi-ba-dinh",)), True),
    (Trigger(tenants=("danang",)), False),
    (Trigger(entity_fields=("source.address", "user.name")), True),
    (Trigger(entity_fields=("host.name",)), False),
    (Trigger(rules=("ssh-brute-force",), min_severity="critical"), False),  # every criterion must hold
])
def test_each_criterion(trigger: Trigger, expected: bool) -> None:
    assert matches(trigger, INCIDENT, TREE) is expected


def test_playbooks_without_a_trigger_run_by_hand_only() -> None:
    steps = "steps:\n  - id: e\n    type: enrich\n"
    manual = load_playbook_text("id: manual\nname: M\n" + steps)
    auto = load_playbook_text("id: auto\nname: A\ntrigger:\n  min_severity: low\n" + steps)
    assert triggered_playbooks(INCIDENT, [manual, auto], TREE) == [auto]
    low = dataclasses.replace(INCIDENT, severity=Severity.INFORMATIONAL)
    assert triggered_playbooks(low, [manual, auto], TREE) == []
