"""ML anomaly detection: throughput on one tenant's flows, and detection quality on NSL-KDD.

Throughput: synthetic flow events of one tenant at `--rate` events per minute over `--hours`,
through the product's path (WindowFeaturizer -> train_kinds -> MlDetector): featurising events/s,
training time, scoring events/s (featurise + score + explain).

Quality: fit on the normal records of KDDTrain+_20Percent only, threshold at the target alert rate
on that baseline, score KDDTest+ and KDDTest-21. Rows: each registered detector with the deviation
margin (the product), IsolationForest alone, and a one-feature threshold baseline (the largest
robust per-feature deviation, no model). Prints ROC AUC, detection rate and false-positive rate at
the threshold, then recall and precision per attack category, and a line `KDDTest+ ROC AUC: 0.NNNN`
for the product's default.

Usage: .venv/bin/python bench/ml.py [--nsl-kdd ../shared/data/nsl-kdd] [--hours 6] [--rate 1000]
       [--target-rate 0.01] [--all-detectors]
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.metrics import roc_auc_score

from detections.ml.features import WindowFeaturizer
from detections.ml.models import (
    DETECTORS,
    ModelSpec,
    max_deviation,
    preprocess,
    robust_scale,
    train_kinds,
    train_model,
)
from detections.ml.nslkdd import CATEGORY_NAMES, NslKdd, load_splits
from detections.ml.score import MlDetector
from pipeline.records import Event

console = Console(width=180)
START = datetime(2026, 11, 2, tzinfo=UTC)


def flow_events(hours: float, per_minute: int, seed: int) -> list[Event]:
    """One tenant, 200 hosts, each with a few usual peers; `per_minute` flows a minute."""
    rng = random.Random(seed)
    events: list[Event] = []
    step = 60.0 / per_minute
    for i in range(int(hours * 60 * per_minute)):
        host = rng.randrange(200)
        doc: dict[str, Any] = {
            "@timestamp": START + timedelta(seconds=i * step), "organization": {"id": "hanoi"},
            "event": {"dataset": "flow", "outcome": "failure" if rng.random() < 0.02 else "success"},
            "source": {"ip": f"10.1.{host // 250}.{host % 250}", "bytes": int(rng.lognormvariate(7.5, 0.5))},
            "destination": {"ip": f"192.0.2.{(host * 7 + rng.randrange(6)) % 250}", "port": rng.choice([443, 80]),
                            "bytes": int(rng.lognormvariate(9.5, 0.7))},
            "network": {"packets": rng.randint(4, 60)},
        }
        events.append(Event.create(doc, id_parts=("bench", seed, i)))
    return events


def throughput(hours: float, per_minute: int) -> None:
    baseline, live = flow_events(hours, per_minute, 1), flow_events(min(hours, 1.0), per_minute, 2)
    started = time.perf_counter()
    featurizer = WindowFeaturizer()
    rows = featurizer.add(baseline) + featurizer.flush()
    featurised = time.perf_counter() - started
    started = time.perf_counter()
    models = [o.model for o in train_kinds(rows, ModelSpec(), tenant="hanoi") if o.model is not None]
    trained = time.perf_counter() - started
    shifted = [Event.from_document({**e.doc, "@timestamp": e.timestamp + timedelta(hours=hours)}) for e in live]
    detector = MlDetector(models, featurizer)
    started = time.perf_counter()
    alerts = detector.process(shifted) + detector.flush()
    scored = time.perf_counter() - started
    table = Table("baseline events", "windows", "featurise ev/s", "train s", "score ev/s", "alerts / windows")
    table.add_row(f"{len(baseline):,}", f"{len(rows):,}", f"{len(baseline) / featurised:,.0f}", f"{trained:.2f}",
                  f"{len(shifted) / scored:,.0f}", f"{len(alerts)} / {detector.scored}")
    console.print(f"Throughput: one tenant's flows, {per_minute}/min over {hours} h, 5-minute windows")
    console.print(table)


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
    parser.add_argument("--nsl-kdd", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/nsl-kdd")
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--rate", type=int, default=1000, help="flow events per minute")
    parser.add_argument("--target-rate", type=float, default=0.01)
    parser.add_argument("--all-detectors", action="store_true", help="also LOF and EllipticEnvelope (slower)")
    args = parser.parse_args()
    throughput(args.hours, args.rate)
    quality(args.nsl_kdd, args.target_rate, args.all_detectors)


if __name__ == "__main__":
    main()

