"""MlFeed: online anomaly scoring in the detection worker, with each tenant's current models.

Same shape as the Sigma engine and `detections.intel.IntelFeed` (`process(events) -> alerts`), so
the detect step runs it beside them. Events go through one long-lived `WindowFeaturizer` (the
pipeline training uses); each window that closes is scored by the model of its (tenant, entity
kind) and becomes an ML alert when it is above the model's threshold (score.MlDetector).

Contract:
- Models come from the `ModelRegistry` and are reloaded when its `revision()` changed, looked at
  most every `check_every_s` seconds (a stat of the model files), on the calling thread between two
  batches: a model saved by `govsoc ml train` or by scheduled retraining scores within that time,
  without a restart. A file refused at reload (checksum, feature names, window width) is logged and
  its previous model, if any, keeps scoring; the refusal shows in `status()`.
- Cold start: a (tenant, kind) without a model raises nothing; its windows are counted and
  `status()` says so ("cold start", with the windows seen and the floor training needs).
- Windows close when the tenant's time moves past them (`process`) or on the clock
  (`flush(now)`: windows that ended `flush_grace` before `now`), so a tenant that falls quiet
  still has its last windows scored. Call `flush` every minute or so.
- Bounded memory: the featurizer's limits (`MlConfig.max_window_events`, `max_held_events`, open
  windows, history), and `drift_rows` recent rows per (tenant, kind) with a model, for `drift`.
- Drift per feature: how far the median of the recent windows moved from the model's baseline
  median, in baseline spreads (explain.drift); a main feature above ~1 says the model is stale.
- Flushed alerts carry the asset (`asset_id`, `security_level`) of the window's latest enriched
  event, as event-driven ones do: the window keeps it (features.FeatureRow), since a clock flush has
  no batch of events to look it up in.
- Checkpoints (scale-out: a partition's new owner continues its windows): `snapshot()` is plain
  JSON values, versioned (`SNAPSHOT_VERSION`), holding the featurizer's open windows as running sums,
  distinct values, first event ids, last time and asset (no events), its destination history and
  per-tenant watermarks, and the status counters. `restore(snapshot)` on a fresh feed with the
  same window width and tenants continues exactly: the same events then raise the same alerts as one
  uninterrupted feed. Models are not in it (the registry has them); nor are the recent rows kept
  for `drift` (they refill). A snapshot from another version or window width is refused with
  `MlStateError` naming the field, and the feed is left as it was.
- Not thread-safe: one feed per detect worker (events are keyed by entity, so an entity's events
  reach one worker in order).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import structlog

from config.errors import GovsocError
from detections.ml.config import MlConfig
from detections.ml.explain import Drift, drift
from detections.ml.features import FEATURE_NAMES, EntityKind, FeatureRow, WindowFeaturizer
from detections.ml.models import AnomalyModel
from detections.ml.registry import Key, ModelRegistry
from detections.ml.score import MlDetector
from pipeline.records import Alert, Event

log = structlog.get_logger(__name__)

State = Literal["scoring", "cold start", "refused"]
SNAPSHOT_VERSION = 1
"""Of `MlFeed.snapshot()`'s format; `restore` refuses any other."""


class MlStateError(GovsocError):
    """A feed snapshot that cannot be restored (version, window width, or a malformed field)."""


@dataclass(frozen=True, slots=True)
class KindStatus:
    """What the feed does for one tenant and entity kind, and since when it runs, how much."""

    tenant: str
    kind: EntityKind
    state: State
    detail: str
    windows: int  # closed since the feed started
    alerts: int
    drift: tuple[Drift, ...] = ()  # largest shift first; empty without a model or recent windows

    @property
    def max_drift(self) -> float:
        return self.drift[0].shift if self.drift else 0.0


class MlFeed:
    def __init__(self, registry: ModelRegistry, tenants: Iterable[str], config: MlConfig | None = None, *,
                 timezone: str = "UTC", clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or MlConfig()
        self.registry = registry
        self.tenants = tuple(sorted(set(tenants)))
        self._clock = clock
        self._next_check = float("-inf")
        self._revision: object = None
        self._refused: dict[Key, str] = {}
        self._windows: dict[Key, int] = {}
        self._alerts: dict[Key, int] = {}
        self._recent: dict[Key, deque[tuple[float, ...]]] = {}
        featurizer = WindowFeaturizer(window=self.config.window, timezone=timezone, limits=self.config.limits())
        self.detector = MlDetector([], featurizer, top_reasons=self.config.top_reasons)

    @property
    def featurizer(self) -> WindowFeaturizer:
        return self.detector.featurizer

    @property
    def models(self) -> dict[Key, AnomalyModel]:
        return self.detector.models

    def refresh(self) -> bool:
        """Reload the models if the registry changed and a check is due; True when it reloaded."""
        now = self._clock()
        if now < self._next_check:
            return False
        self._next_check = now + self.config.check_every_s
        revision = self.registry.revision()
        if revision == self._revision:
            return False
        loaded = self.registry.load_current(self.tenants)
        models = dict(loaded.models)
        refused = dict(loaded.refused)
        for key, model in list(models.items()):
            reason = self._window_mismatch(model)
            if reason is not None:
                refused[key] = reason
                del models[key]
        for key, reason in refused.items():
            log.error("ml_model_refused", tenant=key[0], kind=key[1].value, reason=reason)
            if key in self.detector.models:  # keep scoring with the previous one (a save in progress)
                models[key] = self.detector.models[key]
        for key in set(self._recent) - set(models):
            del self._recent[key]
        self.detector.models = models
        self._refused = refused
        self._revision = revision
        log.info("ml_models_loaded", models=len(models), refused=len(refused))
        return True

    def _window_mismatch(self, model: AnomalyModel) -> str | None:
        width = model.info.get("window_s")
        expected = self.config.window.total_seconds()
        if isinstance(width, int | float) and float(width) != expected:
            return f"trained on {width:g} s windows, the feed uses {expected:g} s; retrain"
        return None

    def process(self, events: Sequence[Event]) -> list[Alert]:
        """Alerts of the windows these events closed, with models at most `check_every_s` old."""
        if not self.config.enabled:
            return []
        self.refresh()
        return self._score(self.featurizer.add(events))

    def flush(self, now: datetime) -> list[Alert]:
        """Alerts of the windows that ended `flush_grace` before `now` and are still open."""
        if not self.config.enabled:
            return []
        self.refresh()
        return self._score(self.featurizer.close_due(now, self.config.flush_grace))

    def _score(self, rows: Sequence[FeatureRow]) -> list[Alert]:
        for row in rows:
            key = (row.tenant, row.kind)
            self._windows[key] = self._windows.get(key, 0) + 1
            if key in self.detector.models:
                recent = self._recent.setdefault(key, deque(maxlen=self.config.drift_rows))
                recent.append(row.values)
        findings = self.detector.score_rows(rows)
        for finding in findings:
            key = (finding.row.tenant, finding.row.kind)
            self._alerts[key] = self._alerts.get(key, 0) + 1
        return [f.alert for f in findings]

    def drift(self, tenant: str, kind: EntityKind) -> tuple[Drift, ...]:
        """Per feature, how far the recent windows' median moved from the baseline's; () without data."""
        model = self.detector.models.get((tenant, kind))
        recent = self._recent.get((tenant, kind))
        if model is None or not recent:
            return ()
        return drift(np.array(recent, dtype=np.float64), FEATURE_NAMES[kind], model.baseline)

    def status(self) -> list[KindStatus]:
        """One line per tenant and kind: scoring, cold start or refused, with counts and drift."""
        self.refresh()
        return [self._status(tenant, kind) for tenant in self.tenants for kind in EntityKind]

    def _status(self, tenant: str, kind: EntityKind) -> KindStatus:
        key = (tenant, kind)
        windows, alerts = self._windows.get(key, 0), self._alerts.get(key, 0)
        model = self.detector.models.get(key)
        if key in self._refused and model is None:
            return KindStatus(tenant, kind, "refused", self._refused[key], windows, alerts)
        if model is None:
            detail = (f"no model: no ML alerts; {windows} windows seen, training needs "
                      f"{self.config.min_rows} over {self.config.training_window.days} days (govsoc ml train)")
            return KindStatus(tenant, kind, "cold start", detail, windows, alerts)
        detail = f"{model.spec.detector}, trained {model.info.get('trained_at', '?')}, {model.info.get('rows')} windows"
        if key in self._refused:
            detail += f"; a newer file was refused, still scoring with this one: {self._refused[key]}"
        return KindStatus(tenant, kind, "scoring", detail, windows, alerts, self.drift(tenant, kind))

    def snapshot(self) -> dict[str, Any]:
        """The feed's state as plain JSON values (see the module: what is in it and what is not)."""
        counts = [[tenant, kind.value, self._windows.get((tenant, kind), 0), self._alerts.get((tenant, kind), 0)]
                  for tenant, kind in sorted(set(self._windows) | set(self._alerts))]
        return {"version": SNAPSHOT_VERSION, "featurizer": self.featurizer.snapshot(), "counts": counts}

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Continue from `snapshot`; raises `MlStateError` naming the field at fault (nothing changed then)."""
        if not isinstance(snapshot, Mapping) or snapshot.get("version") != SNAPSHOT_VERSION:
            found = snapshot.get("version") if isinstance(snapshot, Mapping) else type(snapshot).__name__
            raise MlStateError(f"ml feed snapshot: version {found!r}, this govsoc reads {SNAPSHOT_VERSION}")
        windows: dict[Key, int] = {}
        alerts: dict[Key, int] = {}
        try:
            for tenant, kind, seen, raised in snapshot["counts"]:
                key = (str(tenant), EntityKind(kind))
                windows[key], alerts[key] = int(seen), int(raised)
        except (KeyError, TypeError, ValueError) as e:
            raise MlStateError(f"ml feed snapshot: counts: expected [[tenant, kind, windows, alerts], ...]: {e}") from e
        featurizer = snapshot.get("featurizer")
        if not isinstance(featurizer, Mapping):
            raise MlStateError("ml feed snapshot: featurizer: missing")
        try:
            self.featurizer.restore(featurizer)
        except ValueError as e:
            raise MlStateError(f"ml feed snapshot: featurizer.{e}") from e
        self._windows, self._alerts = windows, alerts
