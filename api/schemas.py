"""API response schemas (`XPublic`, `XsPublic`): what crosses the trust line, typed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from pipeline.records import Alert, AuditRecord, Event, Incident


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

    @classmethod
    def of(cls, incident: Incident) -> IncidentPublic:
        return cls(
            id=incident.id, tenant=incident.tenant, title=incident.title, severity=incident.severity.label,
            state=incident.state.value, rule_id=incident.rule_id, entity=dict(incident.entity),
            first_seen=incident.first_seen, last_seen=incident.last_seen, alert_count=incident.alert_count,
            created=incident.created, updated=incident.updated, tags=list(incident.tags),
            assignee=incident.assignee, asset_id=incident.asset_id,
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


class IncidentDetailPublic(IncidentPublic):
    alerts: list[AlertPublic]
    audit: list[AuditPublic]


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
