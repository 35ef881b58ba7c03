"""Running checks: once for every target (`run_once`), or on a schedule (`WatchScheduler`).

In: `ServiceWatchSettings` (targets, vantage point, concurrency, jitter). Out: check events, handed
to a `sink` as each check ends (`spool_sink`: the sensor's spool; a list in tests).

Schedule contract:
- Each target is due every `interval_s`, its first check offset by a jitter in [0, jitter_s)
  derived from its tenant and id (deterministic: restarts keep the spread, and 1,000 targets of
  one interval do not all fire in the same second). Each later round adds a fresh jitter of up to
  `jitter_s / 10`, also derived, never random.
- At most `concurrency` checks run at once; a due check waits for a slot, and that wait shows as
  lag (start minus due time). Lag is the "falling behind" measure bench/watch.py reports.
- A target only checks from the vantage points it lists (all when it lists none).
- A round never overlaps itself: the next due time is counted from the due time, and a check
  still running when its next round is due skips that round (counted in `skipped`).
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from config.watch import ServiceWatchSettings, WatchTarget, resolver_host
from pipeline.records import Event, utc_now
from sensors.spool import RecordKind, Spool
from sensors.watch.check import CheckContext, check_target
from sensors.watch.probes import http_client

log = structlog.get_logger(__name__)

Sink = Callable[[Event], None]


def spool_sink(spool: Spool) -> Sink:
    """Each check's event appended to the sensor's spool and committed at once; the spool locks, so
    the agent's other inputs may share it, and its shipper takes the events to the bus."""

    def sink(event: Event) -> None:
        spool.append(RecordKind.EVENT, event.tenant, event.to_json())
        spool.commit()

    return sink


def targets_for(settings: ServiceWatchSettings, vantage_point: str | None = None) -> list[WatchTarget]:
    vantage = vantage_point or settings.vantage_point
    return [t for t in settings.targets if not t.vantage_points or vantage in t.vantage_points]


def _resolver(settings: ServiceWatchSettings) -> tuple[str, int] | None:
    return resolver_host(settings.resolver) if settings.resolver else None


async def run_once(settings: ServiceWatchSettings, vantage_point: str | None = None,
                   targets: Sequence[WatchTarget] | None = None,
                   now: Callable[[], datetime] = utc_now) -> list[Event]:
    """Check every target once, at most `concurrency` at a time; events in target order.

    `now` stamps each check's start (replays and the demo pass a fixed clock).
    """
    chosen = list(targets) if targets is not None else targets_for(settings, vantage_point)
    slots = asyncio.Semaphore(settings.concurrency)
    async with http_client(settings.concurrency) as client:
        ctx = CheckContext(vantage_point or settings.vantage_point, client, _resolver(settings),
                           settings.certificates, now)

        async def one(target: WatchTarget) -> Event:
            async with slots:
                return await check_target(target, ctx)

        return list(await asyncio.gather(*(one(t) for t in chosen)))


def jitter_fraction(*parts: str | int) -> float:
    """A stable number in [0, 1) from `parts`."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class ScheduleStats:
    checks: int = 0
    failures: int = 0
    skipped: int = 0
    lags_s: list[float] = field(default_factory=list)

    def lag_percentile(self, q: float) -> float:
        if not self.lags_s:
            return 0.0
        ordered = sorted(self.lags_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class WatchScheduler:
    """Checks every target of this vantage point on its interval until `stop` is set."""

    def __init__(self, settings: ServiceWatchSettings, sink: Sink, vantage_point: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._sink = sink
        self._vantage = vantage_point or settings.vantage_point
        self._clock = clock
        self.stats = ScheduleStats()
        self._running: set[tuple[str, str]] = set()

    def first_due(self, target: WatchTarget, start: float) -> float:
        spread = min(self._settings.jitter_s, float(target.interval_s))
        return start + spread * jitter_fraction(target.tenant, target.id)

    def next_due(self, target: WatchTarget, due: float, round_no: int) -> float:
        extra = self._settings.jitter_s / 10 * jitter_fraction(target.tenant, target.id, round_no)
        return due + target.interval_s + extra

    async def run(self, stop: asyncio.Event) -> ScheduleStats:
        targets = targets_for(self._settings, self._vantage)
        start = self._clock()
        heap = [(self.first_due(t, start), i, 0) for i, t in enumerate(targets)]
        heapq.heapify(heap)
        slots = asyncio.Semaphore(self._settings.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        async with http_client(self._settings.concurrency) as client:
            ctx = CheckContext(self._vantage, client, _resolver(self._settings), self._settings.certificates)
            while heap and not stop.is_set():
                due, index, round_no = heap[0]
                wait = due - self._clock()
                if wait > 0:
                    try:
                        await asyncio.wait_for(stop.wait(), wait)
                    except TimeoutError:
                        pass
                    continue
                heapq.heappop(heap)
                target = targets[index]
                heapq.heappush(heap, (self.next_due(target, due, round_no + 1), index, round_no + 1))
                await slots.acquire()  # bounded: a full pool delays the start, which shows as lag
                task = asyncio.create_task(self._one(target, due, ctx, slots))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        return self.stats

    async def _one(self, target: WatchTarget, due: float, ctx: CheckContext, slots: asyncio.Semaphore) -> None:
        key = (target.tenant, target.id)
        if key in self._running:
            self.stats.skipped += 1
            slots.release()
            return
        self._running.add(key)
        try:
            self.stats.lags_s.append(max(0.0, self._clock() - due))
            try:
                event = await check_target(target, ctx)
            except Exception as e:  # a bug in one check must not stop the others: say so loudly, go on
                self.stats.failures += 1
                log.error("watch_check_crashed", tenant=target.tenant, target=target.id, error=repr(e))
                return
            self.stats.checks += 1
            if event.get("event.outcome") == "failure":
                self.stats.failures += 1
            self._sink(event)
        finally:
            self._running.discard(key)
            slots.release()
