"""Why a row scored high, and whether a model is stale: departures from the baseline, as data and text.

Stage: after scoring (score.py), for rows above the threshold. In: one row's values and the model's
`Baseline` (per-feature median and robust spread). Out: `Reason`s, largest deviation first, and text.
`drift` does the same for recent rows as a whole: how far each feature's median moved since training.

Invariants:
- Deviation is (observed - baseline median) / baseline spread, the spread being the IQR or a
  never-zero fallback (models.robust_scale), so features with different units rank fairly.
- Only features that departed (|deviation| > `min_deviation`) are reasons; at most `top` of them.
- Ordering is total (deviation magnitude, then feature order), so the same row gives the same text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detections.ml.models import Baseline, Matrix


@dataclass(frozen=True, slots=True)
class Reason:
    """One feature that departed from the baseline."""

    feature: str
    observed: float
    typical: float  # the baseline median
    spread: float  # the baseline IQR (or its fallback)
    deviation: float  # (observed - typical) / spread

    def text(self) -> str:
        direction = "above" if self.deviation > 0 else "below"
        return (f"{self.feature} = {_number(self.observed)} (typical {_number(self.typical)}, "
                f"{abs(self.deviation):.1f} spreads {direction})")


def explain(values: Sequence[float], feature_names: Sequence[str], baseline: Baseline, *, top: int = 3,
            min_deviation: float = 1.0) -> tuple[Reason, ...]:
    """The `top` features with the largest |deviation| from the baseline."""
    reasons = [
        Reason(name, float(value), median, scale, (float(value) - median) / scale)
        for name, value, median, scale in zip(feature_names, values, baseline.median, baseline.scale, strict=True)
    ]
    order = sorted(range(len(reasons)), key=lambda i: (-abs(reasons[i].deviation), i))
    return tuple(reasons[i] for i in order if abs(reasons[i].deviation) > min_deviation)[:top]


def describe(reasons: Sequence[Reason]) -> str:
    """`a = 312 (typical 4, 154.0 spreads above); b = ...`, or a note when nothing stands out alone."""
    if not reasons:
        return "no single feature stands out; the combination is unusual"
    return "; ".join(reason.text() for reason in reasons)


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"


@dataclass(frozen=True, slots=True)
class Drift:
    """How far one feature's recent median moved from the baseline's, in baseline spreads."""

    feature: str
    typical: float
    recent: float
    shift: float


def drift(rows: Matrix, feature_names: Sequence[str], baseline: Baseline) -> tuple[Drift, ...]:
    """Per feature, largest shift first; a shift above ~1 on a main feature says retrain."""
    if len(rows) == 0:
        return ()
    recent = np.median(np.asarray(rows, dtype=np.float64), axis=0)
    found = [Drift(name, median, float(value), abs(float(value) - median) / scale)
             for name, value, median, scale in zip(feature_names, recent, baseline.median, baseline.scale, strict=True)]
    return tuple(sorted(found, key=lambda d: -d.shift))
