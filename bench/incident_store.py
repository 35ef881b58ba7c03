"""IncidentStore throughput, SQLite against PostgreSQL, in the same run on the same machine.

Operations, each timed on its own over a fresh store of each back end:
- save_incident: N upserts, each its own transaction, each linking one alert id;
- append_audit: N appends to the hash chain from one thread, then N more from 4 threads at once
  (SQLite serialises them on its write lock, PostgreSQL on the audit table's lock);
- incidents(): M listings of the newest 100 incidents of one province (a scoped, ordered page).

PostgreSQL is Debian's 15 started here as the tests start it (tests/servers/postgres.py: loopback,
`fsync=off`, `synchronous_commit=off`), unless `--postgres-url` names a server to use instead;
SQLite is a WAL file with `synchronous=NORMAL`. Neither waits for the disk on commit, so the
numbers compare the engines and the client round trips, not the disks.

Usage (from the repository root, so `tests.servers` imports): .venv/bin/python -m bench.incident_store
       [--incidents 2000] [--listings 200] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from config.tenants import TenantScope
from pipeline.records import Incident, IncidentState, Severity
from pipeline.store.base import IncidentQuery, IncidentStore
from pipeline.store.registry import open_incident_store

T0 = datetime(2026, 11, 23, tzinfo=UTC)
TENANTS = ("hanoi", "hanoi-bavi", "danang", "btc")
PROVINCE = TenantScope(root="hanoi", tenant_ids=frozenset({"hanoi", "hanoi-bavi"}))
THREADS = 4


def make_incident(n: int) -> Incident:
    at = T0 + timedelta(seconds=n)
    return Incident(id=f"inc-{n:07d}", tenant=TENANTS[n % len(TENANTS)], title=f"SSH brute force {n}",
                    severity=Severity.HIGH, state=IncidentState.NEW, rule_id="ssh-brute-force",
                    entity={"source.ip": f"203.0.113.{n % 250}"}, first_seen=at, last_seen=at, alert_count=1,
                    created=at, updated=at, tags=("attack.t1110",))


def append(store: IncidentStore, n: int) -> None:
    store.append_audit(actor="analyst", tenant=TENANTS[n % len(TENANTS)], action="incident.state",
                       object_type="incident", object_id=f"inc-{n:07d}", details={"from": "new", "to": "triage"})


def timed(work: Callable[[], object], operations: int) -> float:
    """Operations per second of `work`."""
    started = time.perf_counter()
    work()
    return operations / (time.perf_counter() - started)


def in_threads(target: Callable[[int], None], count: int) -> None:
    threads = [threading.Thread(target=target, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def measure(url: str, incidents: int, listings: int) -> dict[str, float]:
    store = open_incident_store(url)

    def save_all() -> None:
        for n in range(incidents):
            store.save_incident(make_incident(n), [f"alert-{n}"])

    def append_some(first: int = 0, step: int = 1) -> None:
        for n in range(first, incidents, step):
            append(store, n)

    def list_pages() -> None:
        for _ in range(listings):
            store.incidents(PROVINCE, IncidentQuery(limit=100))

    try:
        rates = {
            "save_incident": timed(save_all, incidents),
            "append_audit (1 thread)": timed(append_some, incidents),
            f"append_audit ({THREADS} threads)": timed(
                lambda: in_threads(lambda k: append_some(k, THREADS), THREADS), incidents),
            "incidents() page of 100": timed(list_pages, listings),
        }
        check = store.verify_audit()
        assert check.ok and check.entries == 2 * incidents, check
        return rates
    finally:
        store.close()


@contextmanager
def postgres_url(given: str | None) -> Iterator[str]:
    if given:
        yield given
        return
    from tests.servers.postgres import start, stop

    workdir = Path(tempfile.mkdtemp(prefix="govsoc-bench-postgres-"))
    try:
        server = start(workdir)
        try:
            yield server.url(server.create_database())
        finally:
            stop(server)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=2000)
    parser.add_argument("--listings", type=int, default=200)
    parser.add_argument("--postgres-url", default=None, help="an empty database to use (default: start one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = measure(f"sqlite:///{Path(tmp) / 'govsoc.db'}", args.incidents, args.listings)
    with postgres_url(args.postgres_url) as url:
        postgres = measure(url, args.incidents, args.listings)
    table = Table("operation", "SQLite ops/s", "PostgreSQL ops/s", "PostgreSQL / SQLite",
                  title=f"IncidentStore, {args.incidents} incidents, {args.listings} listings")
    for name, rate in sqlite.items():
        table.add_row(name, f"{rate:,.0f}", f"{postgres[name]:,.0f}", f"{postgres[name] / rate:.2f}x")
    Console().print(table)
    print("\n| operation | SQLite ops/s | PostgreSQL ops/s | PostgreSQL / SQLite |\n|---|---|---|---|")
    for name, rate in sqlite.items():
        print(f"| {name} | {rate:,.0f} | {postgres[name]:,.0f} | {postgres[name] / rate:.2f}x |")


if __name__ == "__main__":
    main()
