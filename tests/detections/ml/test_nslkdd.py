"""NSL-KDD through the product's model pipeline: fit on normal records of KDDTrain+_20Percent only,
threshold at a 1% target alert rate on that baseline, evaluate on KDDTest+ and KDDTest-21.

Floors are a little under what this code measured (IsolationForest with the deviation guard anchored
per feature and side, random_state 0, full files; bench/ml_nslkdd.py, 2026-11-23):
KDDTest+ AUC 0.9691, detection rate 0.413, false positives 0.97%; KDDTest-21 AUC 0.8593, detection
rate 0.412, false positives 4.4% (its normal records are the hard ones).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from detections.ml.models import AnomalyModel, ModelSpec, train_model
from detections.ml.nslkdd import CATEGORY_NAMES, COLUMNS, NslKdd, category_of, load_splits, read_records

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "nsl-kdd"
FLOORS = {"KDDTest+": (0.96, 0.40, 0.015), "KDDTest-21": (0.83, 0.38, 0.09)}  # AUC, detection rate, max FPR

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data/nsl-kdd is not there")


@pytest.fixture(scope="module")
def splits() -> tuple[NslKdd, dict[str, NslKdd]]:
    return load_splits(DATA)


@pytest.fixture(scope="module")
def model(splits: tuple[NslKdd, dict[str, NslKdd]]) -> AnomalyModel:
    train, _ = splits
    normal = train.rows[~train.is_attack]
    return train_model(normal, train.feature_names, ModelSpec(target_alert_rate=0.01, random_state=0),
                       tenant="nsl-kdd", kind="connection")


def test_loader_reads_every_record_with_one_hot_columns(splits: tuple[NslKdd, dict[str, NslKdd]]) -> None:
    train, tests = splits
    assert train.rows.shape[0] == 25_192 and tests["KDDTest+"].rows.shape[0] == 22_544
    assert tests["KDDTest-21"].rows.shape[0] == 11_850
    assert len(COLUMNS) == 41
    assert "protocol_type=tcp" in train.feature_names and "flag=SF" in train.feature_names
    assert tests["KDDTest+"].feature_names == train.feature_names
    one_hot = train.rows[:, len(COLUMNS) - 3:]
    assert np.array_equal(one_hot.sum(axis=1), np.full(train.rows.shape[0], 3.0))


def test_malformed_lines_name_file_and_line(tmp_path: Path) -> None:
    from detections.ml.models import ModelError

    path = tmp_path / "bad.txt"
    path.write_text("0,tcp,http,SF\n")
    with pytest.raises(ModelError, match=r"bad.txt:1: expected 43 fields, got 4"):
        read_records(path)


def test_categories() -> None:
    assert [category_of(x) for x in ("normal", "neptune", "portsweep", "guess_passwd", "rootkit", "new")] == [
        "normal", "DoS", "Probe", "R2L", "U2R", "unknown"]


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_detection_quality_on_unseen_test_sets(splits: tuple[NslKdd, dict[str, NslKdd]], model: AnomalyModel,
                                               name: str) -> None:
    data = splits[1][name]
    scores = model.score(data.rows)
    flagged = scores > model.baseline.threshold
    attack = data.is_attack
    auc = roc_auc_score(attack, scores)
    detection, false_positive = float(flagged[attack].mean()), float(flagged[~attack].mean())
    # The table the issue asks for, seen with `pytest -s` (bench/ml_nslkdd.py prints it too).
    print(f"\n{name}: ROC AUC {auc:.4f}, detection {detection:.3f}, false positives {false_positive:.4f}")  # noqa: T201
    categories = np.array(data.categories)
    for category in CATEGORY_NAMES:
        rows = (categories == category) | (categories == "normal")
        truth = categories[rows] == category
        precision = precision_score(truth, flagged[rows], zero_division=0)
        recall = recall_score(truth, flagged[rows], zero_division=0)
        print(f"  {category:6} n={int(truth.sum()):5d} precision {precision:.3f} recall {recall:.3f}")  # noqa: T201
    min_auc, min_detection, max_fpr = FLOORS[name]
    assert auc >= min_auc
    assert detection >= min_detection
    assert false_positive <= max_fpr
