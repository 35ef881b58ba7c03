"""Rule management: enable/disable and per-tenant exceptions, stored and audited, and the engine
reloading rules and state without a restart (correlation windows kept for unchanged rules)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from config.settings import TenantConfig, TenantKind
from config.tenants import TenantTree
from detections.sigma.errors import RuleError
from detections.sigma.fields import ECS_FIELDS
from detections.sigma.load import builtin_rules_dir, load_rules
from detections.sigma.match import SigmaEngine
from detections.sigma.state import (
    MAX_EXCEPTION_BYTES,
    RuleException,
    RuleState,
    SqliteRuleStateStore,
    compile_exception,
    exception_id,
)
from pipeline.records import DetectionKind
from tests.detections.test_sigma_correlate import BRUTE_FORCE_ID, failures, sshd_event

T0 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
FAILURE_ID = "3f6b0a54-5c3e-4b8e-9c1e-6a4f0d2b7e11"
FAILURE_RULE = f"""title: SSH failure (alerting)
id: {FAILURE_ID}
logsource: {{product: linux, service: auth}}
detection:
  sel: {{event.outcome: failure, process.name: sshd}}
  condition: sel
level: low
"""
TREE = TenantTree.from_config([
    TenantConfig(id="national", name="N", kind=TenantKind.NATIONAL),
    TenantConfig(id="hanoi", name="HN", parent="national"),
    TenantConfig(id="hanoi-bavi", name="BV", parent="hanoi"),
    TenantConfig(id="danang", name="DN", parent="national"),
])


class Recorder:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def __call__(self, *, actor: str, tenant: str, action: str, object_type: str, object_id: str,
                 details: Mapping[str, Any]) -> None:
        self.entries.append({"actor": actor, "tenant": tenant, "action": action, "object_id": object_id,
                             "details": dict(details)})


@pytest.fixture
def store(tmp_path: Path) -> SqliteRuleStateStore:
    return SqliteRuleStateStore(tmp_path / "rules.db", Recorder(), clock=lambda: T0)




def _exception(tenant: str, detection: dict[str, Any], rule_id: str = FAILURE_ID) -> RuleException:
    return RuleException(exception_id(rule_id, tenant, detection), rule_id, tenant, detection, "lab scanner", T0,
                         "analyst-hanoi")


def test_changes_are_stored_and_audited_once(store: SqliteRuleStateStore) -> None:
    audit: Recorder = store._audit  # type: ignore[assignment]
    assert store.set_enabled("r1", False, actor="admin", tenant="national")
    assert not store.set_enabled("r1", False, actor="admin", tenant="national")  # no change, no entry
    exception = _exception("hanoi", {"sel": {"source.address": "10.0.0.5"}, "condition": "sel"})
    assert store.add_exception(exception, actor_tenant="hanoi")
    assert not store.add_exception(exception, actor_tenant="hanoi")
    state = store.state()
    assert state.disabled == frozenset({"r1"}) and state.exceptions == (exception,)
    assert [entry["action"] for entry in audit.entries] == ["rule.disable", "rule.exception.add"]
    assert audit.entries[0]["details"] == {"before": True, "after": False}
    assert store.set_enabled("r1", True, actor="admin", tenant="national")
    assert store.state().disabled == frozenset()
    assert audit.entries[-1]["action"] == "rule.enable"


def test_store_values_are_parameters(store: SqliteRuleStateStore) -> None:
    hostile = "x'); DROP TABLE sigma_rule_state; --"
    store.set_enabled(hostile, False, actor=hostile, tenant="national")
    assert store.state().disabled == frozenset({hostile})


@pytest.mark.parametrize(("detection", "reason"), [
    ({"sel": {"a|nope": "b"}, "condition": "sel"}, "nope"),
    ({"sel": {"a": "b"}}, "condition"),
    ({"sel": {"a|re": "(a+)+\\1"}, "condition": "sel"}, "RE2"),
    ({"sel": {"a": "x" * MAX_EXCEPTION_BYTES}, "condition": "sel"}, "at most"),
    ({"sel": {"a": "b"}, "condition": "sel and"}, "."),
])
def test_invalid_exceptions_are_refused_with_a_reason(detection: dict[str, Any], reason: str) -> None:
    with pytest.raises(RuleError, match=reason):
        compile_exception(detection, ECS_FIELDS)


def test_reload_disables_and_applies_tenant_exceptions(tmp_path: Path) -> None:
    (tmp_path / "failure.yml").write_text(FAILURE_RULE, encoding="utf-8")
    ruleset, errors = load_rules([tmp_path])
    assert errors == []
    engine = SigmaEngine(ruleset)
    rule_id = FAILURE_ID
    fired = {alert.rule_id for alert in engine.process([sshd_event(1, 0)])}
    assert rule_id in fired
    engine.reload(ruleset, RuleState(disabled=frozenset({rule_id})), TREE)
    assert rule_id not in {alert.rule_id for alert in engine.process([sshd_event(2, 1)])}
    scanner = {"sel": {"source.address": "10.0.0.5"}, "condition": "sel"}
    engine.reload(ruleset, RuleState(exceptions=(_exception("hanoi", scanner, rule_id),)), TREE)

    def fires(n: int, tenant: str, source: str) -> bool:
        alerts = engine.process([sshd_event(n, n, tenant=tenant, source=source)])
        return rule_id in {alert.rule_id for alert in alerts}

    assert not fires(3, "hanoi", "10.0.0.5")
    assert not fires(4, "hanoi-bavi", "10.0.0.5")  # below the exception's tenant
    assert fires(5, "danang", "10.0.0.5")  # a sibling: not excepted
    assert fires(6, "hanoi", "10.0.0.6")  # another source


def test_reload_keeps_the_windows_of_unchanged_correlations() -> None:
    ruleset, _errors = load_rules([builtin_rules_dir()])
    engine = SigmaEngine(ruleset)
    engine.process(failures([0, 10, 20, 30]))
    assert engine.correlation_groups == 1
    engine.reload(ruleset)  # the same rules: the window of four failures is kept
    assert engine.correlation_groups == 1
    alerts = engine.process(failures([40], first=10))
    assert BRUTE_FORCE_ID in {alert.rule_id for alert in alerts if alert.kind is DetectionKind.SIGMA_CORRELATION}
    engine.process(failures([100, 110], first=20))
    engine.reload(ruleset, RuleState(disabled=frozenset({BRUTE_FORCE_ID})))
    assert engine.correlation_groups == 0


def test_a_requested_reload_applies_before_the_next_batch(tmp_path: Path) -> None:
    (tmp_path / "failure.yml").write_text(FAILURE_RULE, encoding="utf-8")
    ruleset, _errors = load_rules([tmp_path])
    engine = SigmaEngine(ruleset)
    engine.request_reload(ruleset, RuleState(disabled=frozenset({FAILURE_ID})))
    assert FAILURE_ID in engine.ruleset.rule_ids  # nothing changes until the worker's next batch
    assert engine.process([sshd_event(1, 0)]) == []
    assert FAILURE_ID not in engine.ruleset.rule_ids
