"""Fixtures for the store contract suites: one `StoreHarness` per implementation.

A harness gives the URL both stores open (through the registry, as the application does) and the
back-door operations the audit tests need: reaching past the store to change or remove an audit
entry the way an attacker with file or database access would. Adding an implementation is one
more entry in `HARNESSES`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from pipeline.store.base import EventStore, IncidentStore
from pipeline.store.registry import open_event_store, open_incident_store


class StoreHarness(Protocol):
    url: str
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


HARNESSES: dict[str, Callable[[Path], StoreHarness]] = {
    # Both stores share one file, which is also what `govsoc up` does.
    "sqlite": lambda tmp_path: SqliteHarness(tmp_path / "govsoc.db"),
}


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> StoreHarness:
    return HARNESSES[request.param](tmp_path)


@pytest.fixture
def event_store(harness: StoreHarness) -> Iterator[EventStore]:
    store = open_event_store(harness.url)
    yield store
    store.close()


@pytest.fixture
def incident_store(harness: StoreHarness) -> Iterator[IncidentStore]:
    store = open_incident_store(harness.url)
    yield store
    store.close()
