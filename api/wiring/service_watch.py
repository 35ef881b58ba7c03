"""`govsoc up`'s own vantage point: the configured service-watch targets checked on their intervals.

In: the runtime (its settings' `service_watch` and its bus) and a stop flag. Out: each check's
event published on `topics.RAW`, as a sensor ships its events, so ingest stores it and the detect
step's `WatchDetector` raises the outage, certificate, DNS and defacement alerts.

The scheduler (`sensors.watch.WatchScheduler`: per-target interval, jitter, bounded concurrency)
runs on an asyncio loop in a thread of its own, beside the pipeline's; a check that fails is an
event like any other (the target is down), and a scheduler that crashes is logged, not raised, so
it never takes the API down with it. `govsoc watch run` stays the one-shot form (cron, or a
vantage point without a running govsoc).
"""

from __future__ import annotations

import asyncio
import threading

import structlog

from api.wiring.runtime import Runtime
from pipeline.bus import topics
from pipeline.bus.keys import entity_key
from pipeline.records import Event
from sensors.watch import WatchScheduler, targets_for

log = structlog.get_logger(__name__)

STOP_POLL_S = 0.5


def start_service_watch(runtime: Runtime, stop: threading.Event) -> threading.Thread | None:
    """Start checking this vantage point's targets until `stop` is set; None when it has none."""
    settings = runtime.settings.service_watch
    targets = targets_for(settings)
    if not targets:
        return None
    bus = runtime.bus

    def sink(event: Event) -> None:
        bus.publish(topics.RAW, [(entity_key(event.tenant, event.doc), event.to_json())])

    async def watch() -> None:
        done = asyncio.Event()

        async def relay() -> None:  # the threading.Event of the caller, seen from this loop
            while not stop.is_set():
                await asyncio.sleep(STOP_POLL_S)
            done.set()

        relay_task = asyncio.create_task(relay())
        try:
            stats = await WatchScheduler(settings, sink).run(done)
        finally:
            relay_task.cancel()
        log.info("service_watch_stopped", checks=stats.checks, failures=stats.failures, skipped=stats.skipped)

    def run() -> None:
        try:
            asyncio.run(watch())
        except Exception as e:  # the checks stop; the API and the pipeline must not
            log.error("service_watch_crashed", error=repr(e))

    thread = threading.Thread(target=run, name="service-watch", daemon=True)
    thread.start()
    log.info("service_watch_started", targets=len(targets), vantage_point=settings.vantage_point)
    return thread
