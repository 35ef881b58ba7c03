"""Store interfaces: EventStore (events and dead letters) and IncidentStore (alerts, incidents, audit).

Contract every implementation keeps (tests/pipeline/contracts/ checks it):
- Writes are idempotent upserts by the record's id: writing a record twice stores it once.
- Every read takes a `TenantScope` as a required argument and returns nothing outside it;
  a record of a sibling tenant is indistinguishable from one that does not exist.
- Reads return newest first unless a query says otherwise; `limit` is always bounded.
- Comments and state history are append-only too (no call changes or removes one); they are
  read newest first within the caller's scope, like everything else.
- The audit trail is append-only: there is no call to change or remove an entry, and
  `verify_audit` recomputes the hash chain and reports the first entry that does not fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from config.tenants import TenantScope
from pipeline.errors import StoreError
from pipeline.records import (
    Alert,
    AuditRecord,
    DeadLetter,
    Event,
    Incident,
    IncidentComment,
    IncidentState,
    SensorHeartbeat,
    Severity,
    StateChange,
    Suppression,
)

MAX_LIMIT = 10_000


class IncidentConflict(StoreError):
    """`save_incident(..., expected_updated=t)` found the stored incident changed since `t` (or gone);
    the caller re-reads and tries again, so a person's change and a new alert never undo each other."""


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Events in [start, end) whose ECS fields equal `fields` and whose message matches `text`.

    `text` is a full-text query over the message (words, AND-ed). `fields` compare the value at a
    dotted ECS name for equality (any element for array fields).
    """

    start: datetime | None = None
    end: datetime | None = None
    fields: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    text: str | None = None
    ids: Sequence[str] | None = None
    limit: int = 100
    offset: int = 0
    oldest_first: bool = False


@dataclass(frozen=True, slots=True)
class AlertQuery:
    start: datetime | None = None
    end: datetime | None = None
    rule_id: str | None = None
    incident_id: str | None = None
    limit: int = 100
    offset: int = 0


class IncidentSort(StrEnum):
    """The queue's orders; each ends with the id, so pages never overlap or skip."""

    LAST_SEEN = "last_seen"  # newest activity first (the default)
    SEVERITY = "severity"  # most severe first, then newest activity
    CREATED = "created"  # newest first
    OLDEST = "oldest"  # oldest first: what has waited longest


@dataclass(frozen=True, slots=True)
class IncidentQuery:
    """Filters of the incident queue, all optional and combined with AND, within the caller's scope.

    `within` narrows to one tenant's subtree (a scope the caller already holds or below it);
    `assignee=""` selects incidents nobody owns; `since`/`until` bound `last_seen`.
    """

    states: Sequence[IncidentState] | None = None
    min_severity: Severity | None = None
    rule_id: str | None = None
    assignee: str | None = None
    within: TenantScope | None = None
    since: datetime | None = None
    until: datetime | None = None
    sort: IncidentSort = IncidentSort.LAST_SEEN
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, slots=True)
class AuditCheck:
    """Result of verifying the audit chain: `ok`, how many entries, and the first bad `seq`."""

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    reason: str = ""


class EventStore(Protocol):
    def write(self, events: Sequence[Event]) -> int:
        """Upsert a batch in one transaction; returns how many ids were new."""
        ...

    def search(self, scope: TenantScope, query: EventQuery) -> list[Event]: ...

    def count(self, scope: TenantScope, query: EventQuery) -> int: ...

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> int: ...

    def dead_letters(self, scope: TenantScope, limit: int = 100) -> list[DeadLetter]:
        """Newest first. Letters with no tenant are seen only by an all-tenant scope."""
        ...

    def count_dead_letters(self, scope: TenantScope) -> int: ...

    def close(self) -> None: ...


class IncidentStore(Protocol):
    def write_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Store alerts not seen before (an id already stored keeps its first copy); returns the new ones."""
        ...

    def alerts(self, scope: TenantScope, query: AlertQuery) -> list[Alert]: ...

    def count_alerts(self, scope: TenantScope, query: AlertQuery) -> int: ...

    def find_open_incident(self, scope: TenantScope, rule_id: str, entity: Mapping[str, str],
                           since: datetime) -> Incident | None:
        """The open incident of this rule and entity whose last alert is at or after `since`."""
        ...

    def save_incident(self, incident: Incident, alert_ids: Sequence[str], *,
                      expected_updated: datetime | None = None) -> None:
        """Upsert the incident and link `alert_ids` to it, in one transaction.

        With `expected_updated`, write only if the stored incident's `updated` is still that time
        (compare-and-set); otherwise raise `IncidentConflict` and write nothing.
        """
        ...

    def incident(self, scope: TenantScope, incident_id: str) -> Incident | None: ...

    def incidents(self, scope: TenantScope, query: IncidentQuery) -> list[Incident]: ...

    def count_incidents(self, scope: TenantScope, query: IncidentQuery) -> int: ...

    def add_comment(self, comment: IncidentComment) -> None:
        """Store a comment (idempotent by id: the first text of an id is kept)."""
        ...

    def comments(self, scope: TenantScope, incident_id: str, limit: int = 100) -> list[IncidentComment]:
        """The incident's comments, newest first; none for an incident outside `scope`."""
        ...

    def record_state_change(self, change: StateChange) -> None:
        """Append one step to an incident's state history."""
        ...

    def state_history(self, scope: TenantScope, incident_id: str, limit: int = 100) -> list[StateChange]:
        """The incident's state changes, newest first."""
        ...

    def save_suppression(self, suppression: Suppression) -> None:
        """Upsert a suppression by id."""
        ...

    def suppressions(self, scope: TenantScope, active_at: datetime | None = None,
                     limit: int = 1000) -> list[Suppression]:
        """Suppressions of tenants in `scope`, newest first; only unexpired ones at `active_at` if given."""
        ...

    def append_audit(self, *, actor: str, tenant: str, action: str, object_type: str, object_id: str,
                     details: Mapping[str, Any]) -> AuditRecord:
        """Append one entry to the chain, atomically with respect to other appends."""
        ...

    def audit_trail(self, scope: TenantScope, object_id: str | None = None,
                    limit: int = 100) -> list[AuditRecord]: ...

    def verify_audit(self) -> AuditCheck: ...

    def close(self) -> None: ...


class SensorStore(Protocol):
    """The newest heartbeat of every sensor; reads scoped like every other store."""

    def record_heartbeats(self, beats: Sequence[SensorHeartbeat]) -> int:
        """Keep each beat if it is newer than the one stored for its (tenant, sensor); returns how many."""
        ...

    def latest_heartbeats(self, scope: TenantScope) -> list[SensorHeartbeat]: ...

    def close(self) -> None: ...
