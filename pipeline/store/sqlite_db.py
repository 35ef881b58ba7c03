"""The SQLite file both embedded stores live in: connections, transactions, schema versions.

Used by `sqlite_events` and `sqlite_incidents`; both may share one file (each owns its tables).

Invariants:
- WAL journal, `synchronous=NORMAL`, `busy_timeout`: a reader never waits for the writer, and a
  committed transaction survives a process crash (the last ones may be lost on power loss).
- One writer connection per store, guarded by a lock; every write runs in `transaction()`
  (`BEGIN IMMEDIATE` ... `COMMIT`, rolled back on any error), so writes from several threads
  serialise here and writes from several processes (or the other store) wait on SQLite's lock.
- One reader connection per thread (`threading.local`, `query_only`): reads from an API thread
  run while the pipeline writes and see the last committed state.
- The schema is created on open, idempotently, and its version is kept per component in
  `schema_version`; an older file is migrated forward in one transaction, and a file written by a
  newer govsoc is refused rather than misread. A store whose tables are declared in
  `pipeline.store.schema` (the incident store) names its Alembic branch instead (`AlembicBranch`):
  `pipeline.store.migrations.migrate` keeps those promises for it with Alembic's revisions.
- Every `sqlite3` failure leaves here as a `StoreError` naming the file and what was being done.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Self

import orjson
import structlog

from config.errors import SourceLocation
from config.tenants import TenantScope
from pipeline.errors import StoreError
from pipeline.store.base import MAX_LIMIT

log = structlog.get_logger(__name__)

BUSY_TIMEOUT_MS = 10_000
SQLITE_URL_PREFIX = "sqlite:///"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Schema:
    """The tables of one component (`events`, `incidents`) at one version.

    `statements` create version 1 and must be idempotent (`IF NOT EXISTS`); `migrations[v]` take
    version v-1 to v and run once each, in order, in the same transaction as the version bump. A
    new file runs the statements and then every migration, so new and migrated files are the same.
    """

    component: str
    version: int
    statements: tuple[str, ...]
    migrations: Mapping[int, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AlembicBranch:
    """The tables of one component kept by Alembic revisions (`pipeline/store/migrations/`), not a `Schema`."""

    branch: str


@dataclass(slots=True)
class Where:
    """A conjunction of SQL conditions and their bound parameters, built up clause by clause."""

    clauses: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, clause: str, *params: Any) -> None:
        self.clauses.append(clause)
        self.params.extend(params)

    @property
    def sql(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "TRUE"  # SQLite >= 3.23 and PostgreSQL


def scoped(scope: TenantScope, column: str = "tenant") -> Where:
    """A `Where` limited to the scope's tenants (no condition for an all-tenant scope).

    The ids travel as one JSON parameter, so a scope of thousands of tenants is still one bound
    value. `column` is always a constant of the calling module, never user input.
    """
    where = Where()
    if not scope.is_all:
        where.add(f"{column} IN (SELECT value FROM json_each(?))", json_list(sorted(scope.tenant_ids)))
    return where


def json_list(values: Sequence[Any]) -> str:
    return orjson.dumps(list(values)).decode()


def page(limit: int, offset: int) -> tuple[int, int]:
    """(limit, offset) with `limit` capped at `MAX_LIMIT`; negative values are refused."""
    if limit < 0 or offset < 0:
        raise StoreError(f"limit and offset must not be negative (limit={limit}, offset={offset})")
    return min(limit, MAX_LIMIT), offset


def to_us(ts: datetime, what: str = "time") -> int:
    """Microseconds since the epoch (UTC); exact, unlike `timestamp() * 1e6`."""
    if ts.tzinfo is None:
        raise StoreError(f"{what}: a time without a zone is ambiguous: {ts.isoformat()}")
    return (ts - _EPOCH) // _MICROSECOND


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def sqlite_path(url: str) -> Path:
    """The file of `sqlite:///relative/path.db` or `sqlite:////absolute/path.db`."""
    rest = url[len(SQLITE_URL_PREFIX):] if url.startswith(SQLITE_URL_PREFIX) else ""
    if not rest or "?" in rest or rest == ":memory:":
        raise StoreError(
            f"{url!r}: a SQLite store URL names a file: sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db (no in-memory database, no options)"
        )
    return Path(rest)


def sqlite_file_or(url: str, fallback: Path) -> Path:
    """The file of a `sqlite:///` URL, else `fallback`: where an embedded-only store (reports,
    indicators, rule state) lives beside a store whose URL may name another back end."""
    return sqlite_path(url) if url.startswith(SQLITE_URL_PREFIX) else fallback


class SqliteDatabase:
    """One SQLite file opened for one store: a locked writer and per-thread readers."""

    def __init__(self, path: Path, schema: Schema | AlembicBranch) -> None:
        self.path = path
        self._write_lock = threading.Lock()
        self._readers_lock = threading.Lock()
        self._readers: dict[threading.Thread, sqlite3.Connection] = {}
        self._local = threading.local()
        self._closed = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise self._error("create the directory", e) from e
        self._writer = self._connect(reader=False)
        try:
            if isinstance(schema, AlembicBranch):
                self._migrate_branch(schema.branch)
            else:
                self._ensure_schema(schema)
        except BaseException:
            self._writer.close()
            raise

    def _error(self, what: str, e: BaseException) -> StoreError:
        return StoreError(f"{what}: {e}", SourceLocation(path=str(self.path)))

    def _connect(self, *, reader: bool) -> sqlite3.Connection:
        # Autocommit (isolation_level=None): transactions are only the explicit ones below.
        # check_same_thread=False: the writer is shared under the lock, and close() may close
        # another thread's reader.
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=BUSY_TIMEOUT_MS / 1000)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if reader:
                conn.execute("PRAGMA query_only = ON")
            else:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode != "wal":
                    raise sqlite3.OperationalError(f"journal mode is {mode!r}, WAL is required")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as e:
            raise self._error("open", e) from e
        return conn

    def _migrate_branch(self, branch: str) -> None:
        """Alembic's revisions, after the writer made the file WAL (so they commit without a sync).

        At head this is one read on the writer: no SQLAlchemy engine is made, Alembic is not imported.
        """
        from pipeline.store.migrations import VERSION_SQL, is_current, migrate, sqlite_engine

        try:
            versions = [row[0] for row in self._writer.execute(VERSION_SQL)]
        except sqlite3.OperationalError:  # no such table (yet); `migrate` reports anything worse
            versions = []
        if is_current(versions, branch):
            return
        engine = sqlite_engine(self.path)
        try:
            migrate(engine, branch, where=str(self.path))
        finally:
            engine.dispose()

    def _ensure_schema(self, schema: Schema) -> None:
        with self.transaction(f"create the {schema.component} schema") as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version "
                         "(component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version WHERE component = ?",
                               (schema.component,)).fetchone()
            if row is None:
                for statement in schema.statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (component, version) VALUES (?, ?)",
                             (schema.component, 1))
                log.info("store_schema_created", path=str(self.path), component=schema.component, version=1)
                row = (1,)
            if row[0] > schema.version or any(v not in schema.migrations for v in range(row[0] + 1,
                                                                                      schema.version + 1)):
                raise StoreError(
                    f"the {schema.component} tables are at schema version {row[0]}, this govsoc "
                    f"reads version {schema.version} (no migration between them)",
                    SourceLocation(path=str(self.path)),
                )
            self._migrate(conn, schema, row[0])

    def _migrate(self, conn: sqlite3.Connection, schema: Schema, current: int) -> None:
        """Run the migrations from `current` up to `schema.version` (inside the caller's transaction)."""
        for version in range(current + 1, schema.version + 1):
            for statement in schema.migrations[version]:
                conn.execute(statement)
            conn.execute("UPDATE schema_version SET version = ? WHERE component = ?", (version, schema.component))
            log.info("store_schema_migrated", path=str(self.path), component=schema.component, version=version)

    @contextmanager
    def transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        """The writer connection inside `BEGIN IMMEDIATE`; committed on exit, rolled back on error.

        IMMEDIATE takes the write lock at the start, so a read-then-write (the audit chain's
        last hash, the ids already stored) cannot interleave with another writer's.
        """
        with self._write_lock:
            self._check_open()
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                self._rollback(conn)
                raise self._error(what, e) from e
            except BaseException:
                self._rollback(conn)
                raise

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    def query(self, what: str, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """All rows of one read, as tuples, from this thread's reader (one consistent snapshot)."""
        try:
            return self._reader().execute(sql, params).fetchall()
        except (sqlite3.Error, UnicodeEncodeError) as e:
            raise self._error(what, e) from e

    def rows(self, what: str, sql: str, params: Sequence[Any] = ()) -> Iterator[Any]:
        """The rows of one read, streamed; for results too large to hold at once."""
        try:
            cursor = self._reader().execute(sql, params)
            while batch := cursor.fetchmany(1000):
                yield from batch
        except (sqlite3.Error, UnicodeEncodeError) as e:
            raise self._error(what, e) from e

    def _reader(self) -> sqlite3.Connection:
        self._check_open()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(reader=True)
            self._local.conn = conn
            with self._readers_lock:
                self._close_readers(only_dead=True)
                self._readers[threading.current_thread()] = conn
        return conn

    def _close_readers(self, *, only_dead: bool) -> None:
        """Close readers whose thread has ended (or all); caller holds `_readers_lock`."""
        for thread, conn in list(self._readers.items()):
            if not only_dead or not thread.is_alive():
                conn.close()
                del self._readers[thread]

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed", SourceLocation(path=str(self.path)))

    def close(self) -> None:
        """Close every connection; idempotent. Reads or writes after this raise `StoreError`."""
        with self._write_lock, self._readers_lock:
            if self._closed:
                return
            self._closed = True
            self._close_readers(only_dead=False)
            self._writer.close()


class SqliteStore:
    """What every SQLite store shares: its schema, opening by path or URL, and closing.

    A store subclass sets `schema`; the tables of several stores may live in one file.
    """

    schema: ClassVar[Schema | AlembicBranch]

    def __init__(self, path: Path) -> None:
        self._db = SqliteDatabase(path, self.schema)

    @classmethod
    def from_url(cls, url: str) -> Self:
        return cls(sqlite_path(url))

    @property
    def path(self) -> Path:
        return self._db.path

    def close(self) -> None:
        self._db.close()
