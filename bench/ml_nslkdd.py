"""NSL-KDD: the product's model pipeline on the public benchmark, beside a one-feature baseline.

Fit on the normal records of KDDTrain+_20Percent only (never an attack record), threshold at the
target alert rate on that baseline (as the product chooses it), score KDDTest+ and KDDTest-21.
Rows: each registered detector with the deviation margin (the product; `--all-detectors` adds LOF
and EllipticEnvelope), IsolationForest alone, and a one-feature threshold baseline (the largest
robust per-feature deviation, no model) measured in the same run. Prints ROC AUC, detection rate and
false-positive rate at the threshold, recall and precision per attack category (DoS, Probe, R2L,
U2R), and a line `KDDTest+ ROC AUC: 0.NNNN` for the product's default.

The features are the data set's 41 through a tabular adapter (detections/ml/nslkdd.py: numeric
columns and one-hot protocol, service, flag); everything after is `detections.ml.models`.

Usage: .venv/bin/python bench/ml_nslkdd.py ../shared/data/nsl-kdd [--target-rate 0.01] [--all-detectors]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.metrics import roc_auc_score

from detections.ml.models import DETECTORS, ModelSpec, max_deviation, preprocess, robust_scale, train_model
from detections.ml.nslkdd import CATEGORY_NAMES, NslKdd, load_splits

console = Console(width=180)


def one_feature_scores(train: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(baseline scores, scores) of the largest robust per-feature deviation: no model at all."""
    prepared = preprocess(train)
    median, scale = np.median(prepared, axis=0), robust_scale(prepared)
    return max_deviation(prepared, median, scale), max_deviation(preprocess(rows), median, scale)


def quality_rows(train: NslKdd, tests: dict[str, NslKdd], rate: float, detectors: list[str]) -> list[list[str]]:
    normal = train.rows[~train.is_attack]
    rows: list[list[str]] = []
    variants = [(d, ModelSpec(detector=d, target_alert_rate=rate)) for d in detectors]
    variants.append(("isolation_forest, no deviation margin", ModelSpec(target_alert_rate=rate,
                                                                        deviation_guard=False)))
    for label, spec in variants:
        started = time.perf_counter()
        model = train_model(normal, train.feature_names, spec, tenant="nsl-kdd", kind="connection")
        fit_s = time.perf_counter() - started
        for name, data in tests.items():
            rows.append(_quality_row(label, name, data, model.score(data.rows), model.baseline.threshold, fit_s))
    base, _ = one_feature_scores(normal, normal)
    threshold = float(np.quantile(base, 1.0 - rate))
    for name, data in tests.items():
        rows.append(_quality_row("one-feature threshold", name, data, one_feature_scores(normal, data.rows)[1],
                                 threshold, 0.0))
    return rows


def _quality_row(label: str, name: str, data: NslKdd, scores: np.ndarray, threshold: float,
                 fit_s: float) -> list[str]:
    flagged, attack = scores > threshold, data.is_attack
    categories = np.array(data.categories)
    per_category = []
    for category in CATEGORY_NAMES:
        mask = categories == category
        true_pos = int((flagged & mask).sum())
        precision = true_pos / max(true_pos + int((flagged & ~attack).sum()), 1)
        per_category.append(f"{flagged[mask].mean():.2f}/{precision:.2f}")
    return [label, name, f"{roc_auc_score(attack, scores):.4f}", f"{flagged[attack].mean():.3f}",
            f"{flagged[~attack].mean():.4f}", *per_category, f"{fit_s:.1f}"]


def quality(data_dir: Path, rate: float, all_detectors: bool) -> None:
    train, tests = load_splits(data_dir)
    detectors = sorted(DETECTORS) if all_detectors else ["isolation_forest"]
    rows = quality_rows(train, tests, rate, detectors)
    table = Table("model", "test set", "ROC AUC", "detection", "false pos.",
                  *(f"{c} recall/prec." for c in CATEGORY_NAMES), "fit s")
    for row in rows:
        table.add_row(*row)
    console.print(f"NSL-KDD: fit on {int((~train.is_attack).sum()):,} normal records of KDDTrain+_20Percent, "
                  f"threshold at a {rate:.0%} target alert rate on them")
    console.print(table)
    default = next(r for r in rows if r[0] == "isolation_forest" and r[1] == "KDDTest+")
    print(f"KDDTest+ ROC AUC: {default[2]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path, help="the directory of KDDTrain+_20Percent.txt, KDDTest+.txt, ...")
    parser.add_argument("--target-rate", type=float, default=0.01)
    parser.add_argument("--all-detectors", action="store_true", help="also LOF and EllipticEnvelope (slower)")
    args = parser.parse_args()
    quality(args.data_dir, args.target_rate, args.all_detectors)


if __name__ == "__main__":
    main()
