"""Reasons: the features furthest from the baseline, ranked, as data and text."""

from __future__ import annotations

import numpy as np
import pytest

from detections.ml.explain import describe, drift, explain
from detections.ml.models import Baseline

BASELINE = Baseline(median=(4.0, 0.0, 100.0), scale=(2.0, 0.1, 50.0), log_median=(0.0,) * 3, log_scale=(1.0,) * 3,
                    detector_anchor=(0.0, 1.0), deviation_anchor=(0.0, 1.0), score_median=0.0, threshold=1.0)
NAMES = ("destinations", "failed_ratio", "bytes_out")


def test_reasons_rank_by_deviation_in_spreads() -> None:
    reasons = explain((300.0, 0.5, 90.0), NAMES, BASELINE)
    assert [(r.feature, r.deviation) for r in reasons] == [("destinations", 148.0), ("failed_ratio", 5.0)]
    assert reasons[0].typical == 4.0 and reasons[0].observed == 300.0 and reasons[0].spread == 2.0


def test_text_names_observed_and_typical_values() -> None:
    text = describe(explain((300.0, 0.0, 0.0), NAMES, BASELINE))
    assert text == ("destinations = 300 (typical 4, 148.0 spreads above); "
                    "bytes_out = 0 (typical 100, 2.0 spreads below)")


def test_top_limits_and_ties_keep_feature_order() -> None:
    reasons = explain((8.0, 0.2, 200.0), NAMES, BASELINE, top=2)
    assert [r.feature for r in reasons] == ["destinations", "failed_ratio"]


def test_nothing_stands_out_alone() -> None:
    assert explain((4.0, 0.0, 100.0), NAMES, BASELINE) == ()
    assert describe(()) == "no single feature stands out; the combination is unusual"


def test_drift_ranks_features_by_how_far_their_median_moved() -> None:
    recent = np.array([[4.0, 0.3, 100.0], [6.0, 0.5, 100.0], [5.0, 0.4, 100.0]])
    found = drift(recent, NAMES, BASELINE)
    assert [(d.feature, d.recent, d.shift) for d in found] == [
        ("failed_ratio", 0.4, pytest.approx(4.0)), ("destinations", 5.0, 0.5), ("bytes_out", 100.0, 0.0)]
    assert drift(np.empty((0, 3)), NAMES, BASELINE) == ()
