"""The numbers behind the dashboard and the rules page, read within the caller's scope.

- Counts per severity and per tenant are the store's own counts (exact): a tenant's count is its
  whole subtree, so the national centre reads the tree at a glance.
- Incidents over time, top rules and the mean times to acknowledge (first response) and to
  resolve are computed over the `SCAN_LIMIT` most recent incidents in scope, and the page says
  how many that was.
- Rule hit counts are the alerts of each rule in scope (`count_alerts`), for at most `MAX_RULES`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from api.console.charts import Chart, column_chart
from api.console.i18n import zone
from config.tenants import TenantScope, TenantTree
from pipeline.records import Incident, IncidentState, Severity
from pipeline.store.base import MAX_LIMIT, AlertQuery, IncidentQuery, IncidentStore

SCAN_LIMIT = MAX_LIMIT
DAYS = 14
MAX_RULES = 500


@dataclass(frozen=True, slots=True)
class TenantCount:
    tenant: str
    depth: int
    total: int
    open: int


@dataclass
class Dashboard:
    over_time: Chart
    by_severity: Chart
    by_tenant: list[TenantCount]
    top_rules: list[tuple[str, int]]
    mtta: timedelta | None
    mttr: timedelta | None
    scanned: int


def _mean(values: list[timedelta]) -> timedelta | None:
    return sum(values, timedelta()) / len(values) if values else None


def _per_day(incidents: list[Incident], today: date, tz: str) -> list[tuple[str, int]]:
    days = [today - timedelta(days=n) for n in range(DAYS - 1, -1, -1)]
    counted = Counter(i.created.astimezone(zone(tz)).date() for i in incidents)
    return [(d.strftime("%d/%m"), counted.get(d, 0)) for d in days]


def _open_query() -> IncidentQuery:
    return IncidentQuery(states=[s for s in IncidentState if s.is_open], limit=1)


def load_dashboard(store: IncidentStore, tree: TenantTree, scope: TenantScope, now: datetime,
                   tz: str) -> Dashboard:
    recent = store.incidents(scope, IncidentQuery(limit=SCAN_LIMIT))
    severities = list(Severity)
    at_least = [store.count_incidents(scope, IncidentQuery(min_severity=s, limit=1)) for s in severities]
    exact = [at_least[n] - (at_least[n + 1] if n + 1 < len(at_least) else 0) for n in range(len(severities))]
    by_severity = column_chart([(s.label, c) for s, c in zip(severities, exact, strict=True)],
                               [f"sev-{s.label}" for s in severities])
    tenants = [t.id for t in tree if t.id in scope]
    by_tenant = [TenantCount(t, tree.depth(t), store.count_incidents(tree.scope(t), IncidentQuery(limit=1)),
                             store.count_incidents(tree.scope(t), _open_query())) for t in tenants]
    rules = Counter(i.rule_id for i in recent).most_common(10)
    mtta = _mean([i.responded - i.created for i in recent if i.responded])
    mttr = _mean([i.resolved - i.created for i in recent if i.resolved])
    return Dashboard(column_chart(_per_day(recent, now.astimezone(zone(tz)).date(), tz)), by_severity,
                     by_tenant, rules, mtta, mttr, len(recent))


@dataclass(frozen=True, slots=True)
class RuleRow:
    rule_id: str
    title: str
    severity: str
    tags: tuple[str, ...]
    source: str
    hits: int
    kind: str  # "rule" or "correlation"


def loaded_rules(state: Any) -> list[Any] | None:
    """The `RuleInfo` of every loaded Sigma rule and correlation, from `app.state.rules` (the rule
    service, which follows uploads and reloads), `app.state.ruleset` or `app.state.engine`; None
    when the app was given none of them."""
    service = getattr(state, "rules", None)
    ruleset = getattr(service, "ruleset", None) or getattr(state, "ruleset", None)
    engine = getattr(state, "engine", None)
    if ruleset is None and engine is not None:
        ruleset = getattr(engine, "ruleset", None)
    if ruleset is None:
        return None
    infos = {r.info.rule_id: (r.info, "rule") for r in ruleset.rules}
    infos.update({c.info.rule_id: (c.info, "correlation") for c in ruleset.correlations})
    return list(infos.values())


def rule_rows(store: IncidentStore, scope: TenantScope, state: Any) -> list[RuleRow] | None:
    found = loaded_rules(state)
    if found is None:
        return None
    rows = [RuleRow(info.rule_id, info.title, info.severity.label, tuple(info.tags), str(info.source),
                    store.count_alerts(scope, AlertQuery(rule_id=info.rule_id, limit=1)), kind)
            for info, kind in found[:MAX_RULES]]
    return sorted(rows, key=lambda r: (-r.hits, r.title.casefold()))
