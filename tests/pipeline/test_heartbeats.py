"""The heartbeat step: heartbeats of configured sensors are kept, anything else is skipped."""

from __future__ import annotations

from pathlib import Path

from config.settings import SensorConfig, TenantConfig
from config.tenants import TenantScope, TenantTree
from pipeline.bus import Message, topics
from pipeline.heartbeats import HeartbeatStep
from pipeline.records import SensorHeartbeat
from pipeline.store.registry import open_sensor_store
from tests.factories import T0

TREE = TenantTree.from_config([TenantConfig(id="national", name="N", kind="national",
                                            sensors=(SensorConfig(id="s1"),))])


def message(offset: int, value: bytes) -> Message:
    return Message(topic=topics.HEARTBEATS, partition=0, offset=offset, key=None, value=value)


def test_known_heartbeats_are_kept_and_the_rest_skipped(tmp_path: Path) -> None:
    store = open_sensor_store(f"sqlite:///{tmp_path / 'g.db'}")
    good = SensorHeartbeat(timestamp=T0, tenant="national", sensor="s1", version="0.1.0")
    stranger = SensorHeartbeat(timestamp=T0, tenant="national", sensor="nobody", version="0.1.0")
    kept = HeartbeatStep(store, TREE)([message(0, b"{junk"), message(1, stranger.to_json()),
                                       message(2, good.to_json()), message(3, b'{"tenant": "national"}')])
    assert kept == 1
    assert store.latest_heartbeats(TenantScope.everything()) == [good]
    store.close()
