"""Replay N generated auth-log lines through sensor -> bus -> ingest -> detection -> SQLite.

Prints events/s and peak memory (max RSS) for each stage, each measured in a fresh subprocess,
with ratios against the parse-only baseline measured in the same run:

- parse: the file sensor alone (read, split, parse to ECS events); the baseline.
- pipeline: `govsoc replay` end to end on the embedded back end (MemoryBus, SQLite WAL store,
  Sigma rules and correlation, incidents).

Usage: .venv/bin/python bench/replay_auth.py [--lines 100000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table


def generate(path: Path, lines: int) -> None:
    from api.demo.authlog import ICT, Attack, AuthLogSpec, generate_auth_log

    start = datetime(2026, 11, 22, tzinfo=ICT)
    attacks = tuple(Attack(source=f"203.0.113.{i + 1}", at=start + timedelta(hours=i)) for i in range(20))
    spec = AuthLogSpec(host="portal", start=start, lines=lines, attacks=attacks)
    path.write_text("\n".join(generate_auth_log(spec)) + "\n", encoding="utf-8")


def stage_parse(path: Path, work: Path) -> dict[str, float]:
    from sensors.files import FileSource, read_log_file

    started = time.perf_counter()
    events = dead = 0
    for batch in read_log_file(path, FileSource(tenant="hanoi", sensor="bench", format="auth")):
        events += len(batch.events)
        dead += len(batch.dead_letters)
    return {"seconds": time.perf_counter() - started, "events": events, "dead": dead}


def stage_pipeline(path: Path, work: Path) -> dict[str, float]:
    from api.wiring import build_runtime
    from config.load import load_settings
    from sensors.files import FileSource

    settings = load_settings(None, overrides={"data_dir": work / "data"})
    runtime = build_runtime(settings)
    started = time.perf_counter()
    stats = runtime.pipeline.replay([path], FileSource(tenant="hanoi", sensor="hanoi-s1", format="auth"))
    seconds = time.perf_counter() - started
    runtime.close()
    return {"seconds": seconds, "events": stats.events, "dead": stats.dead_letters, "alerts": stats.alerts,
            "incidents": stats.incidents}


STAGES = {"parse": stage_parse, "pipeline": stage_pipeline}


def run_stage(name: str, path: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as work:
        result = subprocess.run([sys.executable, __file__, "--stage", name, "--file", str(path), "--work", work],
                                capture_output=True, text=True, check=True)
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--stage", choices=sorted(STAGES))
    parser.add_argument("--file", type=Path)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    if args.stage:  # child: one stage, one JSON line with peak RSS
        import logging

        import structlog

        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
        result = STAGES[args.stage](args.file, args.work)
        result["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "auth.log"
        generate(path, args.lines)
        table = Table("stage", "lines", "events/s", "vs parse", "alerts", "incidents", "peak RSS MiB",
                      title=f"auth-log replay, {args.lines:,} generated lines (best of {args.repeat})")
        baseline = 0.0
        for name in STAGES:
            runs = [run_stage(name, path) for _ in range(args.repeat)]
            best = min(runs, key=lambda r: r["seconds"])
            rate = (best["events"] + best["dead"]) / best["seconds"]
            baseline = baseline or rate
            table.add_row(name, f"{int(best['events'] + best['dead']):,}", f"{rate:,.0f}", f"{rate / baseline:.2f}x",
                          str(int(best.get("alerts", 0))), str(int(best.get("incidents", 0))),
                          f"{best['max_rss_mib']:.0f}")
        console.print(table)


if __name__ == "__main__":
    main()
