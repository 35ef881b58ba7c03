"""The Bus: named topics of keyed byte messages, consumed by groups, at least once.

Contract every implementation keeps (tests/pipeline/contracts/test_bus.py checks it):
- `publish` returns only once every message is acknowledged by the bus (durable as the bus
  defines it); on failure it raises `BusError` and the caller still owns the messages.
- Messages with the same key go to the same partition and keep their order there.
- A consumer group sees each message at least once. `commit()` records that everything its
  `poll()` returned so far is done; after a restart (a new consumer of the same group) delivery
  resumes after the last commit, so messages polled but not committed are delivered again.
- Two groups on one topic each see every message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes


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

    def close(self) -> None: ...


class Bus(Protocol):
    def publish(self, topic: str, messages: Sequence[tuple[str | None, bytes]]) -> None:
        """Append (key, value) pairs to `topic`; returns when all are acknowledged."""
        ...

    def consumer(self, topics: Sequence[str], group: str) -> Consumer:
        """A member of consumer group `group` reading `topics`."""
        ...

    def close(self) -> None: ...
