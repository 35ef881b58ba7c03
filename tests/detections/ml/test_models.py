"""Training, thresholds from the target rate, cold start, and model files (skops, checksum, names)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.linear_model import LinearRegression

from detections.ml.features import WindowFeaturizer
from detections.ml.models import (
    DETECTORS,
    FORMAT_VERSION,
    SCALERS,
    AnomalyModel,
    ColdStart,
    ModelError,
    ModelSpec,
    load_model,
    model_path,
    save_model,
    train_kinds,
    train_model,
)
from tests.detections.ml.factory import DAY1, WINDOW, flow

NAMES = ("a", "b", "c", "d")


@pytest.fixture(scope="module")
def baseline() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.abs(rng.normal(10.0, 2.0, size=(400, len(NAMES))))


@pytest.mark.parametrize("detector", sorted(DETECTORS))
@pytest.mark.parametrize("rate", [0.01, 0.02])
def test_every_detector_alerts_on_about_the_target_rate_of_its_baseline(baseline: np.ndarray, detector: str,
                                                                         rate: float) -> None:
    model = train_model(baseline, NAMES, ModelSpec(detector=detector, target_alert_rate=rate), tenant="t", kind="k")
    share = float(np.mean(model.score(baseline) > model.baseline.threshold))
    assert share <= rate * 1.5 + 0.002
    outlier = np.array([[10.0, 10.0, 400.0, 10.0]])
    assert model.score(outlier)[0] > model.baseline.threshold


def test_the_registries_name_what_users_write() -> None:
    assert set(DETECTORS) == {"isolation_forest", "local_outlier_factor", "elliptic_envelope"}
    assert set(SCALERS) == {"robust", "standard"}
    with pytest.raises(ModelError, match="unknown detector 'forest'"):
        ModelSpec(detector="forest").check()


def test_training_is_deterministic(baseline: np.ndarray) -> None:
    first = train_model(baseline, NAMES, ModelSpec(), tenant="t", kind="k")
    second = train_model(baseline, NAMES, ModelSpec(), tenant="t", kind="k")
    assert first.baseline == second.baseline
    assert np.array_equal(first.score(baseline[:50]), second.score(baseline[:50]))


def test_too_little_history_is_a_cold_start_not_a_model(baseline: np.ndarray) -> None:
    with pytest.raises(ColdStart, match="too little history: 10 windows, need 50"):
        train_model(baseline[:10], NAMES, ModelSpec(), tenant="t", kind="k")


def test_a_feature_that_never_varied_still_counts(baseline: np.ndarray) -> None:
    constant = baseline.copy()
    constant[:, 1] = 1.0  # IsolationForest cannot split on it; the deviation margin can
    model = train_model(constant, NAMES, ModelSpec(), tenant="t", kind="k")
    assert model.score(np.array([[10.0, 40.0, 10.0, 10.0]]))[0] > model.baseline.threshold


@pytest.mark.parametrize("detector", sorted(DETECTORS))
def test_a_saved_model_loads_and_scores_the_same(baseline: np.ndarray, detector: str, tmp_path: Path) -> None:
    model = train_model(baseline, NAMES, ModelSpec(detector=detector), tenant="hanoi", kind="flow_source")
    path = save_model(model, model_path(tmp_path, "hanoi", "flow_source"))
    assert path == tmp_path / "hanoi" / "flow_source.skops"
    assert path.read_bytes()[:2] == b"PK"  # a skops zip, not a pickle
    loaded = load_model(path, NAMES)
    assert (loaded.tenant, loaded.kind, loaded.feature_names, loaded.spec) == ("hanoi", "flow_source", NAMES,
                                                                               model.spec)
    assert loaded.baseline == model.baseline
    assert np.array_equal(loaded.score(baseline), model.score(baseline))


@pytest.fixture(scope="module")
def model(baseline: np.ndarray) -> AnomalyModel:
    return train_model(baseline, NAMES, ModelSpec(), tenant="t", kind="k")


@pytest.fixture
def saved(model: AnomalyModel, tmp_path: Path) -> Path:
    return save_model(model, tmp_path / "m.skops")


def test_a_model_of_other_features_is_refused(saved: Path) -> None:
    with pytest.raises(ModelError, match=r"m.skops: feature names differ.*missing \['e'\], unexpected \['d'\]"):
        load_model(saved, ("a", "b", "c", "e"))
    with pytest.raises(ModelError, match="or another order"):
        load_model(saved, ("d", "c", "b", "a"))


def test_a_model_altered_by_one_byte_is_refused(saved: Path) -> None:
    data = bytearray(saved.read_bytes())
    data[len(data) // 2] ^= 0x01
    saved.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="checksum mismatch"):
        load_model(saved, NAMES)


def test_a_model_without_its_checksum_is_refused(saved: Path) -> None:
    saved.with_name(saved.name + ".sha256").unlink()
    with pytest.raises(ModelError, match="cannot read the model or its checksum file"):
        load_model(saved, NAMES)


def test_a_model_of_another_format_version_is_refused(saved: Path, tmp_path: Path) -> None:
    path = tmp_path / "old.skops"
    sio.dump({"format_version": FORMAT_VERSION + 1, "feature_names": list(NAMES)}, path)
    path.with_name(path.name + ".sha256").write_text(hashlib.sha256(path.read_bytes()).hexdigest())
    with pytest.raises(ModelError, match=f"format version {FORMAT_VERSION + 1}"):
        load_model(path, NAMES)


def test_a_pipeline_of_other_types_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.skops"
    sio.dump({"format_version": FORMAT_VERSION, "feature_names": list(NAMES), "tenant": "t", "kind": "k",
              "pipeline": LinearRegression(), "spec": {}, "baseline": {}, "info": {}}, path)
    path.with_name(path.name + ".sha256").write_text(hashlib.sha256(path.read_bytes()).hexdigest())
    with pytest.raises(ModelError, match="LinearRegression, not scaler"):
        load_model(path, NAMES)


def test_kinds_with_too_little_history_get_a_status_not_a_model() -> None:
    events = [flow(DAY1 + i * WINDOW, i, "10.0.0.1", "192.0.2.1", 443) for i in range(60)]
    featurizer = WindowFeaturizer(window=WINDOW)
    rows = featurizer.add(events) + featurizer.flush()
    outcomes = {o.kind: o for o in train_kinds(rows, ModelSpec(), tenant="hanoi")}
    assert outcomes["flow_source"].model is not None and outcomes["flow_source"].rows == 60
    assert outcomes["dns_client"].model is None
    assert outcomes["dns_client"].status == "cold start: hanoi/dns_client: too little history: 0 windows, need 50"
