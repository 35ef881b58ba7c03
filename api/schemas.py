"""API response schemas (`XPublic`, `XsPublic`): what crosses the trust line, typed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from detections.incidents.clocks import Deadline
from pipeline.records import (
    Alert,
    AuditRecord,
    Event,
    Incident,
    IncidentComment,
    IncidentState,
    StateChange,
    Suppression,
)

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _in_range(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"a time between {EARLIEST.year} and {LATEST.year}, with its zone")
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_in_range)]
"""A time a client sends: with its zone, and within years every store and format can hold."""

class _Public(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IncidentPublic(_Public):
    id: str
    tenant: str
    title: str
    severity: str
    state: str
    rule_id: str
    entity: dict[str, str]
    first_seen: datetime
    last_seen: datetime
    alert_count: int
    created: datetime
    updated: datetime
    tags: list[str]
    assignee: str | None
    asset_id: str | None
    responded: datetime | None = None
    resolved: datetime | None = None
    reported: datetime | None = None
    clocks_met: dict[str, datetime] = {}

    @classmethod
    def of(cls, incident: Incident) -> IncidentPublic:
        return cls(
            id=incident.id, tenant=incident.tenant, title=incident.title, severity=incident.severity.label,
            state=incident.state.value, rule_id=incident.rule_id, entity=dict(incident.entity),
            first_seen=incident.first_seen, last_seen=incident.last_seen, alert_count=incident.alert_count,
            created=incident.created, updated=incident.updated, tags=list(incident.tags),
            assignee=incident.assignee, asset_id=incident.asset_id, responded=incident.responded,
            resolved=incident.resolved, reported=incident.reported, clocks_met=dict(incident.clocks_met),
        )


class AlertPublic(_Public):
    id: str
    tenant: str
    timestamp: datetime
    kind: str
    rule_id: str
    rule_title: str
    severity: str
    event_ids: list[str]
    entity: dict[str, str]
    tags: list[str]
    description: str

    @classmethod
    def of(cls, alert: Alert) -> AlertPublic:
        return cls(
            id=alert.id, tenant=alert.tenant, timestamp=alert.timestamp, kind=alert.kind.value,
            rule_id=alert.rule_id, rule_title=alert.rule_title, severity=alert.severity.label,
            event_ids=list(alert.event_ids), entity=dict(alert.entity), tags=list(alert.tags),
            description=alert.description,
        )


class AuditPublic(_Public):
    seq: int
    timestamp: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    details: dict[str, Any]

    @classmethod
    def of(cls, record: AuditRecord) -> AuditPublic:
        return cls(seq=record.seq, timestamp=record.timestamp, actor=record.actor, action=record.action,
                   object_type=record.object_type, object_id=record.object_id, details=dict(record.details))


class CommentPublic(_Public):
    id: str
    author: str
    text: str
    created: datetime

    @classmethod
    def of(cls, comment: IncidentComment) -> CommentPublic:
        return cls(id=comment.id, author=comment.author, text=comment.text, created=comment.created)


class StateChangePublic(_Public):
    from_state: str
    to_state: str
    actor: str
    reason: str
    at: datetime

    @classmethod
    def of(cls, change: StateChange) -> StateChangePublic:
        return cls(from_state=change.from_state.value, to_state=change.to_state.value, actor=change.actor,
                   reason=change.reason, at=change.at)


class DeadlinePublic(_Public):
    """One SLA or regulatory clock (thời hạn) as seen at `now`; `remaining_s` < 0 once overdue."""

    id: str
    kind: str
    name_vi: str
    name_en: str
    started: datetime | None
    due: datetime | None
    met: datetime | None
    status: str
    remaining_s: float | None

    @classmethod
    def of(cls, deadline: Deadline, now: datetime) -> DeadlinePublic:
        remaining = deadline.remaining(now)
        return cls(id=deadline.id, kind=deadline.kind, name_vi=deadline.name_vi, name_en=deadline.name_en,
                   started=deadline.started, due=deadline.due, met=deadline.met,
                   status=deadline.status(now).value,
                   remaining_s=None if remaining is None else remaining.total_seconds())


class IncidentDetailPublic(IncidentPublic):
    alerts: list[AlertPublic]
    audit: list[AuditPublic]
    comments: list[CommentPublic] = []
    state_history: list[StateChangePublic] = []
    deadlines: list[DeadlinePublic] = []


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IncidentTransition(_Body):
    """Move an incident to another state; false_positive and reopening need a reason."""

    to: IncidentState
    reason: str = Field("", max_length=4000)


class IncidentAssign(_Body):
    """Give the incident to a person (phân công); null unassigns it."""

    assignee: str | None = Field(min_length=1, max_length=200)


class CommentCreate(_Body):
    text: str = Field(min_length=1, max_length=20_000)


class IncidentsPublic(_Public):
    incidents: list[IncidentPublic]
    total: int


class AlertsPublic(_Public):
    alerts: list[AlertPublic]
    total: int


class EventsPublic(_Public):
    events: list[dict[str, Any]]
    total: int


def event_public(event: Event) -> dict[str, Any]:
    return dict(event.doc)


class SuppressionCreate(_Body):
    """A time-window exception (by rule, entity, tenant); `preview` counts what it would hide without saving."""

    reason: str = Field(min_length=1, max_length=2000)
    rule_id: str | None = Field(None, min_length=1, max_length=200)
    entity: dict[str, str] = {}
    tenant: str | None = None  # default: the caller's tenant
    expires: AwareDatetime | None = None
    preview: bool = False

    @model_validator(mode="after")
    def _narrow(self) -> SuppressionCreate:
        if self.rule_id is None and not self.entity:
            raise ValueError("a suppression names a rule_id or an entity (else it would hide every alert)")
        return self


class SuppressionPublic(_Public):
    id: str
    tenant: str
    reason: str
    created_by: str
    created: datetime
    expires: datetime | None
    rule_id: str | None
    entity: dict[str, str]

    @classmethod
    def of(cls, s: Suppression) -> SuppressionPublic:
        return cls(id=s.id, tenant=s.tenant, reason=s.reason, created_by=s.created_by, created=s.created,
                   expires=s.expires, rule_id=s.rule_id, entity=dict(s.entity))


class SuppressionResult(_Public):
    """The suppression, how many of the `examined` recent alerts it would have hidden, and whether it was saved."""

    suppression: SuppressionPublic
    would_hide: int
    examined: int
    saved: bool


class SuppressionsPublic(_Public):
    suppressions: list[SuppressionPublic]
