"""The Bus: named topics of keyed byte messages, consumed by groups, at least once.

Contract every implementation keeps (tests/pipeline/contracts/test_bus.py checks it):
- `publish` returns only once every message is acknowledged by the bus (durable as the bus
  defines it); on failure it raises `BusError` and the caller still owns the messages.
- Messages with the same key go to the same partition and keep their order there.
- A consumer group sees each message at least once. `commit()` records that everything its
  `poll()` returned so far is done; after a restart (a new consumer of the same group) delivery
  resumes after the last commit, so messages polled but not committed are delivered again.
- Two groups on one topic each see every message.

A message's truth is its `value` bytes. In one process a publisher may hand the decoded `Event`
over beside them (`Message.event`, filled by `MemoryBus.publish_events` only): a consumer that
finds it may skip decoding, and must decode `value` when it is None (every other bus).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pipeline.records import Event


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    # The Event `value` encodes, when its publisher in this process handed it over (MemoryBus's
    # `publish_events`); None on a bus of bytes (Kafka). Not part of the message's identity. It
    # saves the detect step a second parse and validation of each event, ~25 % of the embedded
    # pipeline's CPU (docs/performance.md, "event-to-incident latency").
    event: Event | None = field(default=None, compare=False, repr=False)


class Consumer(Protocol):
    def poll(self, max_messages: int = 500, timeout_s: float = 0.0) -> list[Message]:
        """Up to `max_messages` messages, waiting at most `timeout_s` for the first one."""
        ...

    def commit(self) -> None:
        """Mark everything polled so far as processed for this consumer's group."""
        ...

    def lag(self) -> int | None:
        """Messages of this member's partitions not yet handed out by `poll`; None when unknown
        (not joined yet, or the bus cannot say). A metric: it never raises."""
        ...

    def assignment(self) -> frozenset[tuple[str, int]]:
        """The (topic, partition) pairs this member owns now; empty while it joins its group."""
        ...

    def close(self) -> None: ...


class Bus(Protocol):
    def publish(self, topic: str, messages: Sequence[tuple[str | None, bytes]]) -> None:
        """Append (key, value) pairs to `topic`; returns when all are acknowledged."""
        ...

    def consumer(self, topics: Sequence[str], group: str) -> Consumer:
        """A member of consumer group `group` reading `topics`."""
        ...

    def close(self) -> None: ...
