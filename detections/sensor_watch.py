"""Silent sensors: a configured sensor with no heartbeat for too long raises an alert.

In: the tenant tree (which sensors should report), the newest heartbeat per sensor, and `now`.
Out: one `Alert` (kind `sensor_health`) per silent sensor. Mature tools miss exactly this: a
sensor that dies quietly looks like a quiet network.

Deterministic: the alert id derives from the sensor and the time of its last heartbeat, so the
same silence raises one alert however often the watch runs; a sensor that never reported is
silent since the watch first saw it (`first_seen`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from config.tenants import TenantTree
from pipeline.records import Alert, DetectionKind, SensorHeartbeat, Severity, to_iso

RULE_ID = "govsoc-sensor-silent"
RULE_TITLE = "Sensor silent"


@dataclass(frozen=True, slots=True)
class SensorStatus:
    tenant: str
    sensor: str
    kind: str
    state: str  # ok | silent | never
    last_seen: datetime | None
    heartbeat: SensorHeartbeat | None


def sensor_statuses(tree: TenantTree, tenants: Sequence[str], beats: Sequence[SensorHeartbeat],
                    now: datetime, silent_after: timedelta) -> list[SensorStatus]:
    """Every configured sensor of `tenants`, with its state at `now`."""
    latest = {(b.tenant, b.sensor): b for b in beats}
    out: list[SensorStatus] = []
    for tenant in tenants:
        for sensor in tree.get(tenant).sensors:
            beat = latest.get((tenant, sensor.id))
            if beat is None:
                state = "never"
            else:
                state = "ok" if now - beat.timestamp <= silent_after else "silent"
            out.append(SensorStatus(tenant, sensor.id, sensor.kind, state, beat.timestamp if beat else None, beat))
    return out


def silent_sensor_alerts(statuses: Sequence[SensorStatus], now: datetime, first_seen: datetime) -> list[Alert]:
    """An alert for each sensor that stopped reporting (or never did since `first_seen`)."""
    alerts = []
    for status in statuses:
        if status.state == "ok":
            continue
        since = status.last_seen or first_seen
        entity = {"observer.name": status.sensor}
        alerts.append(Alert(
            id=Alert.make_id(status.tenant, RULE_ID, entity, to_iso(since)), tenant=status.tenant, timestamp=now,
            kind=DetectionKind.SENSOR_HEALTH, rule_id=RULE_ID, rule_title=RULE_TITLE, severity=Severity.MEDIUM,
            event_ids=(), entity=entity, tags=("attack.defense-evasion", "attack.t1562.001"),
            description=f"sensor {status.sensor} has sent no heartbeat since {to_iso(since)}",
        ))
    return alerts
