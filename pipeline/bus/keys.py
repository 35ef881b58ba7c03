"""Message keys: which partition an event goes to, so that detection state is partitioned by key.

A correlation counts one entity's events (the brute-force rule groups by `source.address`), and
a detect worker holds that count in memory. So every event of one (tenant, entity) must reach
the same detect worker, in order: the key is `tenant/entity`, and the bus keeps one key on one
partition. The entity is the first of `ENTITY_FIELDS` the event has; an event with none of them
is keyed by its tenant alone.

- `entity_key(tenant, doc)`: the key of one event document.
- `KeyedBus`: a Bus that re-keys what is published to chosen topics (`topics.EVENTS` by entity)
  and passes everything else through unchanged; publishing and acknowledgement are the inner
  bus's, so its ack contract holds as it is. `publish_events` does the same for messages whose
  Event is at hand (the ingest step), re-keying from the event's document instead of its bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from pipeline.bus.base import Bus, Consumer
from pipeline.bus.memory import EventMessage, publish_events

# In order of preference: the attacker's address is what network and auth correlations group by.
ENTITY_FIELDS = ("source.address", "source.ip", "host.name", "user.name")

Rekey = Callable[[str | None, bytes], str | None]


def entity_key(tenant: str, doc: Mapping[str, Any]) -> str:
    """`tenant/entity` for the first of `ENTITY_FIELDS` that `doc` has, else `tenant`."""
    for dotted in ENTITY_FIELDS:
        node: Any = doc
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, str | int) and node != "":
            return f"{tenant}/{node}"
    return tenant


def rekey_event(key: str | None, value: bytes) -> str | None:
    """The entity key of an event message; a message that is not an event object keeps its key."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return key
    if not isinstance(doc, dict):
        return key
    return event_document_key(key, doc)


def event_document_key(key: str | None, doc: Mapping[str, Any]) -> str | None:
    """`rekey_event` of an event's document, already decoded."""
    organization = doc.get("organization")
    tenant = organization.get("id") if isinstance(organization, dict) else None
    return entity_key(tenant if isinstance(tenant, str) else (key or ""), doc)


class KeyedBus:
    """Wraps a Bus: messages published to a topic in `rekey` get the key it computes."""

    def __init__(self, inner: Bus, rekey: Mapping[str, Rekey]) -> None:
        self.inner = inner
        self._rekey = dict(rekey)

    def publish(self, topic: str, messages: Sequence[tuple[str | None, bytes]]) -> None:
        rekey = self._rekey.get(topic)
        if rekey is not None:
            messages = [(rekey(key, value), value) for key, value in messages]
        self.inner.publish(topic, messages)

    def publish_events(self, topic: str, messages: Sequence[EventMessage]) -> None:
        """`publish`, for messages whose Event is at hand, handed on with them where the inner bus
        can carry them. `rekey_event` reads the event's document instead of decoding the bytes that
        encode it: the same key, without a parse per event (docs/performance.md, incidents)."""
        rekey = self._rekey.get(topic)
        if rekey is rekey_event:
            messages = [(event_document_key(key, event.doc), value, event) for key, value, event in messages]
        elif rekey is not None:
            messages = [(rekey(key, value), value, event) for key, value, event in messages]
        publish_events(self.inner, topic, messages)

    def consumer(self, topics: Sequence[str], group: str) -> Consumer:
        return self.inner.consumer(topics, group)

    def close(self) -> None:
        self.inner.close()
