"""Consumer-group lag: how many messages of a group's topics are not yet committed.

In: a bus, a group and its topics. Out: the sum over the topics' partitions of (end offset -
the group's committed offset), or None when the bus cannot say (a broker that does not answer).

This is the group's lag, not a member's: it needs no live member, so it keeps counting while a
worker is out of its group (retrying a batch against a store that is down) — exactly when
back-pressure must show. `MemoryBus` counts it in memory; on Kafka it asks the cluster (the
admin client's ListOffsets and OffsetFetch), as `kafka-consumer-groups --describe` does.
It never raises: a metric must not stop a worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog

from config.errors import GovsocError
from pipeline.bus.base import Bus
from pipeline.bus.memory import MemoryBus

log = structlog.get_logger(__name__)


def group_lag(bus: Bus, group: str, topics: Sequence[str]) -> int | None:
    inner = getattr(bus, "inner", bus)  # a KeyedBus wraps the real one
    if isinstance(inner, MemoryBus):
        return inner.lag(group, topics)
    try:
        from pipeline.bus.kafka import KafkaBus
    except ImportError:
        return None
    if isinstance(inner, KafkaBus):
        return _kafka_lag(inner, group, topics)
    return None


def _kafka_lag(bus: Any, group: str, topics: Sequence[str]) -> int | None:
    import kafka.errors
    from kafka.admin import OffsetSpec
    from kafka.structs import TopicPartition

    try:
        counts = bus.partition_counts(topics)
        parts = [TopicPartition(topic, p) for topic, n in counts.items() for p in range(n)]
        if not parts:
            return None
        admin = bus.admin()
        ends = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in parts})
        committed = admin.list_group_offsets({group: parts}).get(group, {})
    except (GovsocError, kafka.errors.KafkaError, OSError, KeyError, TypeError, ValueError) as e:
        log.debug("kafka_lag_unknown", group=group, reason=str(e))
        return None
    total = 0
    for tp in parts:
        done = committed.get(tp)
        start = done.offset if done is not None and done.offset >= 0 else 0
        total += max(0, int(ends[tp].offset) - int(start))
    return total
