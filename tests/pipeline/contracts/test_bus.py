"""The Bus contract (pipeline/bus/base.py), run against every implementation.

Kafka cases run against real brokers that session fixtures start on loopback (tests/servers/kafka.py).
Each test gets its own topic and group names, so no test sees another's messages or offsets, and a
Kafka member may need a moment to join its group: tests poll until they have what they expect or a
deadline passes, then poll once more to catch anything extra.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from pipeline.bus import Bus, Consumer, Message, open_bus
from pipeline.bus.memory import MemoryBus

if TYPE_CHECKING:  # imported for real by pytest_plugins, before which it must not be imported
    from tests.servers.kafka import KafkaServer

pytest_plugins = ["tests.servers.kafka"]

DEADLINE_S = 20.0  # longer than any group join seen (Tansu: ~2 s)
SETTLE_S = 0.2  # one last poll: whatever else the bus would deliver by now


def _kafka(server_fixture: str) -> Callable[[pytest.FixtureRequest], Bus]:
    def build(request: pytest.FixtureRequest) -> Bus:
        server: KafkaServer = request.getfixturevalue(server_fixture)
        return open_bus(server.url(partitions=3))

    return build


IMPLEMENTATIONS: dict[str, Callable[[pytest.FixtureRequest], Bus]] = {
    "memory": lambda request: MemoryBus(partitions=3),
    "kafka-noida": _kafka("noida_kafka"),
    "kafka-tansu": _kafka("tansu_kafka"),
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    instance = IMPLEMENTATIONS[request.param](request)
    yield instance
    instance.close()


@pytest.fixture
def topic() -> str:
    return f"test.{uuid.uuid4().hex}"


@pytest.fixture
def group() -> str:
    return f"group-{uuid.uuid4().hex}"


def _drain(consumer: Consumer, expected: int, deadline_s: float = DEADLINE_S) -> list[Message]:
    """Poll until `expected` messages came (or the deadline passed), then once more for extras."""
    out: list[Message] = []
    deadline = time.monotonic() + deadline_s
    while len(out) < expected and time.monotonic() < deadline:
        out.extend(consumer.poll(100, 0.2))
    out.extend(consumer.poll(100, SETTLE_S))
    return out


def _values(messages: list[Message]) -> list[bytes]:
    return [m.value for m in messages]


def test_published_messages_reach_a_group(bus: Bus, topic: str, group: str) -> None:
    bus.publish(topic, [(None, b"a"), ("k", b"b")])
    consumer = bus.consumer([topic], group)
    assert sorted(_values(_drain(consumer, 2))) == [b"a", b"b"]
    consumer.close()


def test_same_key_keeps_order(bus: Bus, topic: str, group: str) -> None:
    bus.publish(topic, [("k1", f"{i}".encode()) for i in range(50)] + [("k2", b"x")])
    consumer = bus.consumer([topic], group)
    got = [v for v in _values(_drain(consumer, 51)) if v != b"x"]
    assert got == [f"{i}".encode() for i in range(50)]
    consumer.close()


def test_uncommitted_messages_are_delivered_again(bus: Bus, topic: str, group: str) -> None:
    bus.publish(topic, [(None, b"1"), (None, b"2")])
    first = bus.consumer([topic], group)
    assert len(_drain(first, 2)) == 2
    first.close()  # no commit: a crash before the downstream write was durable
    second = bus.consumer([topic], group)
    assert sorted(_values(_drain(second, 2))) == [b"1", b"2"]
    second.close()


def test_committed_messages_are_not_delivered_again(bus: Bus, topic: str, group: str) -> None:
    bus.publish(topic, [(None, b"1")])
    first = bus.consumer([topic], group)
    assert _values(_drain(first, 1)) == [b"1"]
    first.commit()
    first.close()
    bus.publish(topic, [(None, b"2")])
    second = bus.consumer([topic], group)
    assert _values(_drain(second, 1)) == [b"2"]
    second.close()


def test_each_group_sees_everything(bus: Bus, topic: str, group: str) -> None:
    bus.publish(topic, [(None, b"1"), (None, b"2")])
    for name in (f"{group}.a", f"{group}.b"):
        consumer = bus.consumer([topic], name)
        assert len(_drain(consumer, 2)) == 2
        consumer.close()


def test_a_member_owns_the_partitions_it_was_handed_messages_of(bus: Bus, topic: str, group: str) -> None:
    bus.publish(topic, [(f"k{i}", f"{i}".encode()) for i in range(20)])
    consumer = bus.consumer([topic], group)
    messages = _drain(consumer, 20)
    assert len(messages) == 20
    owned = consumer.assignment()
    assert {(m.topic, m.partition) for m in messages} <= owned
    assert {name for name, _ in owned} == {topic}
    consumer.close()


def test_consumer_reads_several_topics(bus: Bus, topic: str, group: str) -> None:
    bus.publish(f"{topic}.1", [(None, b"1")])
    bus.publish(f"{topic}.2", [(None, b"2")])
    consumer = bus.consumer([f"{topic}.1", f"{topic}.2"], group)
    messages = _drain(consumer, 2)
    assert {(m.topic, m.value) for m in messages} == {(f"{topic}.1", b"1"), (f"{topic}.2", b"2")}
    consumer.close()


def test_poll_waits_for_a_message(bus: Bus, topic: str, group: str) -> None:
    consumer = bus.consumer([topic], group)
    timer = threading.Timer(0.05, lambda: bus.publish(topic, [(None, b"late")]))
    timer.start()
    started = time.monotonic()
    got = consumer.poll(10, 5.0)
    timer.join()
    assert [m.value for m in got] == [b"late"]
    assert time.monotonic() - started < 5.0
    consumer.close()


def test_poll_respects_max_messages(bus: Bus, topic: str, group: str) -> None:
    bus.publish(topic, [(None, b"x")] * 25)
    consumer = bus.consumer([topic], group)
    sizes: list[int] = []
    deadline = time.monotonic() + DEADLINE_S
    while sum(sizes) < 25 and time.monotonic() < deadline:
        if batch := consumer.poll(10, 0.2):
            sizes.append(len(batch))
    assert sum(sizes) == 25
    assert max(sizes) <= 10
    consumer.close()


def test_unknown_scheme_names_the_known_ones() -> None:
    from pipeline.errors import BusError

    with pytest.raises(BusError, match="memory"):
        open_bus("nats://localhost")


def test_registry_lists_every_implementation() -> None:
    from pipeline.bus import BUSES

    assert set(BUSES) == {name.partition("-")[0] for name in IMPLEMENTATIONS}
