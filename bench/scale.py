"""Events/s of the scale-out back end (Kafka -> ingest -> detect -> stores) beside the embedded one.

Same input for every row: N generated auth-log lines (api/demo/authlog.py) with brute-force
bursts. Each row times from the start of `govsoc replay` until every event is stored and every
alert of the embedded run is in the incident store:

- embedded: `govsoc up`'s back end in one process (MemoryBus, SQLite events and incidents);
- kafka+sqlite: noida-db (Kafka protocol) and `govsoc worker` processes (1 ingest, 2 detect,
  1 incidents), events in SQLite: the bus and the process split alone;
- kafka+search: the same with events in osmem-server (OpenSearch API): the full scale-out path.

Servers start on loopback from their wheels (tests/servers/, ../shared/SERVERS.md). Numbers are
for this machine (2 shared cores: every process of a row competes for them) and the test servers
(osmem-server is an in-memory test double, much slower at bulk indexing than Elasticsearch).

Usage (from the repository root, so `tests.servers` imports):
    .venv/bin/python -m bench.scale [--lines 20000] [--rows embedded,kafka+sqlite,kafka+search]
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from api.cli.common import configure_logging
from api.wiring import build_runtime
from config.load import load_settings
from config.tenants import TenantScope
from pipeline.store.base import AlertQuery, EventQuery
from pipeline.store.registry import open_event_store, open_incident_store
from tests.servers import search
from tests.servers.kafka import noida_server
from tests.servers.scale import TENANT, auth_log, parse_events, source
from tests.servers.workers import GovsocProcesses

PARTITIONS = 4


@dataclass
class Row:
    name: str
    events: int
    seconds: float
    alerts: int
    alerts_match: bool

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def alert_ids(url: str) -> set[str]:
    store = open_incident_store(url)
    try:
        scope = TenantScope.everything()
        return {a.id for a in store.alerts(scope, AlertQuery(limit=max(1, store.count_alerts(scope, AlertQuery()))))}
    finally:
        store.close()


def stored(url: str) -> int:
    store = open_event_store(url)
    try:
        return store.count(TenantScope.everything(), EventQuery())
    finally:
        store.close()


def run_embedded(log: Path, work: Path, total: int) -> tuple[Row, set[str]]:
    settings = load_settings(None, overrides={"data_dir": work / "embedded"})
    runtime = build_runtime(settings)
    started = time.perf_counter()
    runtime.pipeline.replay([log], source(TENANT))
    seconds = time.perf_counter() - started
    runtime.close()
    ids = alert_ids(settings.incidents_url)
    return Row("embedded (memory bus, SQLite)", total, seconds, len(ids), True), ids


@contextmanager
def servers(work: Path, with_search: bool) -> Iterator[tuple[str, str | None]]:
    broker = noida_server(work / "kafka")
    broker.start()
    process = None
    try:
        events_url = None
        if with_search:
            process, server = search.start(work / "osmem.log")
            events_url = server.store_url(prefix="bench")
        yield broker.url(partitions=PARTITIONS), events_url
    finally:
        if process is not None:
            search.stop(process)
        broker.stop()


def run_scale_out(name: str, log: Path, work: Path, total: int, expected: set[str], with_search: bool,
                  on_progress: Callable[[int], None]) -> Row:
    with servers(work, with_search) as (bus_url, events_url):
        data = work / "data"
        env = {"GOVSOC_BUS": bus_url, "GOVSOC_DATA_DIR": str(data)}
        if events_url:
            env["GOVSOC_EVENTS"] = events_url
        events_url = events_url or f"sqlite:///{data / 'govsoc.db'}"
        incidents_url = f"sqlite:///{data / 'govsoc.db'}"
        procs = GovsocProcesses(env, work)
        try:
            procs.run("setup", "setup", "--quiet")
            for proc_name, stage in (("ingest", "ingest"), ("detect-1", "detect"), ("detect-2", "detect"),
                                     ("incidents", "incidents")):
                procs.start(proc_name, "worker", stage, "--quiet")
            time.sleep(15)  # let the workers import and join their groups before the clock starts
            started = time.perf_counter()
            procs.run("replay", "replay", str(log), "--tenant", TENANT, "--quiet")
            done = 0
            while done < total or not expected <= alert_ids(incidents_url):
                procs.assert_alive()
                time.sleep(0.5)
                now = stored(events_url)
                on_progress(now - done)
                done = now
            seconds = time.perf_counter() - started
            ids = alert_ids(incidents_url)
        finally:
            procs.stop_all()
    return Row(name, total, seconds, len(ids), ids == expected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--rows", default="embedded,kafka+sqlite,kafka+search")
    args = parser.parse_args()
    configure_logging(False)  # warnings on stderr; stdout carries the results only
    wanted = args.rows.split(",")
    console = Console(stderr=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        log = auth_log(work / "auth.log", lines=args.lines, attacks=max(4, args.lines // 2000))
        total = len(parse_events(log))
        embedded, expected = run_embedded(log, work, total)
        if "embedded" in wanted:
            rows.append(embedded)
        for name, with_search in (("kafka+sqlite", False), ("kafka+search", True)):
            if name not in wanted:
                continue
            with Progress(console=console, transient=True) as progress:
                advance = functools.partial(progress.advance, progress.add_task(name, total=total))
                rows.append(run_scale_out(f"{name} (noida-db, 1+2+1 workers)", log, work / name, total, expected,
                                          with_search, on_progress=advance))
    table = Table("back end", "events", "seconds", "events/s", "vs embedded", "alerts", "same alerts")
    for row in rows:
        table.add_row(row.name, f"{row.events:,}", f"{row.seconds:.1f}", f"{row.rate:,.0f}",
                      f"{row.rate / embedded.rate:.2f}x", str(row.alerts), "yes" if row.alerts_match else "NO")
    Console().print(table)


if __name__ == "__main__":
    main()
