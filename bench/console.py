"""The console's incident queue over 10,000 incidents: server-side time of its first page.

A real SQLite incident store in a temporary directory gets N incidents (default 10,000) spread
over a national tree (national centre, two provinces, a commune), with mixed severities and
states. The whole app (`api.app.create_app` plus `api.console.install`) answers through
Starlette's TestClient, in process, so the numbers are the server's work (routing, session, store
reads, template rendering) without a network. A national analyst signs in through the console
form, then each request is timed `--runs` times after one warm-up:

- the queue's first page (`/incidents`: 50 rows, the total, a count per state, SLA badges);
- the JSON API list of the same page (`/api/v1/incidents?limit=50`) as the baseline, in the same run;
- the queue filtered by state and severity (still the store's own query);
- the queue sorted by deadline (the path that reads up to 10,000 incidents and sorts them);
- a province analyst's first page (a narrower scope).

Usage: .venv/bin/python -m bench.console [--incidents 10000] [--runs 30] [--markdown]
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from rich.console import Console
from rich.table import Table

from api import console
from api.app import create_app
from api.identity.passwords import PasswordHasher
from api.identity.service import IdentityService
from api.identity.store import SqliteIdentityStore
from config.settings import ApiSettings, IncidentSettings, Role, TenantConfig, TenantKind
from config.tenants import TenantTree
from pipeline.records import Incident, IncidentState, Severity, utc_now
from pipeline.store.base import IncidentStore
from pipeline.store.registry import open_event_store, open_incident_store, open_sensor_store

TREE = TenantTree.from_config([
    TenantConfig(id="national", name="Trung tâm giám sát quốc gia", kind=TenantKind.NATIONAL),
    TenantConfig(id="hanoi", name="Hà Nội", parent="national"),
    TenantConfig(id="hanoi-bavi", name="Ba Vì", parent="hanoi"),
    TenantConfig(id="danang", name="Đà Nẵng", parent="national"),
])
TENANTS = ("hanoi", "hanoi-bavi", "danang", "national")
STATES = (IncidentState.NEW, IncidentState.TRIAGE, IncidentState.IN_PROGRESS, IncidentState.RESOLVED)
PASSWORD = "bench password 1234"
API = ApiSettings(cookie_secure=False, rate_per_s=100_000, rate_burst=1_000_000)


def make_incident(n: int) -> Incident:
    at = utc_now() - timedelta(minutes=n)
    return Incident(id=f"inc-{n:07d}", tenant=TENANTS[n % len(TENANTS)], title=f"SSH brute force {n}",
                    severity=Severity(1 + n % 4), state=STATES[n % len(STATES)], rule_id=f"rule-{n % 20}",
                    entity={"source.ip": f"203.0.113.{n % 250}"}, first_seen=at, last_seen=at, alert_count=1,
                    created=at, updated=at, tags=("attack.t1110",), assignee=f"analyst-{n % 7}" if n % 3 else None)


def fill(store: IncidentStore, count: int) -> float:
    started = time.perf_counter()
    for n in range(count):
        store.save_incident(make_incident(n), [])
    return time.perf_counter() - started


def sign_in(client: TestClient, name: str) -> None:
    client.cookies.clear()
    token = re.search(r'name="login_token" value="([^"]+)"', client.get("/").text)
    assert token is not None
    answer = client.post("/login", data={"login_token": token.group(1), "name": name, "password": PASSWORD},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text


def measure(get: Callable[[], object], runs: int) -> tuple[float, float]:
    """(median, p95) milliseconds of `get` over `runs` calls after one warm-up."""
    get()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        get()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]


def page(client: TestClient, url: str, **params: str | int) -> Callable[[], object]:
    def get() -> object:
        answer = client.get(url, params=params)
        assert answer.status_code == 200, answer.text[:300]
        return answer
    return get


def run(count: int, runs: int, markdown: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'govsoc.db'}"
        events, incidents, sensors = open_event_store(url), open_incident_store(url), open_sensor_store(url)
        identity = IdentityService(SqliteIdentityStore(Path(tmp) / "identity.db"), incidents.append_audit,
                                   hasher=PasswordHasher(fast=True))
        for name, tenant in (("analyst-national", "national"), ("analyst-hanoi", "hanoi")):
            identity.create_user(name=name, tenant=tenant, role=Role.ANALYST, password=PASSWORD, actor="bench",
                                 now=utc_now())
        seconds = fill(incidents, count)
        app = create_app(tree=TREE, tokens=(), events_store=events, incidents_store=incidents, sensors_store=sensors,
                         incident_settings=IncidentSettings(), identity_service=identity, api_settings=API)
        console.install(app)
        rows = []
        with TestClient(app) as client:
            sign_in(client, "analyst-national")
            cases = [
                ("console queue, first page (national)", page(client, "/incidents")),
                ("JSON API list, limit 50 (baseline)", page(client, "/api/v1/incidents", limit=50)),
                ("console queue, state+severity filter", page(client, "/incidents", state="new", severity="high")),
                ("console queue, sorted by deadline", page(client, "/incidents", sort="deadline")),
            ]
            for label, get in cases:
                rows.append((label, *measure(get, runs)))
            sign_in(client, "analyst-hanoi")
            rows.append(("console queue, first page (province)", *measure(page(client, "/incidents"), runs)))
        for store in (events, incidents, sensors):
            store.close()
        identity.store.close()
    show(rows, count, runs, seconds, markdown)


def show(rows: list[tuple[str, float, float]], count: int, runs: int, fill_s: float, markdown: bool) -> None:
    table = Table(title=f"{count:,} incidents in SQLite (filled in {fill_s:.1f} s), {runs} runs each")
    for column in ("request", "median ms", "p95 ms"):
        table.add_column(column, justify="left" if column == "request" else "right")
    for label, median, p95 in rows:
        table.add_row(label, f"{median:.1f}", f"{p95:.1f}")
    Console().print(table)
    if markdown:
        lines = ["| request | median ms | p95 ms |", "|---|---|---|",
                 *(f"| {label} | {median:.1f} | {p95:.1f} |" for label, median, p95 in rows)]
        Console().print("\n".join(lines), markup=False, highlight=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--markdown", action="store_true", help="also print the rows as a Markdown table")
    args = parser.parse_args()
    run(args.incidents, args.runs, args.markdown)


if __name__ == "__main__":
    main()
