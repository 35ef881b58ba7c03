"""The Bus contract (pipeline/bus/base.py), run against every implementation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from pipeline.bus import Bus, open_bus
from pipeline.bus.memory import MemoryBus

IMPLEMENTATIONS: dict[str, Callable[[], Bus]] = {
    "memory": lambda: MemoryBus(partitions=3),
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    instance = IMPLEMENTATIONS[request.param]()
    yield instance
    instance.close()


def _drain(consumer: object, limit: int = 10_000) -> list[bytes]:
    out: list[bytes] = []
    while True:
        batch = consumer.poll(100, 0.0)  # type: ignore[attr-defined]
        if not batch:
            return out
        out.extend(m.value for m in batch)
        assert len(out) <= limit


def test_published_messages_reach_a_group(bus: Bus) -> None:
    bus.publish("t", [(None, b"a"), ("k", b"b")])
    consumer = bus.consumer(["t"], "g")
    assert sorted(_drain(consumer)) == [b"a", b"b"]


def test_same_key_keeps_order(bus: Bus) -> None:
    bus.publish("t", [("k1", f"{i}".encode()) for i in range(50)] + [("k2", b"x")])
    consumer = bus.consumer(["t"], "g")
    got = [v for v in _drain(consumer) if v != b"x"]
    assert got == [f"{i}".encode() for i in range(50)]


def test_uncommitted_messages_are_delivered_again(bus: Bus) -> None:
    bus.publish("t", [(None, b"1"), (None, b"2")])
    first = bus.consumer(["t"], "g")
    assert len(_drain(first)) == 2
    first.close()  # no commit: a crash before the downstream write was durable
    second = bus.consumer(["t"], "g")
    assert sorted(_drain(second)) == [b"1", b"2"]


def test_committed_messages_are_not_delivered_again(bus: Bus) -> None:
    bus.publish("t", [(None, b"1")])
    first = bus.consumer(["t"], "g")
    assert _drain(first) == [b"1"]
    first.commit()
    first.close()
    bus.publish("t", [(None, b"2")])
    second = bus.consumer(["t"], "g")
    assert _drain(second) == [b"2"]


def test_each_group_sees_everything(bus: Bus) -> None:
    bus.publish("t", [(None, b"1"), (None, b"2")])
    assert len(_drain(bus.consumer(["t"], "a"))) == 2
    assert len(_drain(bus.consumer(["t"], "b"))) == 2


def test_consumer_reads_several_topics(bus: Bus) -> None:
    bus.publish("t1", [(None, b"1")])
    bus.publish("t2", [(None, b"2")])
    messages = []
    consumer = bus.consumer(["t1", "t2"], "g")
    while batch := consumer.poll(10, 0.0):
        messages.extend(batch)
    assert {(m.topic, m.value) for m in messages} == {("t1", b"1"), ("t2", b"2")}


def test_poll_waits_for_a_message(bus: Bus) -> None:
    consumer = bus.consumer(["t"], "g")
    timer = threading.Timer(0.05, lambda: bus.publish("t", [(None, b"late")]))
    timer.start()
    started = time.monotonic()
    got = consumer.poll(10, 5.0)
    timer.join()
    assert [m.value for m in got] == [b"late"]
    assert time.monotonic() - started < 5.0


def test_poll_respects_max_messages(bus: Bus) -> None:
    bus.publish("t", [(None, b"x")] * 25)
    consumer = bus.consumer(["t"], "g")
    assert len(consumer.poll(10, 0.0)) <= 10


def test_unknown_scheme_names_the_known_ones() -> None:
    from pipeline.errors import BusError

    with pytest.raises(BusError, match="memory"):
        open_bus("nats://localhost")


def test_registry_lists_every_implementation() -> None:
    from pipeline.bus import BUSES

    assert set(BUSES) == set(IMPLEMENTATIONS)
