"""Fixtures for the store contract suites: one harness per implementation.

A harness gives the URL a store opens (through the registry, as the application does). The
EventStore contract runs over `EVENT_HARNESSES`; the IncidentStore contract over `HARNESSES`,
whose harnesses also have the back-door operations the audit tests need: reaching past the store
to change or remove an audit entry the way an attacker with file or database access would.
Adding an implementation is one more entry in the table of each interface it implements.

Server-backed harnesses start their server (a session fixture, tests/servers/) only when a test
with their parameter runs, and give each test a store of its own: a fresh index prefix, whose
indices and templates are deleted afterwards, or a fresh PostgreSQL database, dropped afterwards.
`-k "not opensearch and not postgres"` skips them for a quick run.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psycopg
import pytest

from pipeline.store.base import EventStore, IncidentStore
from pipeline.store.registry import open_event_store, open_incident_store
from tests.servers import postgres, search
from tests.servers.search import SearchServer

search_server = search.search_server  # the session fixture (one server, shared by every module)
postgres_server = postgres.postgres_server  # the same, for PostgreSQL (tests/servers/postgres.py)
postgres_database = postgres.postgres_database


class EventHarness(Protocol):
    @property
    def url(self) -> str: ...


class StoreHarness(Protocol):
    @property
    def url(self) -> str: ...

    refused: type[Exception]  # what the database raises when the audit trail refuses a change

    def update_audit(self, seq: int, action: str) -> None:
        """Change an entry's action directly in the database (the guards should refuse)."""

    def delete_audit(self, seq: int) -> None:
        """Remove an entry directly in the database (the guards should refuse)."""

    def tamper_audit(self, seq: int, action: str) -> None:
        """Disable the guards, then change an entry's action: what `verify_audit` must catch."""


@dataclass
class SqliteHarness:
    path: Path
    refused: type[Exception] = sqlite3.IntegrityError

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"  # tmp_path is absolute: sqlite:////tmp/...

    def _execute(self, *statements: tuple[str, tuple[object, ...]]) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            for sql, params in statements:
                conn.execute(sql, params)
        finally:
            conn.close()

    def update_audit(self, seq: int, action: str) -> None:
        self._execute(("UPDATE audit SET action = ? WHERE seq = ?", (action, seq)))

    def delete_audit(self, seq: int) -> None:
        self._execute(("DELETE FROM audit WHERE seq = ?", (seq,)))

    def tamper_audit(self, seq: int, action: str) -> None:
        self._execute(
            ("DROP TRIGGER audit_no_update", ()),
            ("DROP TRIGGER audit_no_delete", ()),
            ("UPDATE audit SET action = ? WHERE seq = ?", (action, seq)),
        )


@dataclass
class PostgresHarness:
    """A database of the test's own on the session's PostgreSQL; the guards are triggers there too."""

    url: str
    refused: type[Exception] = psycopg.errors.RaiseException

    def _execute(self, *statements: tuple[str, tuple[object, ...]]) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            for sql, params in statements:
                conn.execute(sql.encode(), params)

    def update_audit(self, seq: int, action: str) -> None:
        self._execute(("UPDATE audit SET action = %s WHERE seq = %s", (action, seq)))

    def delete_audit(self, seq: int) -> None:
        self._execute(("DELETE FROM audit WHERE seq = %s", (seq,)))

    def tamper_audit(self, seq: int, action: str) -> None:
        self._execute(
            ("ALTER TABLE audit DISABLE TRIGGER USER", ()),
            ("UPDATE audit SET action = %s WHERE seq = %s", (action, seq)),
        )


def postgres_harness(request: pytest.FixtureRequest, tmp_path: Path) -> AbstractContextManager[StoreHarness]:
    # postgres_database drops the test's database at the end of the test, like any fixture.
    return nullcontext(PostgresHarness(request.getfixturevalue("postgres_database")))


HARNESSES: dict[str, Callable[[pytest.FixtureRequest, Path], AbstractContextManager[StoreHarness]]] = {
    # Both stores share one file, which is also what `govsoc up` does.
    "sqlite": lambda request, tmp_path: nullcontext(SqliteHarness(tmp_path / "govsoc.db")),
    "postgres": postgres_harness,  # Debian's PostgreSQL 15, see tests/servers/postgres.py
}


@dataclass
class OpensearchHarness:
    """A store of its own on the session's osmem-server: a fresh prefix, `refresh=wait_for`."""

    server: SearchServer
    prefix: str

    @property
    def url(self) -> str:
        return self.server.store_url(prefix=self.prefix, refresh="wait_for")


@contextmanager
def opensearch_harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventHarness]:
    harness = OpensearchHarness(request.getfixturevalue("search_server"), prefix=f"t{uuid.uuid4().hex[:16]}")
    try:
        yield harness
    finally:
        harness.server.drop(harness.prefix)


EVENT_HARNESSES: dict[str, Callable[[pytest.FixtureRequest, Path], AbstractContextManager[EventHarness]]] = {
    "sqlite": lambda request, tmp_path: nullcontext(SqliteHarness(tmp_path / "govsoc.db")),
    "opensearch": opensearch_harness,  # osmem-server, see tests/servers/search.py
}


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreHarness]:
    with HARNESSES[request.param](request, tmp_path) as harness:
        yield harness


@pytest.fixture(params=sorted(EVENT_HARNESSES))
def event_harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventHarness]:
    with EVENT_HARNESSES[request.param](request, tmp_path) as harness:
        yield harness


@pytest.fixture
def event_store(event_harness: EventHarness) -> Iterator[EventStore]:
    store = open_event_store(event_harness.url)
    yield store
    store.close()


@pytest.fixture
def incident_store(harness: StoreHarness) -> Iterator[IncidentStore]:
    store = open_incident_store(harness.url)
    yield store
    store.close()
