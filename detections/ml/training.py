"""Training from the event store: one tenant's window rows -> models in the registry, on a schedule.

Stage: the learning side of detections/ml, run by `govsoc ml train`, `govsoc ml retrain` and the
demo. In: an `EventStore`, a tenant, a time range (or events already in memory). Out: one model per
entity kind saved through the `ModelRegistry`, or a cold-start status for the kinds with too little
history; `RetrainResult`s saying which tenants were due and what came of it.

Invariants:
- Only the tenant itself is read (`TenantScope` of one id): a province's model never learns its
  communes' normal.
- The store is read a page at a time, oldest first, in hour slices (`stored_pages`), through a featurizer that
  keeps no event ids (`TRAINING_LIMITS`): memory is the open windows plus the rows, not the events.
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

import structlog

from config.tenants import TenantScope
from detections.ml.config import MlConfig
from detections.ml.features import TRAINING_LIMITS, FeatureRow, WindowFeaturizer
from detections.ml.models import TrainOutcome, train_kinds
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


@dataclass
class TrainingSet:
    """Feature rows of one tenant's events, with what they came from."""

    tenant: str
    rows: list[FeatureRow] = field(default_factory=list)
    events: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def add(self, featurizer: WindowFeaturizer, events: Sequence[Event]) -> None:
        mine = [e for e in events if e.tenant == self.tenant]
        self.rows.extend(featurizer.add(mine))
        self.events += len(mine)
        if mine:
            self.first = self.first or mine[0].timestamp
            self.last = mine[-1].timestamp

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
    found.rows.extend(featurizer.flush())
    return found


def train_and_save(found: TrainingSet, registry: ModelRegistry, config: MlConfig, *, now: datetime,
                   source: str) -> list[TrainOutcome]:
    """Train one model per kind from `found` and save each trained one (cold-start kinds keep theirs)."""
    outcomes = train_kinds(found.rows, config.spec(), tenant=found.tenant, info=found.info(config, source, now))
    for outcome in outcomes:
        if outcome.model is not None:
            registry.save(outcome.model)
    log.info("ml_trained", tenant=found.tenant, events=found.events, windows=len(found.rows),
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
