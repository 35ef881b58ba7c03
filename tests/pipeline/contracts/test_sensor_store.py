"""The SensorStore contract (pipeline/store/base.py), run against every implementation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from config.tenants import TenantScope
from pipeline.records import SensorHeartbeat
from pipeline.store.base import SensorStore
from pipeline.store.registry import open_sensor_store
from tests.factories import T0

IMPLEMENTATIONS: dict[str, Callable[[Path], str]] = {
    "sqlite": lambda tmp: f"sqlite:///{tmp / 'govsoc.db'}",
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SensorStore]:
    instance = open_sensor_store(IMPLEMENTATIONS[request.param](tmp_path))
    yield instance
    instance.close()


def beat(tenant: str, sensor: str, seconds: int, pending: int = 0) -> SensorHeartbeat:
    return SensorHeartbeat(timestamp=T0 + timedelta(seconds=seconds), tenant=tenant, sensor=sensor,
                           version="0.1.0", inputs=("file:/var/log/auth.log",), spool_pending=pending,
                           dropped={"spool_full": 0})


def test_the_newest_beat_per_sensor_is_kept(store: SensorStore) -> None:
    assert store.record_heartbeats([beat("hanoi", "s1", 0), beat("hanoi", "s1", 30, pending=7)]) == 2
    assert store.record_heartbeats([beat("hanoi", "s1", 10)]) == 0  # late and out of order: ignored
    [latest] = store.latest_heartbeats(TenantScope.everything())
    assert latest == beat("hanoi", "s1", 30, pending=7)


def test_a_redelivered_beat_changes_nothing(store: SensorStore) -> None:
    store.record_heartbeats([beat("hanoi", "s1", 5)])
    assert store.record_heartbeats([beat("hanoi", "s1", 5)]) == 0
    assert len(store.latest_heartbeats(TenantScope.everything())) == 1


def test_reads_are_scoped(store: SensorStore) -> None:
    store.record_heartbeats([beat("hanoi", "s1", 0), beat("hanoi-bavi", "s2", 0), beat("danang", "s3", 0)])
    hanoi = TenantScope(root="hanoi", tenant_ids=frozenset({"hanoi", "hanoi-bavi"}))
    assert {b.sensor for b in store.latest_heartbeats(hanoi)} == {"s1", "s2"}


def test_heartbeats_round_trip_through_json() -> None:
    original = beat("hanoi", "s1", 0, pending=3)
    assert SensorHeartbeat.from_json(original.to_json()) == original
