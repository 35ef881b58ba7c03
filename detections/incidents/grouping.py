"""Incidents: alerts grouped so that one person works one case.

In: alerts (from Sigma rules, correlations, later ML and intel). Out: incidents in the
IncidentStore, each change with an audit entry.

Grouping: an alert joins the open incident of the same tenant, rule and entity whose last alert
is within `group_window_s` of it; otherwise it opens a new incident. A deadline alert (kind
`incident_clock`, clocks.py) joins the incident it is about. Only alerts the store did
not hold before are grouped, so replaying the same input never counts an alert twice.
Severity: the highest of the incident's alerts, one step higher when the affected asset has an
information-system security level of 4 or 5, and one more at a tenant whose kind
`incidents.severity_raise_tenant_kinds` lists (its level in the tree; default: the national
centre), capped at critical.
Ids: an incident's id derives from its first alert, so rebuilding from the same alerts gives the
same incidents.
Noise: before grouping, each new alert passes the `NoiseFilter` (noise.py); an alert it drops
stays stored but joins no incident. With the default settings (no suppressions, dedup and flood
guard off) every new alert is grouped. Stored suppressions are re-read once per batch.
Concurrency: an update is a compare-and-set on the incident's `updated` time, retried from a
fresh read, so an alert added while a person changes the incident never undoes that change.
Batching: the alerts of a batch that join one incident are folded in memory and written with one
read and one write of the incident; the audit entries follow, one per alert, in the alerts' order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog

from config.settings import IncidentSettings
from config.tenants import TenantScope, TenantTree
from detections.incidents.clocks import CLOCK_ENTITY
from detections.incidents.noise import NoiseFilter
from pipeline.ids import stable_id
from pipeline.records import Alert, DetectionKind, Incident, IncidentState, Severity, utc_now
from pipeline.store.base import IncidentConflict, IncidentStore

log = structlog.get_logger(__name__)

ACTOR = "system:incidents"
CONFLICT_ATTEMPTS = 5
HIGH_VALUE_LEVEL = 4


def incident_severity(alert_severity: Severity, security_level: int | None, tenant_raised: bool = False) -> Severity:
    """The alert's severity, a step higher on a high-value asset (security level 4-5) and a step
    higher at a tenant whose kind `incidents.severity_raise_tenant_kinds` lists; at most critical."""
    steps = int(security_level is not None and security_level >= HIGH_VALUE_LEVEL) + int(tenant_raised)
    return Severity(min(alert_severity + steps, Severity.CRITICAL))


class IncidentService:
    def __init__(self, store: IncidentStore, tree: TenantTree, settings: IncidentSettings) -> None:
        self._store = store
        self._tree = tree
        self._window = timedelta(seconds=settings.group_window_s)
        self.noise = NoiseFilter(settings.noise, tree)
        raised = set(settings.severity_raise_tenant_kinds)
        self._raised = frozenset(t.id for t in tree if t.kind in raised)

    def ingest(self, alerts: Sequence[Alert]) -> list[Incident]:
        """Store `alerts` and group the new ones the noise filter keeps; returns the incidents
        created or updated."""
        new = self._store.write_alerts(alerts)
        if new:
            self.noise.set_suppressions(self._store.suppressions(TenantScope.everything()))
        kept = [alert for alert in new if self.noise.decide(alert).is_kept]
        if len(kept) < len(new):
            log.info("alerts_not_grouped", count=len(new) - len(kept))
        by_key: dict[tuple[str, str, str], list[Alert]] = {}
        for alert in kept:
            by_key.setdefault(_group_key(alert), []).append(alert)
        changed: dict[str, Incident] = {}
        audits: dict[str, tuple[Incident, str]] = {}
        for same in by_key.values():
            for alert, incident, action in self._group(same):
                changed[incident.id] = incident
                audits[alert.id] = (incident, action)
        for alert in kept:  # audited in the alerts' order, once their incidents are stored
            incident, action = audits[alert.id]
            self._store.append_audit(
                actor=ACTOR, tenant=alert.tenant, action=action, object_type="incident", object_id=incident.id,
                details={"alert_id": alert.id, "rule_id": alert.rule_id, "severity": incident.severity.label},
            )
        if changed:
            log.info("incidents_updated", count=len(changed))
        return list(changed.values())

    def _group(self, alerts: Sequence[Alert]) -> list[tuple[Alert, Incident, str]]:
        """Join alerts of one (tenant, rule, entity), in input order, to their open incident or open one.

        Each alert gets what a fresh `find_open_incident` would give it, yet the store is read and
        written once per run of alerts that join one incident, not once per alert (bench/incidents.py:
        2.2x less CPU per alert on its mix, docs/performance.md). A run ends where the next alert is
        beyond the window of the incident's last alert; the next run starts from a fresh read. The
        write is a compare-and-set on `updated`: if a person changed the incident in between, the
        run is grouped again from a fresh read, so neither change is lost.
        Returns (alert, the incident after it, audit action) per alert.
        """
        steps: list[tuple[Alert, Incident, str]] = []
        todo = list(alerts)
        conflicts = 0
        while todo:
            run, expected = self._fold(todo)
            try:
                self._store.save_incident(run[-1][1], [alert.id for alert, _, _ in run], expected_updated=expected)
            except IncidentConflict:
                conflicts += 1
                if conflicts >= CONFLICT_ATTEMPTS:
                    raise IncidentConflict(f"alert {todo[0].id}: its incident kept changing "
                                           f"({CONFLICT_ATTEMPTS} attempts)") from None
                continue
            steps.extend(run)
            todo = todo[len(run):]
            conflicts = 0
        return steps

    def _fold(self, alerts: Sequence[Alert]) -> tuple[list[tuple[Alert, Incident, str]], datetime | None]:
        """The leading alerts that join one incident (read fresh), each with the incident after it,
        and the `updated` time the store must still hold (None: the incident is new)."""
        first = alerts[0]
        own = TenantScope(root=first.tenant, tenant_ids=frozenset({first.tenant}))
        current = self._incident_of(first, own)
        expected = None if current is None else current.updated
        run: list[tuple[Alert, Incident, str]] = []
        for alert in alerts:
            if run and run[-1][1].last_seen < alert.timestamp - self._window:
                break  # beyond the window: this alert opens the next incident
            current, action = _grouped(alert, current, utc_now(), alert.tenant in self._raised)
            run.append((alert, current, action))
        return run, expected

    def _incident_of(self, alert: Alert, own: TenantScope) -> Incident | None:
        """The incident `alert` joins: the one a deadline alert is about (clocks.py), else the open
        incident of its rule and entity within the window; None opens a new one."""
        if alert.kind is DetectionKind.INCIDENT_CLOCK and (about := alert.entity.get(CLOCK_ENTITY)):
            incident = self._store.incident(own, about)
            if incident is not None:
                return incident
        return self._store.find_open_incident(own, alert.rule_id, alert.entity, alert.timestamp - self._window)


def _group_key(alert: Alert) -> tuple[str, str, str]:
    """Alerts with the same key can only ever join the same incidents."""
    return alert.tenant, alert.rule_id, "|".join(f"{k}={v}" for k, v in sorted(alert.entity.items()))


def _grouped(alert: Alert, current: Incident | None, now: datetime, tenant_raised: bool) -> tuple[Incident, str]:
    """The incident after adding `alert` to `current` (or a new one), and the audit action."""
    severity = incident_severity(alert.severity, alert.security_level, tenant_raised)
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
