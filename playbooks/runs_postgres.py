"""Durable playbook runs in PostgreSQL: `PostgresRunStore`, the scale-out twin of `SqliteRunStore`.

In: the runner's writes. Out: `Run` and `StepRecord` values read back after any restart, by any
playbook worker on any machine. Same methods and behaviour as `playbooks.runs.SqliteRunStore`
(tests/playbooks/test_run_stores.py runs both); the tables may share the incident store's
database (`postgresql://...`); their tables are `pipeline.store.schema`'s `runs` branch, made by
Alembic's revisions (`pipeline.store.migrations`) when the store opens.

Invariants:
- Every write is one transaction (pipeline/store/postgres_db.py), committed before the method
  returns, so what a caller saw written survives a crash.
- `create_run` inserts the run only if its id is new (`ON CONFLICT DO NOTHING`) and its pending
  steps in the same transaction: two workers starting the same run create it once, and exactly
  one of them gets True.
- A side effect's row (`begin_side_effect`) is written before the call and finished
  (`finish_side_effect`) after it, under the key `run id:step id`; a second begin keeps the first.
- An approval is one row per (run, step, user): deciding again replaces that person's decision.
- Times are `timestamptz`; JSON columns (step output, playbook snapshot, requests, results) are text.
- Failures raise `PlaybookError` naming the URL (password hidden) and the server's reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import orjson

from pipeline.errors import StoreError
from pipeline.store.postgres_db import PostgresDatabase, aware
from pipeline.store.schema import RUNS
from pipeline.store.sqlite_db import AlembicBranch
from playbooks.errors import PlaybookError
from playbooks.runs import (
    RUN_COLUMNS,
    STEP_COLUMNS,
    Run,
    RunState,
    SideEffect,
    StepState,
    read_run,
)

Statement = tuple[str, Sequence[Any]]


def _as_read(value: Any) -> datetime:
    return value  # type: ignore[no-any-return]


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


class PostgresRunStore:
    """Runs and steps in a PostgreSQL database; safe to share between threads and processes."""

    def __init__(self, url: str) -> None:
        try:
            self._db = PostgresDatabase(url, AlembicBranch(RUNS))
        except StoreError as e:
            raise PlaybookError(f"cannot open the playbook runs: {e}") from e
        self.url = self._db.url  # password hidden

    @classmethod
    def from_url(cls, url: str) -> PostgresRunStore:
        return cls(url)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except StoreError as e:
            raise PlaybookError(f"{what}: {e}") from e

    def _write(self, statements: list[Statement]) -> None:
        with self._errors("cannot record the playbook run"), self._db.transaction("record the playbook run") as conn:
            for sql, params in statements:
                conn.execute(sql, params)

    def _read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._errors("cannot read the playbook runs"):
            return self._db.query("read the playbook runs", sql, params)

    def create_run(self, run: Run, playbook_json: str, step_ids: list[str]) -> bool:
        """Store a new run and its pending steps; False (nothing written) when the id exists."""
        now = aware(run.created, f"run {run.id}")
        with self._errors("cannot record the playbook run"), self._db.transaction(f"create run {run.id}") as conn:
            created = conn.execute(
                "INSERT INTO playbook_runs (id, playbook_id, playbook, incident_id, tenant, mode, state, cursor, "
                "created, updated) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING "
                "RETURNING id",
                (run.id, run.playbook_id, playbook_json, run.incident_id, run.tenant, run.mode.value,
                 run.state.value, run.cursor, now, now)).fetchone()
            if created is None:
                return False
            with conn.cursor() as cursor:
                cursor.executemany(f"INSERT INTO playbook_steps ({STEP_COLUMNS}) "
                                   "VALUES (%s, %s, %s, %s, '{}', '', NULL, %s)",
                                   [(run.id, step_id, i, StepState.PENDING.value, now)
                                    for i, step_id in enumerate(step_ids)])
        return True

    def update_run(self, run_id: str, state: RunState, cursor: str | None, now: datetime) -> None:
        self._write([("UPDATE playbook_runs SET state = %s, cursor = %s, updated = %s WHERE id = %s",
                      (state.value, cursor, aware(now, f"run {run_id}"), run_id))])

    def update_step(self, run_id: str, step_id: str, state: StepState, now: datetime, *,
                    output: dict[str, Any] | None = None, error: str = "") -> None:
        """Set a step's state (and output); the first move to running records `started`."""
        at = aware(now, f"step {run_id}:{step_id}")
        self._write([(
            "UPDATE playbook_steps SET state = %s, output = COALESCE(%s, output), error = %s, updated = %s, "
            "started = CASE WHEN started IS NULL AND %s = 'running' THEN %s ELSE started END "
            "WHERE run_id = %s AND step_id = %s",
            (state.value, None if output is None else _json(output), error, at, state.value, at, run_id, step_id))])

    def run(self, run_id: str) -> Run | None:
        rows = self._read(f"SELECT {RUN_COLUMNS} FROM playbook_runs WHERE id = %s", (run_id,))
        if not rows:
            return None
        r = rows[0]
        steps = self._read(f"SELECT {STEP_COLUMNS} FROM playbook_steps WHERE run_id = %s ORDER BY position",
                           (run_id,))
        return read_run(r, steps, _as_read)  # psycopg gives timestamptz as zoned datetimes

    def playbook_json(self, run_id: str) -> str:
        rows = self._read("SELECT playbook FROM playbook_runs WHERE id = %s", (run_id,))
        if not rows:
            raise PlaybookError(f"no playbook run {run_id!r}")
        return str(rows[0][0])

    def runs(self, state: RunState | None = None, limit: int = 100) -> list[Run]:
        """Runs, newest first (optionally only those in `state`)."""
        where, params = (" WHERE state = %s", [state.value]) if state else ("", [])
        ids = self._read(f"SELECT id FROM playbook_runs{where} ORDER BY created DESC, id DESC LIMIT %s",
                         [*params, limit])
        return [run for (run_id,) in ids if (run := self.run(run_id)) is not None]

    def record_approval(self, run_id: str, step_id: str, user: str, role: str, decision: str, now: datetime) -> None:
        self._write([('INSERT INTO playbook_approvals (run_id, step_id, "user", role, decision, at) '
                      'VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_id, step_id, "user") '
                      "DO UPDATE SET role = excluded.role, decision = excluded.decision, at = excluded.at",
                      (run_id, step_id, user, role, decision, aware(now, f"approval of {run_id}:{step_id}")))])

    def approvals(self, run_id: str, step_id: str) -> list[tuple[str, str, str]]:
        """(user, role, decision) of each person who decided on the step, in the order they did."""
        rows = self._read('SELECT "user", role, decision FROM playbook_approvals WHERE run_id = %s AND step_id = %s '
                          'ORDER BY at, "user"', (run_id, step_id))
        return [(str(u), str(r), str(d)) for u, r, d in rows]

    def side_effect(self, key: str) -> SideEffect | None:
        rows = self._read("SELECT key, state, request, result FROM playbook_side_effects WHERE key = %s", (key,))
        if not rows:
            return None
        k, state, request, result = rows[0]
        return SideEffect(k, state, orjson.loads(request), orjson.loads(result) if result else None)

    def begin_side_effect(self, key: str, run_id: str, step_id: str, request: dict[str, Any], now: datetime) -> None:
        """Record, before the call, that it is about to be made (kept as is when already recorded)."""
        self._write([("INSERT INTO playbook_side_effects (key, run_id, step_id, state, request, result, started, "
                      "finished) VALUES (%s, %s, %s, 'started', %s, NULL, %s, NULL) ON CONFLICT (key) DO NOTHING",
                      (key, run_id, step_id, _json(request), aware(now, f"side effect {key}")))])

    def finish_side_effect(self, key: str, result: dict[str, Any], now: datetime) -> None:
        self._write([("UPDATE playbook_side_effects SET state = 'done', result = %s, finished = %s WHERE key = %s",
                      (_json(result), aware(now, f"side effect {key}"), key))])

