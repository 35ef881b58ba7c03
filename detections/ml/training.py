"""Training from the event store: one tenant's window rows -> models in the registry, on a schedule.

Stage: the learning side of detections/ml, run by `govsoc ml train`, `govsoc ml retrain` and the
demo. In: an `EventStore`, a tenant, a time range (or events already in memory). Out: one model per
entity kind saved through the `ModelRegistry`, or a cold-start status for the kinds with too little
history; `RetrainResult`s saying which tenants were due and what came of it.

Invariants:
- Only the tenant itself is read (`TenantScope` of one id): a province's model never learns its
  communes' normal.
- The store is read a page at a time, oldest first, in hour slices (`stored_pages`), through a featurizer that
  keeps no event ids (`TRAINING_LIMITS`): memory is the open windows plus the feature vectors (`TrainingSet`
  keeps only those, as arrays), not the events.
- Each model records its training window, the event count, the window width and when it was
  trained (`now`, not the wall clock, so a test or the demo controls it); `retrain_due` retrains a
  tenant when it has no model or its newest model is older than `MlConfig.retrain_every`.
- A kind with too little history keeps its previous model, if any (a quiet week is not a reason
  to forget), and reports the cold start.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import structlog

from config.tenants import TenantScope
from detections.ml.config import MlConfig
from detections.ml.features import FEATURE_NAMES, TRAINING_LIMITS, EntityKind, FeatureRow, WindowFeaturizer
from detections.ml.models import Matrix, TrainOutcome, train_matrices
from detections.ml.registry import ModelRegistry
from pipeline.records import Event
from pipeline.store.base import MAX_LIMIT, EventQuery, EventStore

log = structlog.get_logger(__name__)


def stored_pages(store: EventStore, scope: TenantScope, start: datetime, end: datetime, *,
                 slice_span: timedelta = timedelta(hours=1)) -> Iterator[list[Event]]:
    """Every event of `scope` in [start, end), oldest first, a page at a time (never all in memory).

    Read in time slices of `slice_span`, paging by offset only inside a slice: an offset is skipped
    row by row (SQLite, Elasticsearch alike), so one offset over 14 days of a busy tenant would make
    the read quadratic.
    """
    lower = start
    while lower < end:
        upper = min(lower + slice_span, end)
        offset = 0
        while True:
            page = store.search(scope, EventQuery(start=lower, end=upper, limit=MAX_LIMIT, offset=offset,
                                                  oldest_first=True))
            if page:
                yield page
            if len(page) < MAX_LIMIT:
                break
            offset += len(page)
        lower = upper


CHUNK_ROWS = 8_192
"""Rows a kind buffers as tuples before they become one float64 array (a few hundred KiB at most)."""


@dataclass
class TrainingSet:
    """Feature vectors of one tenant's events, per entity kind, with what they came from.

    Compact: only the vectors are kept (no entity, times or ids: training needs none), as float64
    arrays of `CHUNK_ROWS` rows, in closing order. 14 days of one tenant at 1,000 flows a minute
    (806,400 flow windows) take 58 MiB here, against ~1 GiB as `FeatureRow` objects (bench/ml.py).
    """

    tenant: str
    events: int = 0
    first: datetime | None = None
    last: datetime | None = None
    _chunks: dict[EntityKind, list[Matrix]] = field(default_factory=dict, repr=False)
    _pending: dict[EntityKind, list[tuple[float, ...]]] = field(default_factory=dict, repr=False)

    def add(self, featurizer: WindowFeaturizer, events: Sequence[Event]) -> None:
        """Feed the tenant's events among `events` (others are skipped) and keep the rows they close."""
        mine = [e for e in events if e.tenant == self.tenant]
        self.add_rows(featurizer.add(mine))
        self.events += len(mine)
        if mine:
            self.first = self.first or mine[0].timestamp
            self.last = mine[-1].timestamp

    def add_rows(self, rows: Iterable[FeatureRow]) -> None:
        for row in rows:
            if row.tenant != self.tenant:
                continue
            pending = self._pending.setdefault(row.kind, [])
            pending.append(row.values)
            if len(pending) >= CHUNK_ROWS:
                self._chunks.setdefault(row.kind, []).append(np.array(pending, dtype=np.float64))
                pending.clear()

    def matrix(self, kind: EntityKind) -> Matrix:
        """The kind's vectors, (windows x len(FEATURE_NAMES[kind])), in closing order."""
        width = len(FEATURE_NAMES[kind])
        parts = [*self._chunks.get(kind, []), np.array(self._pending.get(kind, []), dtype=np.float64)]
        whole = np.concatenate([p.reshape(-1, width) for p in parts])
        self._chunks[kind], self._pending[kind] = [whole], []  # one array from now on: no second copy later
        return whole

    def matrices(self) -> dict[EntityKind, Matrix]:
        return {kind: self.matrix(kind) for kind in EntityKind}

    @property
    def windows(self) -> int:
        """Rows held, all kinds."""
        return sum(len(p) for p in self._pending.values()) + sum(
            len(c) for chunks in self._chunks.values() for c in chunks)

    def info(self, config: MlConfig, source: str, now: datetime) -> dict[str, object]:
        return {"source": source, "events": self.events, "window_s": config.window.total_seconds(),
                "first_event": self.first.isoformat() if self.first else None,
                "last_event": self.last.isoformat() if self.last else None, "trained_at": now.isoformat()}


def collect(tenant: str, pages: Iterable[Sequence[Event]], config: MlConfig, timezone: str) -> TrainingSet:
    """The rows of `tenant`'s events among `pages` (oldest first), every window closed at the end."""
    featurizer = WindowFeaturizer(window=config.window, timezone=timezone, limits=TRAINING_LIMITS)
    found = TrainingSet(tenant)
    for page in pages:
        found.add(featurizer, page)
    found.add_rows(featurizer.flush())
    return found


def train_and_save(found: TrainingSet, registry: ModelRegistry, config: MlConfig, *, now: datetime,
                   source: str) -> list[TrainOutcome]:
    """Train one model per kind from `found` and save each trained one (cold-start kinds keep theirs)."""
    outcomes = train_matrices(found.matrices(), config.spec(), tenant=found.tenant,
                              info=found.info(config, source, now))
    for outcome in outcomes:
        if outcome.model is not None:
            registry.save(outcome.model)
    log.info("ml_trained", tenant=found.tenant, events=found.events, windows=found.windows,
             models=sum(o.model is not None for o in outcomes))
    return outcomes


def train_from_store(store: EventStore, registry: ModelRegistry, tenant: str, config: MlConfig, *,
                     now: datetime, timezone: str = "UTC") -> list[TrainOutcome]:
    """Train `tenant` on its own events of the last `config.training_window` before `now`."""
    scope = TenantScope(root=tenant, tenant_ids=frozenset({tenant}))
    pages = stored_pages(store, scope, now - config.training_window, now)
    found = collect(tenant, pages, config, timezone)
    return train_and_save(found, registry, config, now=now, source=f"store, {config.training_window.days} days")


@dataclass(frozen=True, slots=True)
class RetrainResult:
    """One tenant's turn: skipped (model fresh enough) or retrained, with the outcomes per kind."""

    tenant: str
    retrained: bool
    reason: str
    outcomes: tuple[TrainOutcome, ...] = ()

    @property
    def models(self) -> int:
        return sum(o.model is not None for o in self.outcomes)


def due_reason(registry: ModelRegistry, tenant: str, config: MlConfig, now: datetime) -> str | None:
    """Why `tenant` should be retrained now, or None when its newest model is recent enough."""
    newest = registry.newest_training(tenant)
    if newest is None:
        return "no model yet"
    age = now - newest
    if age >= config.retrain_every:
        return f"newest model is {age.days} days old (retrain every {config.retrain_every.days})"
    return None


def retrain_due(store: EventStore, registry: ModelRegistry, tenants: Iterable[str], config: MlConfig, *,
                now: datetime, timezone: str = "UTC", force: bool = False) -> list[RetrainResult]:
    """Retrain every tenant whose models are missing or older than `config.retrain_every` (all with `force`).

    Tenants are independent and run one after the other; a running feed picks the new files up
    at its next registry check.
    """
    results: list[RetrainResult] = []
    for tenant in sorted(set(tenants)):
        reason = "forced" if force else due_reason(registry, tenant, config, now)
        if reason is None:
            results.append(RetrainResult(tenant, False, "model is recent enough"))
            continue
        outcomes = train_from_store(store, registry, tenant, config, now=now, timezone=timezone)
        results.append(RetrainResult(tenant, True, reason, tuple(outcomes)))
    return results
