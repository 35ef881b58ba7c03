"""MemoryBus: the in-process Bus of the embedded back end (`memory://`).

Topics are append-only lists per partition in this process's memory; a consumer group keeps one
committed offset per (topic, partition). It keeps the Bus contract within one process: nothing
survives the process, which is why sensors spool to disk before they publish.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Sequence

from pipeline.bus.base import Message


class MemoryBus:
    def __init__(self, partitions: int = 1) -> None:
        self._partitions = partitions
        self._topics: dict[str, list[list[Message]]] = {}
        self._committed: dict[tuple[str, str, int], int] = {}  # (group, topic, partition) -> next offset
        self._cond = threading.Condition()

    def _topic(self, topic: str) -> list[list[Message]]:
        return self._topics.setdefault(topic, [[] for _ in range(self._partitions)])

    def partition_for(self, key: str | None, counter: int) -> int:
        if key is None:
            return counter % self._partitions
        return zlib.crc32(key.encode()) % self._partitions

    def publish(self, topic: str, messages: Sequence[tuple[str | None, bytes]]) -> None:
        with self._cond:
            parts = self._topic(topic)
            for i, (key, value) in enumerate(messages):
                log = parts[self.partition_for(key, i)]
                log.append(Message(topic, parts.index(log), len(log), key, value))
            self._cond.notify_all()

    def consumer(self, topics: Sequence[str], group: str) -> MemoryConsumer:
        return MemoryConsumer(self, tuple(topics), group)

    def close(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def lag(self, group: str) -> int:
        """Messages not yet committed by `group`, over all topics."""
        with self._cond:
            return sum(
                len(log) - self._committed.get((group, topic, p), 0)
                for topic, parts in self._topics.items()
                for p, log in enumerate(parts)
            )


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
                batch = log[pos:pos + max_messages - len(out)]
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
            for (topic, p), pos in self._position.items():
                self._bus._committed[(self._group, topic, p)] = pos

    def close(self) -> None:
        self._closed = True
