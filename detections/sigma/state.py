"""Rule management: which rules run, and per-tenant exceptions, stored, audited and applied.

Stage: beside loading. In: changes made by people (the API's rules routes, the CLI). Out: a
`RuleState` that `apply_state` (and `SigmaEngine.reload`) applies to a loaded `RuleSet`.

- Enable/disable by rule id: every compiled form of the rule, or the correlation. Default enabled.
- Exceptions are Sigma filters scoped to a tenant: a detection (selections and a `condition`, as
  in a rule) compiled with the rule's own field map. A match of the rule on an event of that
  tenant, or of one below it in the tree, that also matches the exception is suppressed.
- `SqliteRuleStateStore` keeps both (its own tables, on pipeline's `SqliteStore`, every statement
  parameterised). Every change is written in one transaction and then audited through `audit`
  (shaped like `IncidentStore.append_audit`), with the values before and after.

Invariants: an exception is validated (compiled) before it is stored, and its detection is at most
`MAX_EXCEPTION_BYTES` of JSON, so a stored state always applies; `apply_state` is pure.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule

from config.errors import SourceLocation
from config.tenants import TenantTree
from detections.sigma.compile import CompiledRule, FlatTest, compile_test, sigma_reason
from detections.sigma.errors import RuleError
from detections.sigma.fields import FieldMap
from detections.sigma.load import RuleSet
from pipeline import ecs
from pipeline.records import utc_now
from pipeline.store.sqlite_db import Schema, SqliteStore, from_us, to_us

MAX_EXCEPTION_BYTES = 64 * 1024


class Audit(Protocol):
    """Where changes are recorded: `IncidentStore.append_audit`'s keyword arguments."""

    def __call__(self, *, actor: str, tenant: str, action: str, object_type: str, object_id: str,
                 details: Mapping[str, Any]) -> Any: ...


@dataclass(frozen=True, slots=True)
class RuleException:
    """Matches of `rule_id` on events of `tenant` (and below) that `detection` matches are dropped."""

    id: str
    rule_id: str
    tenant: str
    detection: Mapping[str, Any]
    reason: str
    created_at: datetime
    created_by: str


@dataclass(frozen=True, slots=True)
class RuleState:
    """The disabled rule ids and the exceptions, as stored at one moment."""

    disabled: frozenset[str] = frozenset()
    exceptions: tuple[RuleException, ...] = ()

    def exceptions_for(self, rule_id: str) -> list[RuleException]:
        return [exception for exception in self.exceptions if exception.rule_id == rule_id]


def compile_exception(detection: Mapping[str, Any], fields: FieldMap) -> FlatTest:
    """The exception's detection as a test (`RuleError` with the reason if it is not valid)."""
    size = len(orjson.dumps(detection, default=str))
    if size > MAX_EXCEPTION_BYTES:
        raise RuleError(f"an exception's detection is at most {MAX_EXCEPTION_BYTES} bytes (got {size})")
    if not isinstance(detection, Mapping) or "condition" not in detection:
        raise RuleError("an exception is a detection: selections and a condition", SourceLocation(field="detection"))
    try:
        rule = SigmaRule.from_dict({"title": "exception", "logsource": {"product": "any"},
                                    "detection": dict(detection)}, collect_errors=True)
    except SigmaError as e:
        raise RuleError(sigma_reason(e), SourceLocation(field="detection")) from e
    except Exception as e:  # pySigma is not hardened against every shape of input
        raise RuleError(f"not a detection: {type(e).__name__}: {e}", SourceLocation(field="detection")) from e
    if rule.errors:
        raise RuleError(sigma_reason(rule.errors[0]), SourceLocation(field="detection"))
    return compile_test(rule, fields)


def apply_state(ruleset: RuleSet, state: RuleState, tree: TenantTree | None = None) -> RuleSet:
    """`ruleset` without its disabled rules and with its exceptions applied."""
    rules = []
    for rule in ruleset.rules:
        if rule.info.rule_id in state.disabled:
            continue
        exceptions = state.exceptions_for(rule.info.rule_id)
        rules.append(_with_exceptions(rule, exceptions, tree) if exceptions else rule)
    correlations = tuple(spec for spec in ruleset.correlations if spec.info.rule_id not in state.disabled)
    return RuleSet(rules=tuple(rules), correlations=correlations)


def _with_exceptions(rule: CompiledRule, exceptions: Sequence[RuleException], tree: TenantTree | None) -> CompiledRule:
    """The rule with its test narrowed; its required literals still hold (the test only got stricter)."""
    filters = tuple((_tenants(exception.tenant, tree), compile_exception(exception.detection, rule.fields))
                    for exception in exceptions)
    base = rule.test

    def test(flat: Mapping[str, Any]) -> bool:
        if not base(flat):
            return False
        tenant = flat.get(ecs.ORGANIZATION_ID)
        return not any(tenant in tenants and excepted(flat) for tenants, excepted in filters)

    return dataclasses.replace(rule, test=test)


def _tenants(tenant: str, tree: TenantTree | None) -> frozenset[str]:
    if tree is not None and tenant in tree:
        return frozenset(tree.scope(tenant).tenant_ids) | {tenant}
    return frozenset({tenant})


def exception_id(rule_id: str, tenant: str, detection: Mapping[str, Any]) -> str:
    """Deterministic: the same exception posted twice is one exception."""
    digest = hashlib.sha256(orjson.dumps([rule_id, tenant, detection], option=orjson.OPT_SORT_KEYS, default=str))
    return digest.hexdigest()[:32]


# --- storage --------------------------------------------------------------------------------------

SCHEMA = Schema(
    component="sigma_rules",
    version=1,
    statements=(
        """CREATE TABLE IF NOT EXISTS sigma_rule_state (
            rule_id TEXT PRIMARY KEY, enabled INTEGER NOT NULL, changed_at INTEGER NOT NULL,
            changed_by TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS sigma_rule_exceptions (
            id TEXT PRIMARY KEY, rule_id TEXT NOT NULL, tenant TEXT NOT NULL, detection TEXT NOT NULL,
            reason TEXT NOT NULL, created_at INTEGER NOT NULL, created_by TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS sigma_rule_exceptions_rule ON sigma_rule_exceptions (rule_id)",
    ),
)


class SqliteRuleStateStore(SqliteStore):
    """Rule states and exceptions in a SQLite file; every change audited through `audit`."""

    schema = SCHEMA

    def __init__(self, path: Any, audit: Audit, clock: Callable[[], datetime] = utc_now) -> None:
        super().__init__(path)
        self._audit = audit
        self._clock = clock

    @classmethod
    def open(cls, url: str, audit: Audit) -> SqliteRuleStateStore:
        from pipeline.store.sqlite_db import sqlite_path

        return cls(sqlite_path(url), audit)

    def state(self) -> RuleState:
        disabled = self._db.query("read rule states", "SELECT rule_id FROM sigma_rule_state WHERE enabled = 0")
        rows = self._db.query("read rule exceptions",
                              "SELECT id, rule_id, tenant, detection, reason, created_at, created_by "
                              "FROM sigma_rule_exceptions ORDER BY created_at, id")
        return RuleState(frozenset(rule_id for (rule_id,) in disabled),
                         tuple(RuleException(id_, rule_id, tenant, orjson.loads(detection), reason, from_us(at), by)
                               for id_, rule_id, tenant, detection, reason, at, by in rows))

    def set_enabled(self, rule_id: str, enabled: bool, *, actor: str, tenant: str) -> bool:
        """Enable or disable `rule_id`; returns whether that changed anything (audited only then)."""
        now = to_us(self._clock())
        with self._db.transaction("change a rule's state") as conn:
            row = conn.execute("SELECT enabled FROM sigma_rule_state WHERE rule_id = ?", (rule_id,)).fetchone()
            before = True if row is None else bool(row[0])
            if before != enabled:
                conn.execute("INSERT INTO sigma_rule_state (rule_id, enabled, changed_at, changed_by) "
                             "VALUES (?, ?, ?, ?) ON CONFLICT (rule_id) DO UPDATE SET enabled = excluded.enabled, "
                             "changed_at = excluded.changed_at, changed_by = excluded.changed_by",
                             (rule_id, int(enabled), now, actor))
        if before == enabled:
            return False
        self._audit(actor=actor, tenant=tenant, action="rule.enable" if enabled else "rule.disable",
                    object_type="sigma_rule", object_id=rule_id, details={"before": before, "after": enabled})
        return True

    def add_exception(self, exception: RuleException, *, actor_tenant: str) -> bool:
        """Store a validated exception (idempotent by id); returns whether it was new (audited only then)."""
        detection = orjson.dumps(exception.detection, option=orjson.OPT_SORT_KEYS, default=str).decode()
        with self._db.transaction("add a rule exception") as conn:
            cursor = conn.execute(
                "INSERT INTO sigma_rule_exceptions (id, rule_id, tenant, detection, reason, created_at, created_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (exception.id, exception.rule_id, exception.tenant, detection, exception.reason,
                 to_us(exception.created_at), exception.created_by))
        if cursor.rowcount == 0:
            return False
        self._audit(actor=exception.created_by, tenant=actor_tenant, action="rule.exception.add",
                    object_type="sigma_rule", object_id=exception.rule_id,
                    details={"exception": exception.id, "tenant": exception.tenant,
                             "detection": orjson.loads(detection), "reason": exception.reason})
        return True
