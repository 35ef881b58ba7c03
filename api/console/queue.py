"""The incident queue: filters read from the URL, one page of incidents, counts, SLA badges.

In: the query string of `/incidents` and the caller's `Principal`. Out: a `QueuePage`.

- Every read goes through the incident store with a scope no wider than the caller's: the tenant
  filter narrows it to that tenant's subtree, and a tenant outside the caller's scope is ignored.
- State, severity, rule, assignee and time filters, and the orders newest, oldest and severity,
  are the store's own query: the first page costs one page read and one count per state,
  whatever the store holds (bench/console.py).
- The deadline order depends on SLA settings the store does not know; with it the queue reads up
  to `SCAN_LIMIT` incidents and sorts those, and says so when the limit was reached
  (`QueuePage.truncated`).
- SLA badges count from `now`: the open SLA clock with the least time left, or the first overdue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from config.settings import IncidentSettings
from config.tenants import TenantScope, TenantTree
from detections.incidents.clocks import Deadline, DeadlineStatus, sla_deadlines, sla_target
from pipeline.records import Incident, IncidentState, Severity
from pipeline.store.base import MAX_LIMIT, IncidentQuery, IncidentSort, IncidentStore

PAGE_SIZE = 50
SCAN_LIMIT = MAX_LIMIT
PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
SORTS = ("newest", "oldest", "severity", "deadline")
STORE_SORTS = {"newest": IncidentSort.LAST_SEEN, "oldest": IncidentSort.OLDEST, "severity": IncidentSort.SEVERITY}
NO_DEADLINE = timedelta(days=36500)


@dataclass(frozen=True, slots=True)
class QueueFilters:
    states: tuple[IncidentState, ...] = ()
    min_severity: Severity | None = None
    tenant: str = ""
    assignee: str = ""
    rule_id: str = ""
    period: str = ""
    sort: str = "newest"
    page: int = 1

    @classmethod
    def from_query(cls, params: Mapping[str, str], states: Sequence[str]) -> QueueFilters:
        """Filters from the URL; values the console does not know are dropped, never an error."""
        known_states = tuple(IncidentState(s) for s in states if s in IncidentState.__members__.values())
        severity = params.get("severity", "")
        try:
            page = max(1, min(int(params.get("page", "1")), MAX_LIMIT))
        except ValueError:
            page = 1
        return cls(
            states=known_states,
            min_severity=Severity.from_label(severity) if severity in {s.label for s in Severity} else None,
            tenant=params.get("tenant", "").strip(), assignee=params.get("assignee", "").strip()[:200],
            rule_id=params.get("rule", "").strip()[:200],
            period=params.get("period", "") if params.get("period", "") in PERIODS else "",
            sort=params.get("sort", "newest") if params.get("sort") in SORTS else "newest", page=page,
        )

    @property
    def needs_scan(self) -> bool:
        return self.sort == "deadline"

    def store_query(self, limit: int, offset: int, now: datetime | None = None) -> IncidentQuery:
        since = now - PERIODS[self.period] if self.period and now is not None else None
        return IncidentQuery(states=self.states or None, min_severity=self.min_severity,
                             rule_id=self.rule_id or None, assignee=self.assignee or None, since=since,
                             sort=STORE_SORTS.get(self.sort, IncidentSort.LAST_SEEN), limit=limit, offset=offset)


@dataclass(frozen=True, slots=True)
class Badge:
    """An SLA clock as the queue shows it: `overdue` with how long ago, or the time left."""

    name_vi: str
    name_en: str
    status: DeadlineStatus
    remaining: timedelta


@dataclass(frozen=True, slots=True)
class QueueRow:
    incident: Incident
    badge: Badge | None


@dataclass(frozen=True, slots=True)
class QueuePage:
    rows: list[QueueRow]
    total: int
    counts: dict[str, int]
    filters: QueueFilters
    pages: int
    truncated: bool


def queue_scope(tree: TenantTree, scope: TenantScope, tenant: str) -> TenantScope:
    """The caller's scope, narrowed to `tenant`'s subtree when the caller may see that tenant."""
    if tenant and tenant in tree and tenant in scope:
        return tree.scope(tenant)
    return scope


def sla_badge(incident: Incident, settings: IncidentSettings, now: datetime) -> Badge | None:
    """The most urgent open SLA clock of the incident, or None when every one is met."""
    if not incident.state.is_open:
        return None
    open_clocks: list[tuple[Deadline, timedelta]] = []
    for deadline in sla_deadlines(incident, settings):
        remaining = deadline.remaining(now)
        if remaining is not None:
            open_clocks.append((deadline, remaining))
    if not open_clocks:
        return None
    deadline, remaining = min(open_clocks, key=lambda pair: pair[1])
    return Badge(deadline.name_vi, deadline.name_en, deadline.status(now), remaining)


def time_left(incident: Incident, settings: IncidentSettings, now: datetime) -> timedelta:
    """Time left on the incident's most urgent open SLA clock; `NO_DEADLINE` when none is open.

    The same answer as `sla_badge(...).remaining` without building the deadlines (the deadline
    sort calls it for up to `SCAN_LIMIT` incidents): first response while nobody has responded,
    then resolution (a first-response target is never longer than the resolution one).
    """
    if not incident.state.is_open:
        return NO_DEADLINE
    target = sla_target(settings, incident.severity)
    if incident.responded is None:
        return incident.created + min(target.first_response, target.resolution) - now
    if incident.resolved is None:
        return incident.created + target.resolution - now
    return NO_DEADLINE


def _scanned(store: IncidentStore, scope: TenantScope, filters: QueueFilters, settings: IncidentSettings,
             now: datetime) -> tuple[list[Incident], bool]:
    found = store.incidents(scope, filters.store_query(SCAN_LIMIT, 0, now))
    truncated = len(found) >= SCAN_LIMIT
    found.sort(key=lambda i: (time_left(i, settings, now), i.id))  # the one order the store cannot give
    return found, truncated


def load_queue(store: IncidentStore, scope: TenantScope, filters: QueueFilters, settings: IncidentSettings,
               now: datetime) -> QueuePage:
    """One page of the queue, the total matching, and how many incidents are in each state."""
    offset = (filters.page - 1) * PAGE_SIZE
    truncated = False
    if filters.needs_scan:
        everything, truncated = _scanned(store, scope, filters, settings, now)
        incidents, total = everything[offset:offset + PAGE_SIZE], len(everything)
    else:
        incidents = store.incidents(scope, filters.store_query(PAGE_SIZE, offset, now))
        total = store.count_incidents(scope, filters.store_query(1, 0, now))
    without_state = replace(filters, states=())
    counts = {state.value: store.count_incidents(scope, replace(without_state, states=(state,)).store_query(1, 0, now))
              for state in IncidentState}
    rows = [QueueRow(i, sla_badge(i, settings, now)) for i in incidents]
    return QueuePage(rows, total, counts, filters, max(1, -(-total // PAGE_SIZE)), truncated)
