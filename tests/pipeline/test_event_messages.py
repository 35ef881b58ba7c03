"""Event messages with their events at hand (`publish_events`): the same bytes and keys as
`publish`, the decoded event beside them on the memory bus only, and the ingest step using it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson

from config.settings import TenantConfig, TenantKind
from config.tenants import TenantTree
from pipeline.bus import Bus, Consumer, Message, topics
from pipeline.bus.keys import KeyedBus, rekey_event
from pipeline.bus.memory import EventPublisher, MemoryBus, publish_events
from pipeline.enrich import Enricher
from pipeline.ingest import IngestStep
from pipeline.store.registry import open_event_store
from tests.factories import make_event

TREE = TenantTree.from_config([TenantConfig(id="national", name="N", kind=TenantKind.NATIONAL),
                               TenantConfig(id="hanoi", name="HN", parent="national")])


class BytesOnlyBus:
    """A bus of bytes alone, as Kafka is: it has no `publish_events`. It keeps what it was given."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str | None, bytes]] = []

    def publish(self, topic: str, messages: Sequence[tuple[str | None, bytes]]) -> None:
        self.published.extend((topic, key, value) for key, value in messages)

    def consumer(self, topics: Sequence[str], group: str) -> Consumer:
        raise NotImplementedError("publish-only")

    def close(self) -> None:
        pass


def test_the_memory_bus_carries_the_event_beside_the_same_bytes() -> None:
    bus = MemoryBus(partitions=4)
    consumer = bus.consumer([topics.EVENTS], "g")
    events = [make_event("hanoi", n, source__address=f"198.51.100.{n}") for n in range(6)]
    publish_events(bus, topics.EVENTS, [(e.tenant, e.to_json(), e) for e in events])
    bus.publish(topics.EVENTS, [(e.tenant, e.to_json()) for e in events])
    received = sorted(consumer.poll(100), key=lambda m: (m.offset, m.partition))
    assert len(received) == 12
    with_event = [m for m in received if m.event is not None]
    assert sorted(m.event.id for m in with_event if m.event is not None) == sorted(e.id for e in events)
    for message in with_event:
        assert message.event is not None and message.value == message.event.to_json()
    # The event is not part of a message's identity: same place, same bytes, equal messages.
    first = with_event[0]
    assert first == Message(first.topic, first.partition, first.offset, first.key, first.value)


def test_a_keyed_bus_keys_event_messages_as_it_keys_their_bytes() -> None:
    plain, handed = MemoryBus(partitions=8), MemoryBus(partitions=8)
    events = [make_event("hanoi", 0, source__address="203.0.113.9"), make_event("hanoi", 1, user__name="quantri"),
              make_event("hanoi", 2)]
    KeyedBus(plain, {topics.EVENTS: rekey_event}).publish(topics.EVENTS, [("hanoi", e.to_json()) for e in events])
    keyed = KeyedBus(handed, {topics.EVENTS: rekey_event})
    assert isinstance(keyed, EventPublisher)
    keyed.publish_events(topics.EVENTS, [("hanoi", e.to_json(), e) for e in events])
    expected = [(m.partition, m.key, m.value) for m in plain.consumer([topics.EVENTS], "g").poll(10)]
    got = handed.consumer([topics.EVENTS], "g").poll(10)
    assert [(m.partition, m.key, m.value) for m in got] == expected
    assert sorted(str(m.key) for m in got) == ["hanoi", "hanoi/203.0.113.9", "hanoi/quantri"]
    assert all(m.event is not None for m in got)


def test_a_bus_of_bytes_gets_the_bytes_alone() -> None:
    inner = BytesOnlyBus()
    bus: Bus = inner
    assert not isinstance(bus, EventPublisher)
    event = make_event("hanoi", 0, source__address="203.0.113.9")
    KeyedBus(bus, {topics.EVENTS: rekey_event}).publish_events(topics.EVENTS, [("hanoi", event.to_json(), event)])
    assert inner.published == [(topics.EVENTS, "hanoi/203.0.113.9", event.to_json())]


def test_ingest_hands_each_stored_event_on_with_its_bytes(tmp_path: Path) -> None:
    store, bus = open_event_store(f"sqlite:///{tmp_path / 'e.db'}"), MemoryBus()
    raw = [make_event("hanoi", n, source__ip=f"10.0.0.{n}") for n in range(3)]
    messages = [Message(topics.RAW, 0, n, None, e.to_json()) for n, e in enumerate(raw)]
    result = IngestStep(Enricher(TREE), store, KeyedBus(bus, {topics.EVENTS: rekey_event}))(
        [*messages, Message(topics.RAW, 0, 3, None, b"{not json")])
    assert (result.events, result.dead_letters) == (3, 1)
    out = bus.consumer([topics.EVENTS], "detect").poll(10)
    assert [m.event.id for m in out if m.event is not None] == [e.id for e in raw]
    for message in out:
        assert message.event is not None
        assert message.value == message.event.to_json()
        assert orjson.loads(message.value)["organization"]["name"] == "HN"  # enriched, as stored
        assert message.key == rekey_event(None, message.value)
    store.close()
