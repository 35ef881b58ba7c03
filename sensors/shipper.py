"""The shipper: drains the disk spool to the bus, forgetting a record only once the bus took it.

Stage: sensors, store-and-forward. In: committed records of a `Spool`. Out: event records on
`topics.RAW`, dead-letter records on `topics.DEAD_LETTERS`, keyed as they were spooled.

The ack contract:
- `ship_once(max_records)` peeks a batch at the spool's acked cursor, publishes it, and acks the
  spool only after `publish` returned (the Bus contract: returned means acknowledged). If
  `publish` raises `BusError`, nothing is acked and the same batch is sent again next time, so a
  failure never loses a record; a retry may duplicate part of a batch (at-least-once), which the
  deterministic event ids absorb in the store.
- Order: batches go in spool order, one after the other; a batch's event records are published
  before its dead letters, each in spool order, so each topic sees first copies in spool order.
- `run(stop)` repeats `ship_once`, waiting with capped exponential backoff (`Backoff`) while the
  bus fails (at least the Retry-After of an API that said it is busy, `uplink.UplinkBusy`) and
  for new spool data while the spool is empty; it returns once `stop` is set.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import structlog

from pipeline.bus import Bus, topics
from pipeline.errors import BusError
from sensors.spool import RecordKind, Spool, SpoolRecord
from sensors.uplink import UplinkBusy

log = structlog.get_logger(__name__)

TOPICS: dict[RecordKind, str] = {RecordKind.EVENT: topics.RAW, RecordKind.DEAD_LETTER: topics.DEAD_LETTERS}


@dataclass(frozen=True, slots=True)
class ShipResult:
    shipped: int  # records acked by this call
    pending: int  # records still in the spool after it
    error: str | None = None  # why the bus refused the batch (nothing was acked)
    retry_after_s: float = 0.0  # how long the other side asked us to wait (an API's Retry-After)


@dataclass
class Backoff:
    """Capped exponential backoff: `initial_s`, doubling (`factor`) up to `max_s`, back on `reset()`."""

    initial_s: float = 0.2
    max_s: float = 30.0
    factor: float = 2.0
    _next: float = 0.0

    def next_delay(self) -> float:
        delay = self._next or self.initial_s
        self._next = min(delay * self.factor, self.max_s)
        return delay

    def reset(self) -> None:
        self._next = 0.0


@dataclass
class ShipperMetrics:
    shipped_records: int = 0
    failed_batches: int = 0
    last_error: str | None = None
    caught_up_at: float = 0.0  # time.monotonic() when the spool was last empty after a ship


class Shipper:
    """Moves records from `spool` to `bus`; one thread calls it (see the module docstring)."""

    def __init__(self, spool: Spool, bus: Bus, *, batch_size: int = 500, backoff: Backoff | None = None) -> None:
        self.spool = spool
        self.bus = bus
        self.batch_size = batch_size
        self.backoff = backoff or Backoff()
        self.metrics = ShipperMetrics(caught_up_at=time.monotonic())

    def ship_once(self, max_records: int | None = None) -> ShipResult:
        """Publish one batch from the spool's cursor; ack it only if every publish returned."""
        batch = self.spool.peek(max_records or self.batch_size)
        if not batch:
            self.metrics.caught_up_at = time.monotonic()
            return ShipResult(shipped=0, pending=self.spool.pending_records)
        try:
            self._publish(batch)
        except BusError as e:
            self.metrics.failed_batches += 1
            self.metrics.last_error = str(e)
            wait = e.retry_after_s if isinstance(e, UplinkBusy) else 0.0
            return ShipResult(shipped=0, pending=self.spool.pending_records, error=str(e), retry_after_s=wait)
        self.spool.ack(batch)  # after publish returned: at-least-once, never lost
        self.metrics.shipped_records += len(batch)
        pending = self.spool.pending_records
        if pending == 0:
            self.metrics.caught_up_at = time.monotonic()
        log.info("spool_batch_shipped", records=len(batch), pending=pending)
        return ShipResult(shipped=len(batch), pending=pending)

    def _publish(self, batch: list[SpoolRecord]) -> None:
        for kind, topic in TOPICS.items():
            messages = [(r.key, r.value) for r in batch if r.kind is kind]
            if messages:
                self.bus.publish(topic, messages)

    @property
    def lag_s(self) -> float:
        """Seconds since the spool was last seen empty: 0 while the shipper keeps up."""
        if self.spool.pending_records == 0:
            return 0.0
        return time.monotonic() - self.metrics.caught_up_at

    def run(self, stop: threading.Event, idle_wait_s: float = 0.5) -> None:
        """Ship until `stop` is set, backing off while the bus fails."""
        while not stop.is_set():
            result = self.ship_once()
            if result.error is not None:
                delay = max(self.backoff.next_delay(), result.retry_after_s)
                log.warning("bus_unavailable", error=result.error, pending=result.pending, retry_in_s=delay)
                stop.wait(delay)
            elif result.shipped == 0:
                self.backoff.reset()
                self.spool.wait_for_data(idle_wait_s)
            else:
                self.backoff.reset()

    def drain(self, deadline_s: float) -> bool:
        """Ship until the spool is empty or `deadline_s` seconds passed; True if it emptied."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            result = self.ship_once()
            if result.error is None and result.pending == 0:
                return True
            if result.error is not None:
                delay = max(self.backoff.next_delay(), result.retry_after_s)
                time.sleep(min(delay, max(0.0, end - time.monotonic())))
        return self.spool.pending_records == 0
