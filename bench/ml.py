"""ML anomaly detection at one tenant's scale: 14 days of flows stored, read back, featurised and trained, for real.

The issue's target: 14 days of one tenant's flow events at 1,000 a minute (20,160,000 events)
trained in minutes within this machine's memory, and scoring that keeps up with the sensor.
What runs, end to end through the product's code, each step in a fresh subprocess (so its CPU
time and peak RSS are its own):

1. write: `--days` of synthetic flow events (`--hosts` hosts, each with a few usual peers)
   generated a minute at a time and written to the embedded SQLite event store (WAL, FTS5), a
   minute per transaction, as an ingest worker writes them. Generation and writing timed apart.
2. train: what `govsoc ml train --tenant T --since 14d` and scheduled retraining run
   (`training.train_from_store`, split here to time its parts): `stored_pages` (hour slices) ->
   `collect` (training featurizer, no event ids; `TrainingSet` keeps the vectors as arrays) ->
   `train_and_save` (one model per kind, skops files in a registry). Reading is timed apart from
   featurising (the time spent inside the store's page iterator).
3. score: one live hour after the training days through `MlFeed` with the saved models
   (featurise + score + explain), events/s against 1,000 a minute and the packet sensor's rate.

Why the store, not files: `govsoc ml train PATH...` reads its files whole into memory (fine for a
day's capture, not for 20 million events), while the store is what training reads in production
and is read a page at a time.

Times are CPU seconds of the step's process (`time.process_time`: each step is single-threaded and
the two cores are shared, so wall time also measures the neighbours; both are printed). Peak RSS is
the step process's `ru_maxrss`. Progress lines (per simulated day) go to stderr.

Usage: .venv/bin/python bench/ml.py [--days 14] [--rate 1000] [--hosts 200] [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from config.tenants import TenantScope
from detections.ml import EntityKind, MlConfig, MlFeed, ModelRegistry, collect, stored_pages, train_and_save
from pipeline.ids import IdPrefix
from pipeline.records import Event
from pipeline.store.registry import open_event_store

console = Console(width=160, stderr=True)
START = datetime(2026, 11, 2, tzinfo=UTC)
TENANT = "hanoi"
PACKET_SENSOR_EVENTS_S = 11_100  # the packet sensor's ECS events per second (docs/performance.md)


def flow_minutes(start: datetime, minutes: int, per_minute: int, hosts: int, seed: int) -> Iterator[list[Event]]:
    """One list of `per_minute` flow events per minute: each host talks to a few usual peers."""
    rng = random.Random(seed)
    step = 60.0 / per_minute
    ids = IdPrefix(TENANT, "bench", seed)  # Event.trusted + a prefixed id: Event.create's event, cheaper
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
            batch.append(Event.trusted(doc, tenant=TENANT, event_id=ids.id(minute, i)))
        yield batch


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def progress(step: str, day: float, started: float) -> None:
    sys.stderr.write(f"{step}: day {day:g} done, {time.process_time() - started:.0f} s CPU, "
                     f"peak {peak_mib():.0f} MiB\n")
    sys.stderr.flush()


def write_step(args: argparse.Namespace) -> dict[str, float]:
    store = open_event_store(f"sqlite:///{Path(args.dir) / 'govsoc.db'}")
    generated = written = 0.0
    events = 0
    started = clock = time.process_time()
    try:
        for minute, batch in enumerate(flow_minutes(START, int(args.days * 1440), args.rate, args.hosts, seed=1)):
            now = time.process_time()
            generated += now - clock
            store.write(batch)
            clock = time.process_time()
            written += clock - now
            events += len(batch)
            if (minute + 1) % 1440 == 0:
                progress("write", (minute + 1) / 1440, started)
    finally:
        store.close()
    size = sum(p.stat().st_size for p in Path(args.dir).glob("govsoc.db*"))
    return {"events": events, "generate_s": generated, "write_s": written, "db_bytes": size, "peak_mib": peak_mib()}


class TimedPages:
    """The store's pages, with the CPU time spent fetching them (the rest of the loop is featurising)."""

    def __init__(self, pages: Iterable[list[Event]], per_day: int) -> None:
        self.pages = iter(pages)
        self.fetch_s = 0.0
        self.events = 0
        self.per_day = per_day
        self.started = time.process_time()

    def __iter__(self) -> Iterator[list[Event]]:
        while True:
            before = time.process_time()
            page = next(self.pages, None)
            self.fetch_s += time.process_time() - before
            if page is None:
                return
            day = (self.events + len(page)) // self.per_day
            if day > self.events // self.per_day:
                progress("read + featurise", day, self.started)
            self.events += len(page)
            yield page


def train_on(pages: Iterable[list[Event]], args: argparse.Namespace, source: str) -> dict[str, float]:
    """`collect` + `train_and_save` over `pages`, timing the page source apart from featurising."""
    config = MlConfig(training_window=timedelta(days=args.days))
    started = time.process_time()
    timed = TimedPages(pages, args.rate * 1440)
    found = collect(TENANT, timed, config, "UTC")
    collected = time.process_time() - started
    flows = found.matrix(EntityKind.FLOW_SOURCE)
    after_featurise = peak_mib()
    started = time.process_time()
    outcomes = train_and_save(found, ModelRegistry(Path(args.dir) / "models"), config,
                              now=START + timedelta(days=args.days), source=source)
    trained = time.process_time() - started
    return {"events": found.events, "source_s": timed.fetch_s, "featurise_s": collected - timed.fetch_s,
            "windows": found.windows, "flow_windows": len(flows), "vectors_mib": flows.nbytes / 2**20,
            "train_s": trained, "models": sum(o.model is not None for o in outcomes),
            "peak_featurise_mib": after_featurise, "peak_mib": peak_mib()}


def train_step(args: argparse.Namespace) -> dict[str, float]:
    """Train from the SQLite store `write` filled: what `govsoc ml train --since` runs."""
    store = open_event_store(f"sqlite:///{Path(args.dir) / 'govsoc.db'}")
    end = START + timedelta(days=args.days)
    scope = TenantScope(root=TENANT, tenant_ids=frozenset({TENANT}))
    try:
        return train_on(stored_pages(store, scope, end - timedelta(days=args.days), end), args,
                        f"store, {args.days:g} days")
    finally:
        store.close()


def pooled_minutes(start: datetime, minutes: int, args: argparse.Namespace) -> Iterator[list[Event]]:
    """`flow_minutes`, with the documents of the first `--pool-minutes` reused for every later period:
    each event is new (its own id and time) but shares a document, so making it costs ~1 us instead
    of ~15 us. The featurizer reads the same fields either way; the values repeat every pool period."""
    pool = [[(e.doc, i) for i, e in enumerate(batch)] for batch in
            flow_minutes(start, args.pool_minutes, args.rate, args.hosts, seed=1)]
    step = 60.0 / args.rate
    for minute in range(minutes):
        at = start + timedelta(minutes=minute)
        yield [Event(id=f"pool-{minute}-{i}", timestamp=at + timedelta(seconds=i * step), tenant=TENANT, doc=doc)
               for doc, i in pool[minute % len(pool)]]


def stream_step(args: argparse.Namespace) -> dict[str, float]:
    """Train on events generated a minute at a time and fed straight to `collect` (no store)."""
    minutes = int(args.days * 1440)
    if args.pool_minutes:
        return train_on(pooled_minutes(START, minutes, args), args, f"stream, {args.pool_minutes}-minute pool")
    return train_on(flow_minutes(START, minutes, args.rate, args.hosts, seed=1), args, "generated stream")


def score_step(args: argparse.Namespace) -> dict[str, float]:
    live = [e for b in flow_minutes(START + timedelta(days=args.days), 60, args.rate, args.hosts, seed=2) for e in b]
    feed = MlFeed(ModelRegistry(Path(args.dir) / "models"), [TENANT])
    feed.refresh()
    started = time.process_time()
    alerts = feed.process(live) + feed.flush(live[-1].timestamp + timedelta(hours=1))
    spent = time.process_time() - started
    windows = sum(s.windows for s in feed.status())
    return {"events": len(live), "score_s": spent, "alerts": len(alerts), "windows": windows, "peak_mib": peak_mib()}


STEPS = {"write": write_step, "train": train_step, "stream": stream_step, "score": score_step}


def run_step(step: str, args: argparse.Namespace) -> dict[str, float]:
    """The step in a fresh interpreter; its JSON result (last stdout line) plus its wall time."""
    command = [sys.executable, __file__, "--step", step, "--days", str(args.days), "--rate", str(args.rate),
               "--hosts", str(args.hosts), "--dir", args.dir, "--pool-minutes", str(args.pool_minutes)]
    started = time.perf_counter()
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - started
    console.print(f"{step}: {result}")
    return result


def report(args: argparse.Namespace, done: dict[str, dict[str, float]]) -> None:
    """One table of the steps that ran on this --dir (a run in parts reports what it has)."""
    table = Table("step", "CPU s", "wall s (step)", "rate (CPU)", "peak RSS", "what")
    write = done.get("write")
    if write:
        events = write["events"]
        table.add_row("generate events (bench only)", f"{write['generate_s']:.0f}", "",
                      f"{events / write['generate_s']:,.0f} ev/s", "", f"{events:,.0f} events")
        table.add_row("write: SQLite event store", f"{write['write_s']:.0f}", f"{write['wall_s']:.0f}",
                      f"{events / write['write_s']:,.0f} ev/s", f"{write['peak_mib']:,.0f} MiB",
                      f"{write['db_bytes'] / 2**30:.2f} GiB on disk")
    for step, source in (("train", "read: stored_pages, hour slices"), ("stream", "generate (bench only)")):
        train = done.get(step)
        if not train:
            continue
        events = train["events"]
        table.add_row(f"{step}: {source}", f"{train['source_s']:.0f}", "",
                      f"{events / train['source_s']:,.0f} ev/s", "", f"{events:,.0f} events")
        table.add_row(f"{step}: featurise (collect -> TrainingSet)", f"{train['featurise_s']:.0f}", "",
                      f"{events / train['featurise_s']:,.0f} ev/s", f"{train['peak_featurise_mib']:,.0f} MiB",
                      f"{train['windows']:,.0f} windows ({train['flow_windows']:,.0f} flow, "
                      f"{train['vectors_mib']:.0f} MiB of vectors)")
        table.add_row(f"{step}: train + save (train_and_save)", f"{train['train_s']:.1f}", "", "",
                      f"{train['peak_mib']:,.0f} MiB", f"{train['models']:.0f} models")
        total = train["source_s"] + train["featurise_s"] + train["train_s"]
        table.add_row(f"{step}: whole step", f"{total:.0f}", f"{train['wall_s']:.0f}", "",
                      f"{train['peak_mib']:,.0f} MiB", "")
    score = done.get("score")
    if score:
        rate = score["events"] / score["score_s"]
        table.add_row("score a live hour (MlFeed)", f"{score['score_s']:.1f}", f"{score['wall_s']:.0f}",
                      f"{rate:,.0f} ev/s", f"{score['peak_mib']:,.0f} MiB",
                      f"{score['windows']:,.0f} windows, {score['alerts']:,.0f} alerts; "
                      f"{rate / (args.rate / 60):,.0f}x {args.rate}/min, "
                      f"{rate / PACKET_SENSOR_EVENTS_S:.1f}x the packet sensor")
    Console(width=200).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=14.0, help="days of events stored and trained on")
    parser.add_argument("--rate", type=int, default=1000, help="flow events per minute")
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--pool-minutes", type=int, default=0,
                        help="stream: reuse the documents of this many minutes (0: every event generated)")
    parser.add_argument("--dir", default="", help="where the store and models go (default: a temporary dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary dir (a given --dir is always kept)")
    parser.add_argument("--steps", default="write,train,score",  # `stream` trains without the store
                        help="which steps, in order; e.g. `write` now and `train,score` later on the same --dir")
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        sys.stdout.write(json.dumps(STEPS[args.step](args)) + "\n")  # the parent reads this line
        return
    wall = time.perf_counter()
    owned = not args.dir
    args.dir = args.dir or tempfile.mkdtemp(prefix="govsoc-bench-ml-")
    try:
        for step in args.steps.split(","):
            result = run_step(step, args)
            (Path(args.dir) / f"{step}.json").write_text(json.dumps(result), encoding="utf-8")
        report(args, {step: json.loads((Path(args.dir) / f"{step}.json").read_text(encoding="utf-8"))
                      for step in STEPS if (Path(args.dir) / f"{step}.json").is_file()})
    finally:
        if owned and not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)
    console.print(f"wall time of the run {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
