"""Event keys: one (tenant, entity) always maps to one key, so to one partition and one detect worker."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from pipeline.bus import topics
from pipeline.bus.keys import ENTITY_FIELDS, KeyedBus, entity_key, rekey_event
from pipeline.bus.memory import MemoryBus


def test_the_attackers_address_comes_first() -> None:
    doc = {"source": {"address": "203.0.113.7", "ip": "203.0.113.7"}, "user": {"name": "root"},
           "host": {"name": "portal"}}
    assert entity_key("hanoi", doc) == "hanoi/203.0.113.7"


def test_an_event_without_an_entity_is_keyed_by_its_tenant() -> None:
    assert entity_key("hanoi", {"message": "x"}) == "hanoi"


def test_rekey_reads_tenant_and_entity_from_the_event_json() -> None:
    value = orjson.dumps({"organization": {"id": "byt"}, "user": {"name": "quantri"}})
    assert rekey_event("byt", value) == "byt/quantri"
    assert rekey_event("byt", b"not json") == "byt"


@given(st.sampled_from(ENTITY_FIELDS), st.text(min_size=1, max_size=30))
def test_the_same_entity_gets_the_same_key(field: str, value: str) -> None:
    outer, inner = field.split(".")
    doc = {outer: {inner: value}}
    assert entity_key("t", doc) == entity_key("t", dict(doc)) == f"t/{value}"


def test_keyed_bus_rekeys_only_its_topics() -> None:
    bus = MemoryBus(partitions=8)
    keyed = KeyedBus(bus, {topics.EVENTS: rekey_event})
    event = orjson.dumps({"organization": {"id": "hanoi"}, "source": {"address": "198.51.100.1"}})
    keyed.publish(topics.EVENTS, [("hanoi", event)])
    keyed.publish(topics.ALERTS, [("hanoi", b"{}")])
    consumer = bus.consumer([topics.EVENTS, topics.ALERTS], "g")
    keys = {m.topic: m.key for m in consumer.poll(10)}
    assert keys == {topics.EVENTS: "hanoi/198.51.100.1", topics.ALERTS: "hanoi"}
