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
Noise: before grouping, each new alert passes the `NoiseFilter` (noise.py); an alert it drops
stays stored but joins no incident. With the default settings (no suppressions, dedup and flood
guard off) every new alert is grouped. Stored suppressions are re-read once per batch.
Concurrency: an update is a compare-and-set on the incident's `updated` time, retried from a
fresh read, so an alert added while a person changes the incident never undoes that change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog

from config.settings import IncidentSettings
from config.tenants import TenantScope, TenantTree
from detections.incidents.noise import NoiseFilter
from pipeline.ids import stable_id
from pipeline.records import Alert, Incident, IncidentState, Severity, utc_now
from pipeline.store.base import IncidentConflict, IncidentStore

log = structlog.get_logger(__name__)

ACTOR = "system:incidents"
CONFLICT_ATTEMPTS = 5
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
        self.noise = NoiseFilter(settings.noise, tree)

    def ingest(self, alerts: Sequence[Alert]) -> list[Incident]:
        """Store `alerts` and group the new ones the noise filter keeps; returns the incidents
        created or updated."""
        changed: dict[str, Incident] = {}
        new = self._store.write_alerts(alerts)
        if new:
            self.noise.set_suppressions(self._store.suppressions(TenantScope.everything()))
        dropped = 0
        for alert in new:
            if not self.noise.decide(alert).is_kept:
                dropped += 1
                continue
            incident = self._group(alert)
            changed[incident.id] = incident
        if dropped:
            log.info("alerts_not_grouped", count=dropped)
        if changed:
            log.info("incidents_updated", count=len(changed))
        return list(changed.values())

    def _group(self, alert: Alert) -> Incident:
        """Join the alert to its open incident or open one; re-read and retry if a person changed
        the incident in between (compare-and-set on `updated`), so neither change is lost."""
        own = TenantScope(root=alert.tenant, tenant_ids=frozenset({alert.tenant}))
        for _ in range(CONFLICT_ATTEMPTS):
            current = self._store.find_open_incident(own, alert.rule_id, alert.entity,
                                                     alert.timestamp - self._window)
            incident, action = _grouped(alert, current, utc_now())
            try:
                self._store.save_incident(incident, [alert.id],
                                          expected_updated=None if current is None else current.updated)
            except IncidentConflict:
                continue
            self._store.append_audit(
                actor=ACTOR, tenant=alert.tenant, action=action, object_type="incident", object_id=incident.id,
                details={"alert_id": alert.id, "rule_id": alert.rule_id, "severity": incident.severity.label},
            )
            return incident
        raise IncidentConflict(f"alert {alert.id}: its incident kept changing ({CONFLICT_ATTEMPTS} attempts)")


def _grouped(alert: Alert, current: Incident | None, now: datetime) -> tuple[Incident, str]:
    """The incident after adding `alert` to `current` (or a new one), and the audit action."""
    severity = incident_severity(alert.severity, alert.security_level)
    if current is None:
        incident = Incident(
            id=stable_id("incident", alert.tenant, alert.rule_id, alert.id),
            tenant=alert.tenant, title=_title(alert), severity=severity, state=IncidentState.NEW,
            rule_id=alert.rule_id, entity=dict(alert.entity), first_seen=alert.timestamp,
            last_seen=alert.timestamp, alert_count=1, created=now, updated=now, tags=alert.tags,
            asset_id=alert.asset_id,
        )
        return incident, "incident.created"
    incident = dataclasses.replace(
        current, severity=max(current.severity, severity), alert_count=current.alert_count + 1,
        first_seen=min(current.first_seen, alert.timestamp),
        last_seen=max(current.last_seen, alert.timestamp), updated=now,
    )
    return incident, "incident.alert_added"


def _title(alert: Alert) -> str:
    entity = ", ".join(f"{v}" for v in alert.entity.values())
    return f"{alert.rule_title} ({entity})" if entity else alert.rule_title
