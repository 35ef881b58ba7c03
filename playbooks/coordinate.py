"""Coordination: an indicator found at other tenants becomes an incident at each of them, linked to
the incident it came from.

In: the origin incident and where the national hunt found its indicators (`query.Sightings`).
Out: the linked incidents, opened through `IncidentService` (so they group, get severity and
are audited like any other), each commented with its origin, and an `incident.linked` audit entry
at each tenant.

Contract:
- One linked incident per (tenant, indicator value), whichever fields held it (the entity names
  the first field in name order); its alert lists every event.
- Idempotent: the alert's id derives from the tenant, the rule `linked:<origin id>`, the entity
  and the first event's id, so the same hunt run again (a resumed run) writes no alert twice and opens no
  second incident; the comments reuse the step's start time, so they are stored once too.
- The origin's tenant gets no linked incident: it already has the origin.
- A linked incident carries the tags `coordination.linked` and `linked.incident:<origin id>`
  (not `intel.indicator`, so it does not trigger the national playbook again).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from config.tenants import TenantTree
from detections.incidents.grouping import IncidentService
from detections.incidents.lifecycle import IncidentLifecycle
from pipeline.ids import stable_id
from pipeline.records import Alert, DetectionKind, Incident
from pipeline.store.base import IncidentStore
from playbooks.query import Sightings

RULE_PREFIX = "linked:"
LINK_TAG = "linked.incident:"


@dataclass(frozen=True, slots=True)
class Linked:
    tenant: str
    incident_id: str
    field: str
    value: str
    events: int


def linked_alerts(origin: Incident, sightings: Sightings, at: datetime) -> list[Alert]:
    """One alert per (tenant, value) found outside the origin's tenant, with all its events."""
    alerts: list[Alert] = []
    rule_id = RULE_PREFIX + origin.id
    for tenant in sorted(sightings.by_tenant):
        if tenant == origin.tenant:
            continue
        by_value: dict[str, tuple[str, list[str]]] = {}  # value -> (first field it was found in, event ids)
        for (name, value), ids in sorted(sightings.by_tenant[tenant].items()):
            _, seen = by_value.setdefault(value, (name, []))
            seen.extend(i for i in ids if i not in seen)
        for value, (name, event_ids) in sorted(by_value.items()):
            entity = {name: value}
            alerts.append(Alert(
                id=Alert.make_id(tenant, rule_id, entity, event_ids[0]), tenant=tenant, timestamp=at,
                kind=DetectionKind.INTEL, rule_id=rule_id,
                rule_title=f"Indicator {value} from incident {origin.id} ({origin.tenant})",
                severity=origin.severity, event_ids=tuple(event_ids), entity=entity,
                tags=("coordination.linked", LINK_TAG + origin.id),
                description=(f"The national hunt for the indicators of incident {origin.id} at {origin.tenant} "
                             f"found {value} in {name} of {len(event_ids)} event(s) here."),
            ))
    return alerts


@dataclass(frozen=True, slots=True)
class Coordinator:
    """Opens linked incidents with the runner's store, lifecycle and tree."""

    store: IncidentStore
    service: IncidentService
    lifecycle: IncidentLifecycle
    tree: TenantTree
    actor: str

    def open_linked(self, origin: Incident, alerts: list[Alert], now: datetime) -> list[Linked]:
        """Open (or find again) the incident of each alert, comment its origin, audit the link."""
        self.service.ingest(alerts)
        return [linked for alert in alerts if (linked := self._link(origin, alert, now)) is not None]

    def _link(self, origin: Incident, alert: Alert, now: datetime) -> Linked | None:
        store, actor = self.store, self.actor
        scope = self.tree.scope(alert.tenant)
        incident_id = stable_id("incident", alert.tenant, alert.rule_id, alert.id)
        incident = store.incident(scope, incident_id) or store.find_open_incident(
            scope, alert.rule_id, alert.entity, origin.first_seen)
        if incident is None:  # suppressed by a noise rule of that tenant: the alert is kept, no incident
            return None
        ((name, value),) = alert.entity.items()
        self.lifecycle.comment(scope, incident.id, f"Linked to incident {origin.id} at {origin.tenant}: {value} "
                               f"({name}) was seen here in {len(alert.event_ids)} event(s).", actor=actor, now=now)
        store.append_audit(actor=actor, tenant=alert.tenant, action="incident.linked", object_type="incident",
                           object_id=incident.id, details={"origin": origin.id, "origin_tenant": origin.tenant,
                                                           "field": name, "value": value})
        return Linked(alert.tenant, incident.id, name, value, len(alert.event_ids))
