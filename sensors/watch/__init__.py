"""Service watch sensor: checks of public e-government services, as ECS events.

Modules, in flow order:
- content: untrusted HTML bytes -> a bounded `PageSnapshot` (title, visible lines, scripts, iframes,
  structure); never raises.
- probes: DNS (one resolver, its own response code), TCP connect, HTTP GET with time to first byte.
- tls: the handshake and the certificate's facts (expiry, chain, name, pin, legacy protocols).
- check: one target from one vantage point -> one `service_watch` event.
- schedule: `run_once` for every target, and `WatchScheduler` (interval, jitter, bounded concurrency).

Sensors measure; detections/watch judges (and may not import this package, nor this one it).
"""

from sensors.watch.check import DATASET, CheckContext, check_target
from sensors.watch.content import PageSnapshot, extract_page
from sensors.watch.schedule import ScheduleStats, WatchScheduler, run_once, spool_sink, targets_for

__all__ = [
    "DATASET",
    "CheckContext",
    "PageSnapshot",
    "ScheduleStats",
    "WatchScheduler",
    "check_target",
    "extract_page",
    "run_once",
    "spool_sink",
    "targets_for",
]
