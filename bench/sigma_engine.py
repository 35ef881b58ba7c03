"""SigmaHQ's Windows rules over a large corpus of Windows events: our engine beside the SQLite way.

Measures, in one run:
- load: rules/s and peak RSS for rules/windows, rules-emerging-threats and rules-threat-hunting.
- corpus: the real regression events of ../shared/data/sigma-regression (each .json read with
  `sensors.windows.read_windows_file`), kept as they are, plus variants made deterministically from
  `--seed`: other hosts, process ids and users, numbers appended to command lines, image and file
  names, until `--events` events.
- engine: `SigmaEngine` over the whole corpus (log source index, literal prefilter: dispatch.py,
  prefilter.py); and without the literal prefilter over the first `--baseline-events`, both
  (rule, event) sets compared.
- sqlite (`--sqlite-events`, 0 to skip): Zircolite's approach. The events are flattened (EventData
  names as columns, `COLLATE NOCASE`, plus the System fields), loaded into one table, and every
  rule pySigma's SQLite backend converts runs as a query, restricted to the rule's log source
  (channel and event ids, as Zircolite's pipelines do). events/s is events / (load + queries).
  The (rule, event) pairs found are compared with the engine's on the same events.

Usage: .venv/bin/python bench/sigma_engine.py [--events 200000] [--baseline-events 2000]
                                        [--sqlite-events 20000] [--seed 7]
(as a module: run as a script, this file's directory comes first on the path and the name `sigma`
would be this file, not pySigma.)
"""

from __future__ import annotations

import argparse
import logging
import random
import resource
import sqlite3
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import structlog
from rich.console import Console
from rich.table import Table

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RULE_DIRS = [DATA / "sigma" / name for name in ("rules/windows", "rules-emerging-threats", "rules-threat-hunting")]
REGRESSION = DATA / "sigma-regression"
VARIED_TEXT = ("CommandLine", "ParentCommandLine", "Image", "TargetFilename", "ImageLoaded", "TargetObject")
Pairs = set[tuple[str, str]]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# --- corpus ---------------------------------------------------------------------------------------

def regression_events() -> list[Any]:
    from sensors.windows import WindowsSource, read_windows_file

    source = WindowsSource(tenant="bench", sensor="bench")
    events = []
    for path in sorted(REGRESSION.rglob("*.json")):
        for batch in read_windows_file(path, source):
            events.extend(batch.events)
    return events


def _vary_text(rng: random.Random, name: str, text: str, n: int) -> str:
    if name.endswith("CommandLine"):
        return f"{text} /v{n}" if rng.random() < 0.5 else text
    if rng.random() < 0.3 and "." in text:  # whoami.exe -> whoami17.exe
        stem, dot, ext = text.rpartition(".")
        return f"{stem}{n % 100}{dot}{ext}"
    return text


def variant(original: Any, n: int, rng: random.Random) -> Any:
    """A copy of `original` with other host, pid, user and (sometimes) texts; its own event id."""
    from pipeline import ecs
    from pipeline.records import Event, get_path, set_path

    doc = orjson.loads(orjson.dumps(original.doc, default=str))
    data = get_path(doc, "winlog.event_data")
    if isinstance(data, dict):
        for name in VARIED_TEXT:
            if isinstance(data.get(name), str):
                data[name] = _vary_text(rng, name, data[name], n)
        for name in ("ProcessId", "ParentProcessId"):
            if name in data:
                data[name] = str(rng.randrange(4, 65536))
        if isinstance(data.get("User"), str):
            data["User"] = f"CORP\\user{n % 500}"
    host = f"ws-{n % 997:03d}"
    for field in (ecs.HOST_NAME, "winlog.computer_name"):
        if get_path(doc, field) is not None:
            set_path(doc, field, host)
    set_path(doc, ecs.EVENT_ID, f"{original.id}-{n}")
    return Event.from_document(doc)


def build_corpus(size: int, seed: int) -> tuple[list[Any], int]:
    """`size` events: the originals first, then variants round-robin; and how many are originals."""
    originals = regression_events()
    rng = random.Random(seed)
    corpus = list(originals)
    n = 0
    while len(corpus) < size:
        corpus.append(variant(originals[n % len(originals)], n, rng))
        n += 1
    return corpus[:size], len(originals)


# --- engine ---------------------------------------------------------------------------------------

def run_engine(ruleset: Any, events: list[Any], *, use_prefilter: bool) -> tuple[float, float, Pairs]:
    """(wall seconds, CPU seconds of this process, pairs found)."""
    from detections.sigma import SigmaEngine

    engine = SigmaEngine(ruleset, use_prefilter=use_prefilter)
    pairs: Pairs = set()
    started, cpu = time.perf_counter(), time.process_time()
    for event in events:
        pairs.update((rule.info.rule_id, event.id) for rule in engine.matching_rules(event))
    return time.perf_counter() - started, time.process_time() - cpu, pairs


# --- sqlite (Zircolite's way) ---------------------------------------------------------------------

SYSTEM_COLUMNS = {"EventID": "event.code", "Channel": "winlog.channel", "Provider_Name": "winlog.provider_name",
                  "Computer": "winlog.computer_name"}


def _flat(event: Any) -> dict[str, Any]:
    from pipeline.records import get_path

    row = {name: get_path(event.doc, path) for name, path in SYSTEM_COLUMNS.items()}
    data = get_path(event.doc, "winlog.event_data")
    if isinstance(data, dict):
        row.update((k, v if isinstance(v, (str, int, float)) or v is None else orjson.dumps(v).decode())
                   for k, v in data.items() if k not in row)
    row["_id"] = event.id
    return row


def _regexp(pattern: str, value: Any) -> bool:
    import re

    return value is not None and re.search(pattern, str(value)) is not None


def sqlite_queries(ruleset: Any) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(rule id, SQL) per compiled form the backend converts, scoped to its log source; and the
    reason for each rule it does not convert."""
    from sigma.backends.sqlite.sqlite import sqliteBackend
    from sigma.collection import SigmaCollection

    backend: Any = sqliteBackend()  # type: ignore[no-untyped-call]  # the package has no type hints
    queries: list[tuple[str, str]] = []
    skipped: dict[str, str] = {}
    sources: dict[str, list[Any]] = {}
    for rule in ruleset.rules:
        sources.setdefault(rule.info.source, []).append(rule)
    for path, forms in sources.items():
        try:
            converted = backend.convert(SigmaCollection.from_yaml(Path(path).read_text(encoding="utf-8")))
        except Exception as e:  # the backend refuses some modifiers (e.g. cidr, fieldref, expand)
            skipped[forms[0].info.rule_id] = f"{type(e).__name__}: {str(e)[:80]}"
            continue
        if len(converted) != 1:
            skipped[forms[0].info.rule_id] = f"{len(converted)} queries"
            continue
        where = converted[0].split(" WHERE ", 1)[1]
        for form in forms:
            scope = form.scope
            codes = ",".join(f"'{code}'" for code in sorted(scope.codes))
            extra = f" AND EventID IN ({codes})" if codes else ""
            queries.append((form.info.rule_id,
                            f"SELECT _id FROM logs WHERE ({where}) AND Channel = '{scope.value}'{extra}"))
    return queries, skipped


def run_sqlite(queries: list[tuple[str, str]], events: list[Any]) -> tuple[float, float, Pairs, dict[str, str]]:
    """(wall seconds, CPU seconds of this process: SQLite runs in it, pairs, failed queries)."""
    started, cpu = time.perf_counter(), time.process_time()
    rows = [_flat(event) for event in events]
    columns = sorted({name for row in rows for name in row})
    db = sqlite3.connect(":memory:")
    db.create_function("regexp", 2, _regexp, deterministic=True)
    db.execute(f"CREATE TABLE logs ({', '.join(f'{c!r} TEXT COLLATE NOCASE' for c in columns)})")
    db.execute("CREATE INDEX logs_source ON logs (Channel, EventID)")
    placeholders = ", ".join("?" for _ in columns)
    db.executemany(f"INSERT INTO logs VALUES ({placeholders})",
                   ([None if row.get(c) is None else str(row[c]) for c in columns] for row in rows))
    pairs: Pairs = set()
    failed: dict[str, str] = {}
    for rule_id, sql in queries:
        try:
            pairs.update((rule_id, event_id) for (event_id,) in db.execute(sql))
        except sqlite3.Error as e:  # a column no event has: Zircolite skips such a rule too
            failed[rule_id] = str(e)[:80]
    return time.perf_counter() - started, time.process_time() - cpu, pairs, failed


# --- report ---------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--baseline-events", type=int, default=2000)
    parser.add_argument("--sqlite-events", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    # stdout carries the table only: the readers log each file at info.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    from detections.sigma import load_rules

    console = Console(stderr=True)
    started = time.perf_counter()
    ruleset, errors = load_rules(RULE_DIRS)
    load_seconds = time.perf_counter() - started
    rules = len(ruleset.rule_ids)
    load_rss = peak_rss_mb()
    console.print(f"loaded {rules} rules ({len(errors)} skipped) in {load_seconds:.1f} s")

    corpus, originals = build_corpus(args.events, args.seed)
    console.print(f"corpus: {len(corpus)} events ({originals} originals)")
    fast_s, fast_cpu, fast_pairs = run_engine(ruleset, corpus, use_prefilter=True)
    base = corpus[:args.baseline_events]
    base_s, _base_cpu, base_pairs = run_engine(ruleset, base, use_prefilter=False)
    base_ids = {event.id for event in base}
    fast_on_base = {pair for pair in fast_pairs if pair[1] in base_ids}

    table = Table(title=f"Sigma: {rules} SigmaHQ Windows rules")
    for column in ("measure", "events", "seconds", "events/s", "alerts (rule, event)", "notes"):
        table.add_column(column, justify="left" if column in ("measure", "notes") else "right")
    table.add_row("load rules", str(rules), f"{load_seconds:.1f}", f"{rules / load_seconds:,.0f} rules/s", "",
                  f"peak RSS {load_rss:,.0f} MB, {len(errors)} files skipped")
    table.add_row("engine, log source index only (no literal prefilter)", str(len(base)), f"{base_s:.1f}",
                  f"{len(base) / base_s:,.0f}", str(len(base_pairs)), "")
    table.add_row("engine (log source index, literal prefilter)", str(len(corpus)), f"{fast_s:.1f}",
                  f"{len(corpus) / fast_s:,.0f}", str(len(fast_pairs)),
                  ("same pairs as without the prefilter" if fast_on_base == base_pairs else
                   f"DIFFERS on first {len(base)}: {len(fast_on_base ^ base_pairs)} pairs")
                  + f"; CPU {len(corpus) / fast_cpu:,.0f} events/s")
    if args.sqlite_events:
        sqlite_rate, sqlite_cpu_rate = _add_sqlite(table, ruleset, corpus[:args.sqlite_events], fast_pairs, console)
        console.print(f"engine / sqlite: {len(corpus) / fast_s / sqlite_rate:.1f}x wall, "
                      f"{len(corpus) / fast_cpu / sqlite_cpu_rate:.1f}x CPU time")
    table.caption = f"peak RSS {peak_rss_mb():,.0f} MB; seed {args.seed}; Python {sys.version.split()[0]}"
    Console(width=160).print(table)
    return 0


def _add_sqlite(table: Table, ruleset: Any, events: list[Any], fast_pairs: Pairs,
                console: Console) -> tuple[float, float]:
    """Adds the SQLite row; returns its events/s, by the wall clock and by CPU time."""
    queries, skipped = sqlite_queries(ruleset)
    seconds, cpu_seconds, sql_pairs, failed = run_sqlite(queries, events)
    ids = {event.id for event in events}
    compared = {rule_id for rule_id, _sql in queries} - set(failed)
    ours = {pair for pair in fast_pairs if pair[1] in ids and pair[0] in compared}
    theirs = {pair for pair in sql_pairs if pair[0] in compared}
    union = ours | theirs
    agreement = len(ours & theirs) / len(union) if union else 1.0
    console.print(f"sqlite: {len(skipped)} rules not converted, {len(failed)} queries failed")
    for reason, count in Counter(skipped.values()).most_common():
        console.print(f"  not converted ({count}): {reason}")
    for reason, count in Counter(why.split(":")[0] for why in failed.values()).most_common(5):
        console.print(f"  query failed ({count}): {reason}")
    for rule_id, event_id in sorted(ours ^ theirs)[:20]:
        console.print(f"  differs: rule {rule_id} event {event_id} "
                      f"({'engine only' if (rule_id, event_id) in ours else 'sqlite only'})")
    table.add_row("sqlite (Zircolite's way)", str(len(events)), f"{seconds:.1f}", f"{len(events) / seconds:,.0f}",
                  str(len(theirs)),
                  f"{len(compared)} rules compared; agreement {agreement:.2%} "
                  f"({len(ours - theirs)} engine only, {len(theirs - ours)} sqlite only); "
                  f"CPU {len(events) / cpu_seconds:,.0f} events/s")
    return len(events) / seconds, len(events) / cpu_seconds


if __name__ == "__main__":
    raise SystemExit(main())
