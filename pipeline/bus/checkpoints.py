"""Checkpoints: a consumer's in-memory state per partition, saved beside its offsets.

A detect worker counts correlation windows in memory, per partition of `topics.EVENTS`. When it
dies, the partition's next owner must start from the same state, or it would miss the alerts of
windows that were half full (or raise them with another first event). So before each commit the
worker saves, per partition it touched, `(next offset, state bytes)`; a new owner loads the
newest checkpoint and skips messages below its offset (their effects are in the state).

Contract (both implementations):
- `save` returns once the checkpoint is durable (acknowledged like a bus publish); a failure
  raises `BusError` and the caller must not commit.
- `load` returns the newest checkpoint saved for (group, topic, partition), or None.
- Checkpoints are opaque bytes; the caller versions, signs and sizes what it puts in them
  (api/wiring/detect_state.py: compressed JSON under an HMAC that also covers the offset, since
  the offset header written here is not signed; at most 900 kB, below Kafka's default 1 MB
  `message.max.bytes`, which a bigger record would hit as `MessageSizeTooLargeError`).

- `MemoryCheckpoints`: a dict, for the in-process bus (nothing outlives the process anyway).
- `KafkaCheckpoints`: a topic per group, `govsoc.state.<group>`, with as many partitions as the
  consumed topic; the checkpoint of partition p is written to partition p, and `load` reads that
  partition's last message. The topic may be compacted (the key is `topic/partition`).
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import orjson

from pipeline.bus.base import Bus
from pipeline.errors import BusError

Checkpoint = tuple[int, bytes]  # (next offset to process, state)
_SEP = b"\n"


class CheckpointStore(Protocol):
    def save(self, group: str, topic: str, partition: int, offset: int, state: bytes) -> None: ...

    def load(self, group: str, topic: str, partition: int) -> Checkpoint | None: ...

    def close(self) -> None: ...


def state_topic(group: str) -> str:
    return f"govsoc.state.{group}"


class MemoryCheckpoints:
    def __init__(self) -> None:
        self._saved: dict[tuple[str, str, int], Checkpoint] = {}
        self._lock = threading.Lock()

    def save(self, group: str, topic: str, partition: int, offset: int, state: bytes) -> None:
        with self._lock:
            self._saved[(group, topic, partition)] = (offset, state)

    def load(self, group: str, topic: str, partition: int) -> Checkpoint | None:
        with self._lock:
            return self._saved.get((group, topic, partition))

    def close(self) -> None:
        pass


class KafkaCheckpoints:
    """Checkpoints in Kafka; one instance per worker thread (kafka-python consumers are not shared)."""

    def __init__(self, bus: Any) -> None:
        import kafka

        self._kafka = kafka
        self._bus = bus
        self._reader: Any = None
        self._ready: set[str] = set()

    def _topic_for(self, group: str, topic: str) -> str:
        """The group's state topic, created with as many partitions as `topic` has."""
        name = state_topic(group)
        if name not in self._ready:
            self._bus.ensure_topics([topic])
            partitions = self._bus.partition_counts([topic]).get(topic, self._bus.options.partitions)
            self._bus.ensure_topics([name], partitions=partitions)
            self._ready.add(name)
        return name

    def save(self, group: str, topic: str, partition: int, offset: int, state: bytes) -> None:
        name = self._topic_for(group, topic)
        value = orjson.dumps({"offset": offset}) + _SEP + state
        try:
            self._bus.producer().send(name, key=f"{topic}/{partition}".encode(), value=value,
                                      partition=partition).get()
        except self._kafka.errors.KafkaError as e:
            raise BusError(f"kafka: saving the checkpoint of {topic}/{partition} for {group!r} failed: {e}") from e

    def load(self, group: str, topic: str, partition: int) -> Checkpoint | None:
        name = self._topic_for(group, topic)
        tp = self._kafka.TopicPartition(name, partition)
        try:
            reader = self._reader_client()
            reader.assign([tp])
            end = int(reader.end_offsets([tp])[tp])
            if end == 0:
                return None
            reader.seek(tp, end - 1)
            records = reader.poll(timeout_ms=5000, max_records=1).get(tp, [])
        except self._kafka.errors.KafkaError as e:
            raise BusError(f"kafka: loading the checkpoint of {topic}/{partition} for {group!r} failed: {e}") from e
        if not records:
            raise BusError(f"kafka: the checkpoint of {topic}/{partition} for {group!r} (offset {end - 1} of "
                           f"{name}) could not be read")
        header, _, state = records[-1].value.partition(_SEP)
        return int(orjson.loads(header)["offset"]), state

    def _reader_client(self) -> Any:
        if self._reader is None:
            config = self._bus.options.client_config()
            config.update(enable_auto_commit=False, group_id=None)
            self._reader = self._kafka.KafkaConsumer(**config)
        return self._reader

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def open_checkpoints(bus: Bus) -> CheckpointStore:
    """The checkpoint store that lives where `bus` lives."""
    from pipeline.bus.kafka import KafkaBus  # kafka-python only when the bus is Kafka

    inner = getattr(bus, "inner", bus)
    if isinstance(inner, KafkaBus):
        return KafkaCheckpoints(inner)
    return MemoryCheckpoints()
