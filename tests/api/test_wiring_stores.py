"""build_runtime opens each store from its own URL: incidents in PostgreSQL, events in SQLite.

What `govsoc up` and `govsoc replay` do with `GOVSOC_PIPELINE__INCIDENTS_URL=postgresql://...`:
the settings come from the environment, the runtime replays an auth log with a brute force in
it, and the incident lands in PostgreSQL while the events stay in the SQLite file.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from api.demo.authlog import Attack, AuthLogSpec, generate_auth_log
from api.wiring import build_runtime
from config.load import load_settings
from config.tenants import TenantScope
from pipeline.store.base import EventQuery, IncidentQuery
from pipeline.store.postgres_incidents import PostgresIncidentStore
from pipeline.store.sqlite_events import SqliteEventStore
from sensors.files import FileSource
from tests.servers import postgres

postgres_server = postgres.postgres_server  # one PostgreSQL per session (tests/servers/postgres.py)
postgres_database = postgres.postgres_database

START = datetime(2026, 11, 22, 17, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_govsoc_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("GOVSOC_"):
            monkeypatch.delenv(name)


def test_runtime_keeps_incidents_in_postgresql_and_events_in_sqlite(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, postgres_database: str) -> None:
    monkeypatch.setenv("GOVSOC_PIPELINE__INCIDENTS_URL", postgres_database)
    monkeypatch.setenv("GOVSOC_DATA_DIR", str(tmp_path / "data"))
    log = tmp_path / "auth.log"
    spec = AuthLogSpec(host="portal", start=START, lines=300, seed=11, duration=timedelta(hours=2),
                       attacks=(Attack(source="203.0.113.77", at=START + timedelta(minutes=30)),))
    log.write_text("\n".join(generate_auth_log(spec)) + "\n", encoding="utf-8")
    runtime = build_runtime(load_settings())
    try:
        assert isinstance(runtime.incidents, PostgresIncidentStore)
        assert isinstance(runtime.events, SqliteEventStore)
        stats = runtime.pipeline.replay([log], FileSource(tenant="hanoi", sensor="hanoi-s1", format="auth"))
        everything = TenantScope.everything()
        assert stats.incidents >= 1
        assert runtime.events.count(everything, EventQuery()) == stats.events > 0
        assert runtime.incidents.count_incidents(everything, IncidentQuery()) == stats.incidents
    finally:
        runtime.close()
    assert (tmp_path / "data" / "govsoc.db").is_file()
    with psycopg.connect(postgres_database) as conn:
        row = conn.execute("SELECT count(*) FROM incidents").fetchone()
    assert row is not None and row[0] == stats.incidents
