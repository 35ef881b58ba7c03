"""The shipper: acks the spool only after the bus acknowledged; a bus that is down loses nothing."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from pipeline.bus import topics
from pipeline.bus.memory import MemoryBus
from pipeline.errors import BusError
from sensors.shipper import Backoff, Shipper
from sensors.spool import FsyncPolicy, RecordKind, Spool, SpoolOptions

OPTIONS = SpoolOptions(max_bytes=64 * 1024 * 1024, segment_bytes=64 * 1024, fsync=FsyncPolicy.NEVER)


class FlakyBus(MemoryBus):
    """The real MemoryBus, but `publish` raises while `is_down`, or for the calls in `down_calls`."""

    def __init__(self, down_calls: Sequence[int] = ()) -> None:
        super().__init__(partitions=3)
        self.is_down = False
        self.down_calls = set(down_calls)
        self.calls = 0

    def publish(self, topic: str, messages: Sequence[tuple[str | None, bytes]]) -> None:
        self.calls += 1
        if self.is_down or self.calls in self.down_calls:
            raise BusError("uplink down")
        super().publish(topic, messages)


def spool_with(tmp_path: Path, n: int, *, dead_every: int = 0) -> Spool:
    spool = Spool(tmp_path / "spool", OPTIONS)
    for i in range(n):
        kind = RecordKind.DEAD_LETTER if dead_every and i % dead_every == 0 else RecordKind.EVENT
        spool.append(kind, f"tenant-{i % 4}", b"%06d" % i)
    spool.commit()
    return spool


def first_copies(bus: MemoryBus, topic: str) -> list[bytes]:
    """Values of `topic` in the order of their first appearance per key (duplicates dropped)."""
    consumer = bus.consumer([topic], f"check-{topic}")
    seen: dict[bytes, None] = {}
    by_key: dict[str | None, list[bytes]] = {}
    while messages := consumer.poll(10_000):
        for m in messages:
            if m.value not in seen:
                seen[m.value] = None
                by_key.setdefault(m.key, []).append(m.value)
    for values in by_key.values():
        assert values == sorted(values), "reordered within a key"
    return sorted(seen)


def test_a_batch_is_acked_only_after_publish_returned(tmp_path: Path) -> None:
    spool, bus = spool_with(tmp_path, 10), FlakyBus(down_calls=[1])
    shipper = Shipper(spool, bus, batch_size=4)
    failed = shipper.ship_once()
    assert failed.shipped == 0 and failed.error and failed.pending == 10
    assert spool.pending_records == 10
    ok = shipper.ship_once()
    assert ok.shipped == 4 and ok.pending == 6 and ok.error is None


def test_bus_down_for_part_of_the_run_loses_nothing_and_keeps_order(tmp_path: Path) -> None:
    spool = spool_with(tmp_path, 5000, dead_every=7)
    bus = FlakyBus(down_calls=range(5, 40))
    shipper = Shipper(spool, bus, batch_size=200)
    errors = 0
    for _ in range(500):
        result = shipper.ship_once()
        errors += result.error is not None
        if result.pending == 0 and result.error is None:
            break
    assert errors > 0 and spool.pending_records == 0
    events = first_copies(bus, topics.RAW)
    letters = first_copies(bus, topics.DEAD_LETTERS)
    assert letters == [b"%06d" % i for i in range(5000) if i % 7 == 0]
    assert events == [b"%06d" % i for i in range(5000) if i % 7 != 0]


def test_a_batch_that_failed_half_way_is_sent_again_whole(tmp_path: Path) -> None:
    spool = spool_with(tmp_path, 10, dead_every=3)
    bus = FlakyBus(down_calls=[2])  # events published, dead letters refused
    shipper = Shipper(spool, bus, batch_size=10)
    assert shipper.ship_once().error
    assert shipper.ship_once().shipped == 10
    assert len(first_copies(bus, topics.RAW)) == 6 and len(first_copies(bus, topics.DEAD_LETTERS)) == 4


def test_the_loop_backs_off_while_the_bus_is_down_and_resumes(tmp_path: Path) -> None:
    spool = spool_with(tmp_path, 300)
    bus = FlakyBus()
    bus.is_down = True
    shipper = Shipper(spool, bus, batch_size=50, backoff=Backoff(initial_s=0.01, max_s=0.05))
    stop = threading.Event()
    thread = threading.Thread(target=shipper.run, args=(stop,), kwargs={"idle_wait_s": 0.05})
    thread.start()
    try:
        stop.wait(0.3)
        assert spool.pending_records == 300 and shipper.metrics.failed_batches >= 3
        bus.is_down = False
        for _ in range(100):
            if spool.pending_records == 0:
                break
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(5)
    assert spool.pending_records == 0
    assert first_copies(bus, topics.RAW) == [b"%06d" % i for i in range(300)]


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(initial_s=0.5, max_s=3.0)
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_lag_counts_from_the_last_time_the_spool_was_empty(tmp_path: Path) -> None:
    spool = spool_with(tmp_path, 3)
    shipper = Shipper(spool, MemoryBus())
    assert shipper.lag_s > 0
    shipper.ship_once()
    assert shipper.lag_s == 0.0
