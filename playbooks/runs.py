"""Durable playbook runs: runs, their steps, approvals and side effects, in a SQLite file.

In: the runner's writes. Out: `Run` and `StepRecord` values read back after any restart.
The file lives next to the incident database (`runs_db_path`); this module owns its tables.

Invariants:
- Every write is one transaction, committed before the method returns, so what a caller saw
  written survives a crash.
- A side effect's row (`begin_side_effect`) is written before the call and finished
  (`finish_side_effect`) after it, under the key `run id:step id`; the runner reads it first.
- Queries are parameterised; JSON columns hold the step's output and the playbook snapshot.
- The tables are `pipeline.store.schema`'s `runs` branch, made and migrated by Alembic's revisions
  (`pipeline.store.migrations`) when the store opens; a file from before them is checked and adopted.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import orjson

from pipeline.errors import StoreError
from pipeline.records import parse_iso, to_iso
from pipeline.store.schema import RUNS
from pipeline.store.sqlite_db import sqlite_path
from playbooks.errors import PlaybookError

RUNS_FILE = "playbook_runs.db"


class RunState(StrEnum):
    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"
    DONE = "done"
    FAILED = "failed"


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


class RunMode(StrEnum):
    LIVE = "live"
    DRY_RUN = "dry_run"


@dataclass(frozen=True, slots=True)
class StepRecord:
    run_id: str
    step_id: str
    position: int
    state: StepState
    output: dict[str, Any]
    error: str
    started: datetime | None
    updated: datetime


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    playbook_id: str
    incident_id: str
    tenant: str
    mode: RunMode
    state: RunState
    cursor: str | None  # the step to run (or waiting) next; None when the run ended
    created: datetime
    updated: datetime
    steps: tuple[StepRecord, ...] = ()

    def step(self, step_id: str) -> StepRecord:
        for record in self.steps:
            if record.step_id == step_id:
                return record
        raise KeyError(step_id)


@dataclass(frozen=True, slots=True)
class SideEffect:
    key: str
    state: str  # "started" or "done"
    request: dict[str, Any]
    result: dict[str, Any] | None


# The columns a `Run` and a `StepRecord` are read from, in both run stores (pipeline/store/schema.py).
RUN_COLUMNS = "id, playbook_id, incident_id, tenant, mode, state, cursor, created, updated"
STEP_COLUMNS = "run_id, step_id, position, state, output, error, started, updated"


def read_run(run: Sequence[Any], steps: Sequence[Sequence[Any]], read_time: Callable[[Any], datetime]) -> Run:
    """A run and its steps from rows of `RUN_COLUMNS` and `STEP_COLUMNS`; `read_time` reads a stored time."""
    return Run(id=run[0], playbook_id=run[1], incident_id=run[2], tenant=run[3], mode=RunMode(run[4]),
               state=RunState(run[5]), cursor=run[6], created=read_time(run[7]), updated=read_time(run[8]),
               steps=tuple(StepRecord(run_id=s[0], step_id=s[1], position=s[2], state=StepState(s[3]),
                                      output=orjson.loads(s[4]), error=s[5],
                                      started=read_time(s[6]) if s[6] else None, updated=read_time(s[7]))
                           for s in steps))


class RunStore(Protocol):
    """Where runs live: `SqliteRunStore` here, `PostgresRunStore` (playbooks/runs_postgres.py).

    Both keep the invariants above; the runner's tests run against each.
    """

    def create_run(self, run: Run, playbook_json: str, step_ids: list[str]) -> bool: ...
    def update_run(self, run_id: str, state: RunState, cursor: str | None, now: datetime) -> None: ...
    def update_step(self, run_id: str, step_id: str, state: StepState, now: datetime, *,
                    output: dict[str, Any] | None = None, error: str = "") -> None: ...
    def run(self, run_id: str) -> Run | None: ...
    def playbook_json(self, run_id: str) -> str: ...
    def runs(self, state: RunState | None = None, limit: int = 100) -> list[Run]: ...
    def record_approval(self, run_id: str, step_id: str, user: str, role: str, decision: str,
                        now: datetime) -> None: ...
    def approvals(self, run_id: str, step_id: str) -> list[tuple[str, str, str]]: ...
    def side_effect(self, key: str) -> SideEffect | None: ...
    def begin_side_effect(self, key: str, run_id: str, step_id: str, request: dict[str, Any],
                          now: datetime) -> None: ...
    def finish_side_effect(self, key: str, result: dict[str, Any], now: datetime) -> None: ...
    def close(self) -> None: ...


def open_run_store(incidents_url: str, data_dir: Path) -> RunStore:
    """Runs live beside the incidents: in PostgreSQL when they do, else in `runs_db_path`'s file."""
    if incidents_url.startswith(("postgresql://", "postgres://")):
        from playbooks.runs_postgres import PostgresRunStore  # psycopg is a scale-out dependency

        return PostgresRunStore.from_url(incidents_url)
    if incidents_url.startswith("sqlite:///"):
        return SqliteRunStore(runs_db_path(incidents_url))
    return SqliteRunStore(data_dir / RUNS_FILE)


def runs_db_path(store_url: str) -> Path:
    """The runs file next to the incident store's SQLite file (`sqlite:///dir/govsoc.db`)."""
    if not store_url.startswith("sqlite:"):
        scheme = store_url.split(":", 1)[0]
        raise PlaybookError(f"playbook runs are kept next to a sqlite:/// incident store, not {scheme!r}")
    return sqlite_path(store_url).parent / RUNS_FILE


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """The `runs` tables at head: one version read when they are, Alembic's revisions when not."""
    from pipeline.store.migrations import VERSION_SQL, is_current, migrate, sqlite_engine

    try:
        versions = [row[0] for row in conn.execute(VERSION_SQL)]
    except sqlite3.OperationalError:  # no such table (yet); `migrate` reports anything worse
        versions = []
    if is_current(versions, RUNS):
        return
    engine = sqlite_engine(path)
    try:
        migrate(engine, RUNS, where=str(path))
    except StoreError as e:
        raise PlaybookError(f"cannot open the playbook runs: {e}") from e
    finally:
        engine.dispose()


class SqliteRunStore:
    """Runs and steps in one SQLite file; safe to share between threads (one lock)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            _migrate(self._db, path)
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    def _write(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for sql, params in statements:
                    self._db.execute(sql, params)
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                self._db.execute("ROLLBACK")
                raise PlaybookError(f"{self.path}: cannot record the playbook run: {e}") from e

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def create_run(self, run: Run, playbook_json: str, step_ids: list[str]) -> bool:
        """Store a new run and its pending steps; False (nothing written) when the id exists."""
        if self._read("SELECT 1 FROM playbook_runs WHERE id = ?", (run.id,)):
            return False
        now = to_iso(run.created)
        statements: list[tuple[str, tuple[Any, ...]]] = [(
            "INSERT INTO playbook_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run.id, run.playbook_id, playbook_json, run.incident_id, run.tenant, run.mode.value,
             run.state.value, run.cursor, now, now))]
        statements += [("INSERT INTO playbook_steps VALUES (?, ?, ?, ?, '{}', '', NULL, ?)",
                        (run.id, step_id, i, StepState.PENDING.value, now)) for i, step_id in enumerate(step_ids)]
        self._write(statements)
        return True

    def update_run(self, run_id: str, state: RunState, cursor: str | None, now: datetime) -> None:
        self._write([("UPDATE playbook_runs SET state = ?, cursor = ?, updated = ? WHERE id = ?",
                      (state.value, cursor, to_iso(now), run_id))])

    def update_step(self, run_id: str, step_id: str, state: StepState, now: datetime, *,
                    output: dict[str, Any] | None = None, error: str = "") -> None:
        """Set a step's state (and output); the first move to running records `started`."""
        self._write([(
            "UPDATE playbook_steps SET state = ?, output = COALESCE(?, output), error = ?, updated = ?, "
            "started = CASE WHEN started IS NULL AND ? = 'running' THEN ? ELSE started END "
            "WHERE run_id = ? AND step_id = ?",
            (state.value, None if output is None else orjson.dumps(output).decode(), error, to_iso(now),
             state.value, to_iso(now), run_id, step_id))])

    def run(self, run_id: str) -> Run | None:
        rows = self._read(f"SELECT {RUN_COLUMNS} FROM playbook_runs WHERE id = ?", (run_id,))
        if not rows:
            return None
        r = rows[0]
        steps = self._read(f"SELECT {STEP_COLUMNS} FROM playbook_steps WHERE run_id = ? ORDER BY position", (run_id,))
        return read_run(r, steps, parse_iso)

    def playbook_json(self, run_id: str) -> str:
        rows = self._read("SELECT playbook FROM playbook_runs WHERE id = ?", (run_id,))
        if not rows:
            raise PlaybookError(f"no playbook run {run_id!r}")
        return str(rows[0][0])

    def runs(self, state: RunState | None = None, limit: int = 100) -> list[Run]:
        """Runs, newest first (optionally only those in `state`)."""
        sql = "SELECT id FROM playbook_runs" + (" WHERE state = ?" if state else "") + " ORDER BY created DESC LIMIT ?"
        params: tuple[Any, ...] = (state.value, limit) if state else (limit,)
        return [run for (run_id,) in self._read(sql, params) if (run := self.run(run_id)) is not None]

    def record_approval(self, run_id: str, step_id: str, user: str, role: str, decision: str, now: datetime) -> None:
        self._write([("INSERT OR REPLACE INTO playbook_approvals VALUES (?, ?, ?, ?, ?, ?)",
                      (run_id, step_id, user, role, decision, to_iso(now)))])

    def approvals(self, run_id: str, step_id: str) -> list[tuple[str, str, str]]:
        """(user, role, decision) of each person who decided on the step, in the order they did."""
        rows = self._read("SELECT user, role, decision FROM playbook_approvals WHERE run_id = ? AND step_id = ? "
                          "ORDER BY at, user", (run_id, step_id))
        return [(str(u), str(r), str(d)) for u, r, d in rows]

    def side_effect(self, key: str) -> SideEffect | None:
        rows = self._read("SELECT key, state, request, result FROM playbook_side_effects WHERE key = ?", (key,))
        if not rows:
            return None
        k, state, request, result = rows[0]
        return SideEffect(k, state, orjson.loads(request), orjson.loads(result) if result else None)

    def begin_side_effect(self, key: str, run_id: str, step_id: str, request: dict[str, Any], now: datetime) -> None:
        """Record, before the call, that it is about to be made (kept as is when already recorded)."""
        self._write([("INSERT OR IGNORE INTO playbook_side_effects VALUES (?, ?, ?, 'started', ?, NULL, ?, NULL)",
                      (key, run_id, step_id, orjson.dumps(request).decode(), to_iso(now)))])

    def finish_side_effect(self, key: str, result: dict[str, Any], now: datetime) -> None:
        self._write([("UPDATE playbook_side_effects SET state = 'done', result = ?, finished = ? WHERE key = ?",
                      (orjson.dumps(result).decode(), to_iso(now), key))])
