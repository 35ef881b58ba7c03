"""Incidents: alerts grouped so that one person works one case.

In: alerts (from Sigma rules, correlations, later ML and intel). Out: incidents in the
IncidentStore, each change with an audit entry.

Grouping: an alert joins the open incident of the same tenant, rule and entity whose last alert
is within `group_window_s` of it; otherwise it opens a new incident. Only alerts the store did
not hold before are grouped, so replaying the same input never counts an alert twice.
Severity: the highest of the incident's alerts, one step higher when the affected asset has an
information-system security level of 4 or 5 (capped at critical).
Ids: an incident's id derives from its first alert, so rebuilding from the same alerts gives the
same incidents.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import timedelta

import structlog

from config.settings import IncidentSettings
from config.tenants import TenantScope, TenantTree
from pipeline.ids import stable_id
from pipeline.records import Alert, Incident, IncidentState, Severity, utc_now
from pipeline.store.base import IncidentStore

log = structlog.get_logger(__name__)

ACTOR = "system:incidents"
HIGH_VALUE_LEVEL = 4


def incident_severity(alert_severity: Severity, security_level: int | None) -> Severity:
    if security_level is not None and security_level >= HIGH_VALUE_LEVEL:
        return Severity(min(alert_severity + 1, Severity.CRITICAL))
    return alert_severity


class IncidentService:
    def __init__(self, store: IncidentStore, tree: TenantTree, settings: IncidentSettings) -> None:
        self._store = store
        self._tree = tree
        self._window = timedelta(seconds=settings.group_window_s)

    def ingest(self, alerts: Sequence[Alert]) -> list[Incident]:
        """Store `alerts` and group the new ones; returns the incidents created or updated."""
        changed: dict[str, Incident] = {}
        for alert in self._store.write_alerts(alerts):
            incident = self._group(alert)
            changed[incident.id] = incident
        if changed:
            log.info("incidents_updated", count=len(changed))
        return list(changed.values())

    def _group(self, alert: Alert) -> Incident:
        own = TenantScope(root=alert.tenant, tenant_ids=frozenset({alert.tenant}))
        current = self._store.find_open_incident(own, alert.rule_id, alert.entity, alert.timestamp - self._window)
        now = utc_now()
        severity = incident_severity(alert.severity, alert.security_level)
        if current is None:
            incident = Incident(
                id=stable_id("incident", alert.tenant, alert.rule_id, alert.id),
                tenant=alert.tenant, title=_title(alert), severity=severity, state=IncidentState.NEW,
                rule_id=alert.rule_id, entity=dict(alert.entity), first_seen=alert.timestamp,
                last_seen=alert.timestamp, alert_count=1, created=now, updated=now, tags=alert.tags,
                asset_id=alert.asset_id,
            )
            action = "incident.created"
        else:
            incident = dataclasses.replace(
                current, severity=max(current.severity, severity), alert_count=current.alert_count + 1,
                first_seen=min(current.first_seen, alert.timestamp),
                last_seen=max(current.last_seen, alert.timestamp), updated=now,
            )
            action = "incident.alert_added"
        self._store.save_incident(incident, [alert.id])
        self._store.append_audit(
            actor=ACTOR, tenant=alert.tenant, action=action, object_type="incident", object_id=incident.id,
            details={"alert_id": alert.id, "rule_id": alert.rule_id, "severity": incident.severity.label},
        )
        return incident


def _title(alert: Alert) -> str:
    entity = ", ".join(f"{v}" for v in alert.entity.values())
    return f"{alert.rule_title} ({entity})" if entity else alert.rule_title
