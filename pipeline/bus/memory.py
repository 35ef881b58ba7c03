"""MemoryBus: the in-process Bus of the embedded back end (`memory://`).

Topics are append-only logs per partition in this process's memory; a consumer group keeps one
committed offset per (topic, partition). It keeps the Bus contract within one process: nothing
survives the process, which is why sensors spool to disk before they publish.

Memory is bounded by what is not yet committed: once every group that reads a topic has
committed past a message, the message is dropped (offsets stay absolute, so positions and
commits are unaffected). A topic no group reads keeps its messages.

`publish_events` is `publish` for messages whose `Event` the publisher holds (the ingest step):
each message carries it beside its bytes (`Message.event`), so an in-process consumer need not
parse and validate the bytes again. The bytes stay the message; the event is their decoded form.
`publish_events(bus, ...)` is how a publisher uses it: the shortcut where the bus has it, plain
`publish` of the bytes everywhere else (Kafka).
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from pipeline.bus.base import Bus, Message
from pipeline.records import Event

EventMessage = tuple[str | None, bytes, Event]  # key, the event's JSON, the event itself


@runtime_checkable
class EventPublisher(Protocol):
    """A bus that can carry each message's decoded Event beside its bytes (see the module docstring)."""

    def publish_events(self, topic: str, messages: Sequence[EventMessage]) -> None:
        """`publish` of (key, value) with each message's `event` set; `value` must encode `event`."""
        ...


def publish_events(bus: Bus, topic: str, messages: Sequence[EventMessage]) -> None:
    """Publish event messages with their events where `bus` can carry them, else their bytes alone."""
    if isinstance(bus, EventPublisher):
        bus.publish_events(topic, messages)
    else:
        bus.publish(topic, [(key, value) for key, value, _ in messages])


@dataclass
class _Partition:
    base: int = 0  # absolute offset of messages[0]
    messages: list[Message] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.base + len(self.messages)

    def read(self, position: int, count: int) -> list[Message]:
        start = max(position - self.base, 0)
        return self.messages[start:start + count]

    def trim(self, upto: int) -> None:
        """Forget messages before absolute offset `upto`."""
        drop = upto - self.base
        if drop > 0:
            del self.messages[:drop]
            self.base = upto


class MemoryBus:
    def __init__(self, partitions: int = 1) -> None:
        self._partitions = partitions
        self._topics: dict[str, list[_Partition]] = {}
        self._groups: dict[str, set[str]] = {}  # topic -> groups that read it
        self._committed: dict[tuple[str, str, int], int] = {}  # (group, topic, partition) -> next offset
        self._cond = threading.Condition()

    @classmethod
    def from_url(cls, url: str) -> MemoryBus:
        return cls()

    def _topic(self, topic: str) -> list[_Partition]:
        return self._topics.setdefault(topic, [_Partition() for _ in range(self._partitions)])

    def partition_for(self, key: str | None, counter: int) -> int:
        if key is None:
            return counter % self._partitions
        return zlib.crc32(key.encode()) % self._partitions

    def publish(self, topic: str, messages: Sequence[tuple[str | None, bytes]]) -> None:
        self._append(topic, ((key, value, None) for key, value in messages))

    def publish_events(self, topic: str, messages: Sequence[EventMessage]) -> None:
        self._append(topic, messages)

    def _append(self, topic: str, messages: Iterable[tuple[str | None, bytes, Event | None]]) -> None:
        with self._cond:
            parts = self._topic(topic)
            for i, (key, value, event) in enumerate(messages):
                p = self.partition_for(key, i)
                log = parts[p]
                log.messages.append(Message(topic, p, log.end, key, value, event))
            self._cond.notify_all()

    def consumer(self, topics: Sequence[str], group: str) -> MemoryConsumer:
        with self._cond:
            for topic in topics:
                self._groups.setdefault(topic, set()).add(group)
        return MemoryConsumer(self, tuple(topics), group)

    def close(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def lag(self, group: str, topics: Sequence[str] | None = None) -> int:
        """Messages not yet committed by `group`, over `topics` (every topic when None)."""
        with self._cond:
            return sum(
                log.end - self._committed.get((group, topic, p), 0)
                for topic, parts in self._topics.items() if topics is None or topic in topics
                for p, log in enumerate(parts)
            )

    def _commit(self, group: str, positions: dict[tuple[str, int], int]) -> None:
        """Record `group`'s positions, then trim what every reading group has committed."""
        for (topic, p), pos in positions.items():
            self._committed[(group, topic, p)] = pos
            readers = self._groups.get(topic, ())
            low = min((self._committed.get((g, topic, p), 0) for g in readers), default=0)
            self._topic(topic)[p].trim(low)


class MemoryConsumer:
    """One member of a group. Members of one group in one process share its committed offsets."""

    def __init__(self, bus: MemoryBus, topics: tuple[str, ...], group: str) -> None:
        self._bus = bus
        self._topics = topics
        self._group = group
        self._position: dict[tuple[str, int], int] = {}  # next offset to hand out
        self._closed = False

    def _fetch(self, max_messages: int) -> list[Message]:
        bus = self._bus
        out: list[Message] = []
        for topic in self._topics:
            for p, log in enumerate(bus._topic(topic)):
                pos = self._position.get((topic, p))
                if pos is None:
                    pos = bus._committed.get((self._group, topic, p), 0)
                batch = log.read(pos, max_messages - len(out))
                out.extend(batch)
                self._position[(topic, p)] = pos + len(batch)
                if len(out) >= max_messages:
                    return out
        return out

    def poll(self, max_messages: int = 500, timeout_s: float = 0.0) -> list[Message]:
        with self._bus._cond:
            out = self._fetch(max_messages)
            if not out and timeout_s > 0 and not self._closed:
                self._bus._cond.wait(timeout_s)
                out = self._fetch(max_messages)
            return out

    def commit(self) -> None:
        with self._bus._cond:
            self._bus._commit(self._group, dict(self._position))

    def lag(self) -> int | None:
        """Messages not yet handed out to this member (members of one group share partitions here)."""
        with self._bus._cond:
            return sum(
                log.end - self._position.get((topic, p), self._bus._committed.get((self._group, topic, p), 0))
                for topic in self._topics for p, log in enumerate(self._bus._topic(topic))
            )

    def assignment(self) -> frozenset[tuple[str, int]]:
        """Every partition of its topics: members of one group share them here (no rebalancing)."""
        with self._bus._cond:
            return frozenset((topic, p) for topic in self._topics for p in range(len(self._bus._topic(topic))))

    def close(self) -> None:
        self._closed = True
