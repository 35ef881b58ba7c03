"""ML anomaly detection at one tenant's scale: training on days of flows, and scoring against the sensor's rate.

The issue's target: 14 days of one tenant's flow events at 1,000 a minute (20.16 million events)
trained in minutes within this machine's memory, and scoring that keeps up with the sensor.
What runs, through the product's code (detections.ml):

1. `--days` of synthetic flow events (`--hosts` hosts, each with a few usual peers) generated a
   minute at a time and fed to a training `WindowFeaturizer` (no event ids kept) as training does:
   never more than one minute of events in memory. Timed: generation and featurising apart.
2. Training (`train_kinds`) on those rows, and on a full 14-day matrix of rows (`--full-days`),
   the measured days' rows repeated with 5 % noise: training cost depends on the row count only.
3. Reading from the store: `--store-minutes` of those events written to a SQLite event store and
   read back with `training.stored_pages` (hour slices), events/s.
4. Scoring: one live hour through `MlDetector` (featurise + score + explain), events/s, against
   1,000 events a minute and against the packet sensor's own events/s (docs/performance.md).
Times are CPU seconds of this process (`time.process_time`: every step is single-threaded, and
the machine's two cores are shared, so wall time would measure the neighbours); the wall time of
the whole run is printed at the end. Peak RSS (ru_maxrss) is printed after each step. Every
14-day figure not measured directly is extrapolated linearly from the measured rate and says so.

NSL-KDD quality moved to bench/ml_nslkdd.py; own captures with injected attacks are bench/ml_own.py.

Usage: .venv/bin/python bench/ml.py [--days 1] [--rate 1000] [--hosts 200] [--full-days 14] [--store-minutes 30]
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from config.tenants import TenantScope
from detections.ml.features import FEATURE_NAMES, TRAINING_LIMITS, EntityKind, FeatureRow, WindowFeaturizer
from detections.ml.models import ModelSpec, train_kinds, train_model
from detections.ml.score import MlDetector
from detections.ml.training import stored_pages
from pipeline.records import Event
from pipeline.store.registry import open_event_store

console = Console(width=160)
START = datetime(2026, 11, 2, tzinfo=UTC)
TENANT = "hanoi"


def flow_minutes(start: datetime, minutes: int, per_minute: int, hosts: int, seed: int) -> Iterator[list[Event]]:
    """One list of `per_minute` flow events per minute: each host talks to a few usual peers."""
    rng = random.Random(seed)
    step = 60.0 / per_minute
    for minute in range(minutes):
        batch = []
        for i in range(per_minute):
            host = rng.randrange(hosts)
            doc: dict[str, Any] = {
                "@timestamp": start + timedelta(minutes=minute, seconds=i * step), "organization": {"id": TENANT},
                "event": {"dataset": "flow", "outcome": "failure" if rng.random() < 0.02 else "success"},
                "source": {"ip": f"10.1.{host // 250}.{host % 250}", "bytes": int(rng.lognormvariate(7.5, 0.5))},
                "destination": {"ip": f"192.0.2.{(host * 7 + rng.randrange(6)) % 250}",
                                "port": rng.choice([443, 80]), "bytes": int(rng.lognormvariate(9.5, 0.7))},
                "network": {"packets": rng.randint(4, 60)},
            }
            batch.append(Event.create(doc, id_parts=("bench", seed, minute, i)))
        yield batch


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def featurise(args: argparse.Namespace) -> tuple[list[FeatureRow], WindowFeaturizer, dict[str, float]]:
    featurizer = WindowFeaturizer(limits=TRAINING_LIMITS)
    rows: list[FeatureRow] = []
    generated = featurised = 0.0
    events = 0
    clock = time.process_time()
    for batch in flow_minutes(START, int(args.days * 24 * 60), args.rate, args.hosts, seed=1):
        now = time.process_time()
        generated += now - clock
        rows += featurizer.add(batch)
        clock = time.process_time()
        featurised += clock - now
        events += len(batch)
    rows += featurizer.flush()
    return rows, featurizer, {"events": events, "generate_s": generated, "featurise_s": featurised}


def full_matrix(rows: list[FeatureRow], days: float, full_days: int) -> np.ndarray:
    """The flow rows of `full_days`: the measured days' rows repeated, each copy with 5 % noise."""
    measured = np.array([r.values for r in rows if r.kind is EntityKind.FLOW_SOURCE], dtype=np.float64)
    copies = max(1, round(full_days / days))
    rng = np.random.default_rng(0)
    return np.vstack([measured * rng.uniform(0.95, 1.05, measured.shape) for _ in range(copies)])


def store_read(args: argparse.Namespace, directory: Path) -> float:
    """Events/s of `stored_pages` over `--store-minutes` of events in a SQLite store."""
    store = open_event_store(f"sqlite:///{directory / 'govsoc.db'}")
    try:
        for batch in flow_minutes(START, args.store_minutes, args.rate, args.hosts, seed=3):
            store.write(batch)
        scope = TenantScope(root=TENANT, tenant_ids=frozenset({TENANT}))
        started = time.process_time()
        read = sum(len(page) for page in stored_pages(store, scope, START, START + timedelta(days=1)))
        return read / (time.process_time() - started)
    finally:
        store.close()


def score_rate(args: argparse.Namespace, models: list[Any], featurizer: WindowFeaturizer) -> tuple[float, int, int]:
    live = [e for b in flow_minutes(START + timedelta(days=args.days), 60, args.rate, args.hosts, seed=2) for e in b]
    featurizer.limits = type(featurizer.limits)()  # scoring keeps event ids for the alerts' links
    detector = MlDetector(models, featurizer)
    started = time.process_time()
    alerts = detector.process(live) + detector.flush()
    return len(live) / (time.process_time() - started), len(alerts), detector.scored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=1.0, help="days of events generated and featurised")
    parser.add_argument("--rate", type=int, default=1000, help="flow events per minute")
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--full-days", type=int, default=14, help="days of rows for the full-size training")
    parser.add_argument("--store-minutes", type=int, default=30)
    args = parser.parse_args()
    wall = time.perf_counter()
    rows, featurizer, measured = featurise(args)
    console.print(f"featurised {measured['events']:,} events -> {len(rows):,} windows; peak RSS {peak_mib():,.0f} MiB")
    started = time.process_time()
    models = [o.model for o in train_kinds(rows, ModelSpec(), tenant=TENANT) if o.model is not None]
    trained_s = time.process_time() - started
    matrix = full_matrix(rows, args.days, args.full_days)
    started = time.process_time()
    train_model(matrix, FEATURE_NAMES[EntityKind.FLOW_SOURCE], ModelSpec(), tenant=TENANT, kind="flow_source")
    full_s = time.process_time() - started
    console.print(f"trained on {len(rows):,} and on {len(matrix):,} windows; peak RSS {peak_mib():,.0f} MiB")
    with tempfile.TemporaryDirectory() as directory:
        read_rate = store_read(args, Path(directory))
    scored_rate, alerts, windows = score_rate(args, models, featurizer)
    report(args, measured, {"train_s": trained_s, "full_s": full_s, "full_rows": len(matrix), "read": read_rate,
                            "score": scored_rate, "alerts": alerts, "windows": windows})
    console.print(f"wall time of the run {time.perf_counter() - wall:.0f} s (CPU times above)")


def report(args: argparse.Namespace, measured: dict[str, float], timing: dict[str, float]) -> None:
    events = measured["events"]
    full_events = args.full_days * 24 * 60 * args.rate
    featurise_rate = events / measured["featurise_s"]
    table = Table("step", "measured", "rate", f"{args.full_days} days ({full_events:,} events)")
    table.add_row("generate events (bench only)", f"{measured['generate_s']:.1f} s for {events:,.0f}",
                  f"{events / measured['generate_s']:,.0f} ev/s", "-")
    table.add_row("read from the SQLite store (hour slices)", f"{args.store_minutes} min of events",
                  f"{timing['read']:,.0f} ev/s", f"{full_events / timing['read'] / 60:.1f} min (extrapolated)")
    table.add_row("featurise (training featurizer)", f"{measured['featurise_s']:.1f} s", f"{featurise_rate:,.0f} ev/s",
                  f"{full_events / featurise_rate / 60:.1f} min (extrapolated)")
    table.add_row("train 4 kinds on the measured rows", f"{timing['train_s']:.1f} s", "", "")
    table.add_row("train flow model on the full rows", f"{timing['full_s']:.1f} s",
                  f"{timing['full_rows']:,.0f} windows", f"{timing['full_s'] / 60:.1f} min (measured)")
    table.add_row("score live (featurise + score + explain)", f"{timing['windows']:,.0f} windows, "
                  f"{timing['alerts']:,.0f} alerts", f"{timing['score']:,.0f} ev/s",
                  f"{timing['score'] / (args.rate / 60):,.0f} x the {args.rate}/min rate")
    console.print(table)
    console.print(f"peak RSS {peak_mib():,.0f} MiB")


if __name__ == "__main__":
    main()
