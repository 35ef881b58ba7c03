"""How ML detection runs: windows, registry checks, retraining period and window, model choice.

Stage: configuration of detections/ml, read by the online feed (feed.py), scheduled retraining
(training.py) and the command line. In: keyword values, or `MlConfig.of(settings)`: the settings'
`ml` section once the settings model carries one (config/ cannot import this module, so it holds a
mirror of these fields), the defaults until then. Out: a frozen, validated `MlConfig`, and from it the
`ModelSpec` training uses and the `WindowLimits` the featurizer keeps to.

Invariants: unknown keys are refused (`extra="forbid"`); durations are positive; the detector name
is checked against `models.DETECTORS` when the spec is built (`ModelSpec.check`), so a typo fails
at start, not at the first retraining.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from config.settings import Settings
from detections.ml.features import WindowLimits
from detections.ml.models import ModelSpec

Positive = Annotated[timedelta, Field(gt=timedelta(0))]


class MlConfig(BaseModel):
    """ML anomaly detection settings (one per deployment; per-tenant models, same settings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    window: Positive = timedelta(minutes=5)  # training and scoring must agree: a model records it
    check_every_s: Annotated[float, Field(ge=0)] = 60.0  # how often the feed looks for new model files
    flush_grace: Annotated[timedelta, Field(ge=timedelta(0))] = timedelta(minutes=1)  # late events
    retrain_every: Positive = timedelta(days=7)  # a model older than this is retrained
    training_window: Positive = timedelta(days=14)  # how far back retraining reads the store
    detector: str = "isolation_forest"
    target_alert_rate: Annotated[float, Field(gt=0, lt=0.5)] = 0.01
    min_rows: Annotated[int, Field(ge=10)] = 50  # windows per kind below which a tenant stays cold
    top_reasons: Annotated[int, Field(ge=1, le=10)] = 3
    drift_rows: Annotated[int, Field(ge=10)] = 500  # recent windows kept per tenant and kind for drift
    max_window_events: Annotated[int, Field(ge=1)] = 20_000
    max_held_events: Annotated[int, Field(ge=1)] = 1_000_000

    @classmethod
    def of(cls, settings: Settings) -> MlConfig:
        """From `settings.ml` when the settings model has that section, else the defaults."""
        section = getattr(settings, "ml", None)
        return cls() if section is None else cls.model_validate(section.model_dump())

    def spec(self) -> ModelSpec:
        """The training spec; raises `ModelError` for an unknown detector."""
        spec = ModelSpec(detector=self.detector, target_alert_rate=self.target_alert_rate, min_rows=self.min_rows)
        spec.check()
        return spec

    def limits(self, *, keep_event_ids: bool = True) -> WindowLimits:
        return WindowLimits(max_window_events=self.max_window_events, max_held_events=self.max_held_events,
                            max_event_ids=100 if keep_event_ids else 0)
