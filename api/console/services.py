"""The dashboard's e-government services panel: each watched service of the caller's tenants.

In: the service-watch check events of the last day (`event.dataset: service_watch`) in the caller's
scope, and the service-watch alerts. Out: one `ServiceRow` per (tenant, target): up or down and
why (from its newest check, `detections.watch.check_row`), time to first byte over the day (a
small server-drawn SVG line), days to certificate expiry, and when the page last changed in a way
the watch alerted on (a defacement, a replaced page). The national centre sees the whole tree.

Bounded: at most `MAX_LIMIT` checks are read, newest first (a day of 1,000 targets checked every
minute is more; the panel then shows the newest part of the day and says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from config.tenants import TenantScope
from config.watch import ServiceWatchSettings
from detections.watch import check_row
from pipeline.records import DetectionKind, Event
from pipeline.store.base import MAX_LIMIT, AlertQuery, EventQuery, EventStore, IncidentStore

DATASET = "service_watch"  # sensors.watch.DATASET; named here so the console needs no sensor import
DAY = timedelta(days=1)
CHANGE_RULES = frozenset({"govsoc-watch-defacement"})  # alerts that mean "the page changed"


@dataclass(frozen=True, slots=True)
class ServiceRow:
    tenant: str
    target: str
    url: str
    state: str  # up | down
    why: str
    checked: datetime | None
    ttfb_ms: float | None
    ttfb_points: str  # SVG polyline points over the day, oldest first; "" with fewer than two checks
    cert_days: float | None
    last_change: datetime | None


@dataclass(frozen=True, slots=True)
class ServicesPanel:
    rows: list[ServiceRow]
    truncated: bool


def load_services(events: EventStore, incidents: IncidentStore, scope: TenantScope, watch: ServiceWatchSettings,
                  now: datetime) -> ServicesPanel:
    checks = events.search(scope, EventQuery(start=now - DAY, fields={"event.dataset": DATASET}, limit=MAX_LIMIT))
    by_target: dict[tuple[str, str], list[Event]] = {}
    for event in checks:  # newest first
        by_target.setdefault((event.tenant, str(event.get("govsoc.watch.target"))), []).append(event)
    changes = _last_changes(incidents, scope, now)
    rows = [_row(key, series, watch, changes) for key, series in sorted(by_target.items())]
    return ServicesPanel(rows, truncated=len(checks) >= MAX_LIMIT)


def _row(key: tuple[str, str], series: list[Event], watch: ServiceWatchSettings,
         changes: dict[tuple[str, str], datetime]) -> ServiceRow:
    tenant, target = key
    newest = check_row(series[0], watch)
    ttfb = [float(v) for e in reversed(series) if isinstance(v := e.get("govsoc.watch.ttfb_ms"), int | float)]
    return ServiceRow(
        tenant=tenant, target=target, url=str(series[0].get("url.full") or series[0].get("url.domain") or ""),
        state=str(newest["state"]), why=str(newest["why"] or ""), checked=series[0].timestamp,
        ttfb_ms=ttfb[-1] if ttfb else None, ttfb_points=sparkline(ttfb),
        cert_days=newest["cert_days"] if isinstance(newest["cert_days"], int | float) else None,
        last_change=changes.get((tenant, _entity_value(series[0]))),
    )


def _entity_value(event: Event) -> str:
    """What the watch's alerts name the service by (detections/watch/rules.py `entity_of`)."""
    for name in ("url.full", "destination.address", "dns.question.name"):
        if value := event.get(name):
            return str(value)
    return ""


def _last_changes(incidents: IncidentStore, scope: TenantScope, now: datetime) -> dict[tuple[str, str], datetime]:
    """(tenant, service as the alerts name it) -> the newest page-change alert of the last 30 days."""
    found: dict[tuple[str, str], datetime] = {}
    for rule_id in sorted(CHANGE_RULES):
        for alert in incidents.alerts(scope, AlertQuery(start=now - timedelta(days=30), rule_id=rule_id,
                                                        limit=MAX_LIMIT)):
            if alert.kind is not DetectionKind.SERVICE_WATCH:
                continue
            key = (alert.tenant, next(iter(alert.entity.values()), ""))
            if key not in found or alert.timestamp > found[key]:
                found[key] = alert.timestamp
    return found


def sparkline(values: list[float], width: int = 120, height: int = 24) -> str:
    """Polyline points scaled into a width x height box; "" for fewer than two values."""
    if len(values) < 2:
        return ""
    top = max(values) or 1.0
    step = width / (len(values) - 1)
    return " ".join(f"{i * step:.1f},{height - (v / top) * height:.1f}" for i, v in enumerate(values))
