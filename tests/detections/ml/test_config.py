"""MlConfig: defaults the feed and retraining use, unknown keys and detectors refused, limits derived."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from detections.ml import MlConfig, ModelError


def test_defaults_give_the_product_spec_and_limits() -> None:
    config = MlConfig()
    assert (config.window, config.retrain_every, config.training_window) == (
        timedelta(minutes=5), timedelta(days=7), timedelta(days=14))
    spec = config.spec()
    assert (spec.detector, spec.target_alert_rate, spec.min_rows) == ("isolation_forest", 0.01, 50)
    assert config.limits().max_event_ids == 100 and config.limits(keep_event_ids=False).max_event_ids == 0


def test_bad_values_are_refused_with_the_field() -> None:
    with pytest.raises(ValidationError, match="retrain_evry"):
        MlConfig.model_validate({"retrain_evry": "7d"})
    with pytest.raises(ValidationError, match="window"):
        MlConfig(window=timedelta(0))
    with pytest.raises(ModelError, match="unknown detector 'forest'"):
        MlConfig(detector="forest").spec()
