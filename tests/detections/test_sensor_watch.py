"""Silent sensors: states at a given time, and alerts that stay the same for the same silence."""

from __future__ import annotations

from datetime import timedelta

from config.settings import SensorConfig, TenantConfig
from config.tenants import TenantTree
from detections.sensor_watch import sensor_statuses, silent_sensor_alerts
from pipeline.records import DetectionKind, SensorHeartbeat
from tests.factories import T0

TREE = TenantTree.from_config([
    TenantConfig(id="national", name="N", kind="national"),
    TenantConfig(id="danang", name="DN", parent="national", sensors=(SensorConfig(id="dn-s1"),)),
    TenantConfig(id="hoavang", name="HV", parent="danang",
                 sensors=(SensorConfig(id="hv-s1"), SensorConfig(id="hv-s2"))),
])
SILENT_AFTER = timedelta(minutes=10)


def beat(tenant: str, sensor: str, minutes_ago: int) -> SensorHeartbeat:
    return SensorHeartbeat(timestamp=T0 - timedelta(minutes=minutes_ago), tenant=tenant, sensor=sensor, version="x")


def test_each_configured_sensor_gets_a_state() -> None:
    beats = [beat("danang", "dn-s1", 1), beat("hoavang", "hv-s1", 180)]
    states = {s.sensor: s.state for s in sensor_statuses(TREE, TREE.descendants("danang"), beats, T0, SILENT_AFTER)}
    assert states == {"dn-s1": "ok", "hv-s1": "silent", "hv-s2": "never"}


def test_a_silence_raises_one_alert_however_often_the_watch_runs() -> None:
    beats = [beat("hoavang", "hv-s1", 180)]
    first = silent_sensor_alerts(sensor_statuses(TREE, ["hoavang"], beats, T0, SILENT_AFTER), T0, T0)
    later = T0 + timedelta(minutes=5)
    again = silent_sensor_alerts(sensor_statuses(TREE, ["hoavang"], beats, later, SILENT_AFTER), later, T0)
    assert [a.id for a in first] == [a.id for a in again]
    silent = [a for a in first if a.entity == {"observer.name": "hv-s1"}]
    assert silent and silent[0].kind is DetectionKind.SENSOR_HEALTH and silent[0].tenant == "hoavang"


def test_a_sensor_back_then_silent_again_is_a_new_alert() -> None:
    old = silent_sensor_alerts(sensor_statuses(TREE, ["danang"], [beat("danang", "dn-s1", 180)], T0, SILENT_AFTER),
                               T0, T0)
    new = silent_sensor_alerts(sensor_statuses(TREE, ["danang"], [beat("danang", "dn-s1", 60)], T0, SILENT_AFTER),
                               T0, T0)
    assert old[0].id != new[0].id
