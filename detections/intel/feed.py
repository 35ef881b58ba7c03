"""IntelFeed: an `IntelMatcher` kept current with the store, for the detection worker's stream.

Same shape as the Sigma engine (`process(events) -> alerts`), so the detect step runs it beside
`SigmaEngine`. The matcher is built from `store.matchable(scope)` and rebuilt when the store's
`revision()` has changed; the revision is read at most every `check_every_s` seconds (one small
query), so an indicator published through the API or `govsoc intel import` starts matching
within that time, without a restart. Rebuilding takes ~0.2 s per 100,000 indicators
(bench/intel.py) and happens on the calling thread, between two batches. `record(alerts)` keeps
the sightings of the alerts raised (idempotent per event, store.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import structlog

from config.tenants import TenantScope, TenantTree
from detections.intel.match import IntelMatcher
from detections.intel.store import IntelStore, sightings_of
from pipeline.records import Alert, Event

log = structlog.get_logger(__name__)


class IntelFeed:
    def __init__(self, store: IntelStore, tree: TenantTree, scope: TenantScope | None = None, *,
                 check_every_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._tree = tree
        self._scope = scope or TenantScope.everything()
        self._check_every_s = check_every_s
        self._clock = clock
        self._revision = -1
        self._next_check = float("-inf")
        self._matcher = IntelMatcher((), tree)

    @property
    def matcher(self) -> IntelMatcher:
        """The matcher in use (reloaded by `process` when the store changed)."""
        self.refresh()
        return self._matcher

    def refresh(self) -> bool:
        """Rebuild the matcher if the store changed and a check is due; True when it was rebuilt."""
        now = self._clock()
        if now < self._next_check:
            return False
        self._next_check = now + self._check_every_s
        revision = self._store.revision()
        if revision == self._revision:
            return False
        self._matcher = IntelMatcher(self._store.matchable(self._scope), self._tree)
        self._revision = revision
        log.info("intel_matcher_loaded", indicators=self._matcher.index.size, revision=revision)
        return True

    def process(self, events: Sequence[Event]) -> list[Alert]:
        """The intel alerts of these events, with indicators at most `check_every_s` old."""
        self.refresh()
        return self._matcher.process(events)

    def record(self, alerts: Sequence[Alert]) -> int:
        """Record the sightings of the intel alerts among `alerts` (others are ignored); returns new ones."""
        return self._store.record_sightings(sightings_of(alerts))
