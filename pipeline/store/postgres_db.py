"""The PostgreSQL database a scale-out store lives in: URL, connection pool, transactions, schema.

Used by `postgres_incidents` (and `playbooks.runs_postgres`); several stores may share one
database, each owning its tables and its row in `schema_version`.

Invariants:
- The URL is libpq's (`postgresql://user:password@host:port/dbname?sslmode=...`, or `postgres://`);
  the password never leaves this module: errors and logs show the URL with `***` in its place.
- Opening connects once directly, so a bad host, database or password fails at once with the
  server's reason; only then is the pool (psycopg_pool, up to `POOL_MAX_SIZE` connections) opened.
  Every connection is in autocommit with the session time zone UTC; a transaction is only ever
  an explicit `transaction()`. Connections are not tested before use (that would be a round trip
  per call): one the server dropped (a restart, a failover) fails the call that finds it with a
  `StoreError`, the pool replaces it, and the caller's retry (the worker's redelivery) succeeds.
- Every write runs in `transaction()`: one pooled connection, `BEGIN` ... `COMMIT`, rolled back on
  any error. Unlike SQLite there is no process-wide write lock: transactions from several threads
  or processes run side by side, and what must be serialised (the audit chain) takes a table
  lock inside its own transaction.
- Reads (`query`) run in autocommit, each one statement with its own snapshot at READ COMMITTED;
  `rows` streams one REPEATABLE READ snapshot through a server-side cursor.
- The schema is created on open, in one transaction under an advisory lock (two processes opening
  a new database at once do not race). The incident store and the playbook runs name their
  Alembic branch (`AlembicBranch`): `pipeline.store.migrations.migrate` upgrades it, and a
  database already at head costs one version read on the opening connection. A `Schema` keeps its
  version per component in `schema_version` instead; an older database is migrated forward in
  that transaction. Either way one written by a newer govsoc is refused rather than misread, and
  DDL is transactional in PostgreSQL, so a failed migration leaves the old schema whole.
- Every psycopg failure leaves here as a `StoreError` naming the URL (password hidden), what was
  being done and the server's reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

import psycopg
import structlog
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from config.errors import SourceLocation
from pipeline.errors import StoreError
from pipeline.store.registry import redacted
from pipeline.store.sqlite_db import AlembicBranch, Schema

log = structlog.get_logger(__name__)

POSTGRES_SCHEMES = ("postgresql", "postgres")
CONNECT_TIMEOUT_S = 10  # libpq's connect_timeout, unless the URL sets its own
POOL_MAX_SIZE = 8  # connections per store; a thread waits up to POOL_TIMEOUT_S for one
POOL_TIMEOUT_S = 30.0
STREAM_BATCH = 1000


def aware(ts: datetime, what: str = "time") -> datetime:
    """`ts` itself if it has a zone; a naive time is refused (PostgreSQL would read it as UTC)."""
    if ts.tzinfo is None:
        raise StoreError(f"{what}: a time without a zone is ambiguous: {ts.isoformat()}")
    return ts


def optional_aware(ts: datetime | None, what: str) -> datetime | None:
    return None if ts is None else aware(ts, what)


def postgres_conninfo(url: str) -> str:
    """`url` checked to be a `postgresql://` or `postgres://` URL libpq can read; returned as is."""
    scheme = url.partition("://")[0]
    try:
        conninfo_to_dict(url)
        parsed = urlsplit(url)
        parsed.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except (psycopg.Error, ValueError) as e:
        raise StoreError(f"not a PostgreSQL URL: {_scrubbed(str(e), url)}", SourceLocation(path=redacted(url))) from e
    if scheme not in POSTGRES_SCHEMES or not parsed.path.strip("/"):
        raise StoreError("a PostgreSQL store URL is postgresql://user[:password]@host[:port]/database",
                         SourceLocation(path=redacted(url)))
    return url


def _scrubbed(message: str, url: str) -> str:
    """The server's or libpq's message on one line, with the URL's password (if any) hidden."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    text = " ".join(message.split())
    return text.replace(password, "***") if password else text


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET TIME ZONE 'UTC'")


class PostgresDatabase:
    """One PostgreSQL database opened for one store: a pool of autocommit connections."""

    def __init__(self, url: str, schema: Schema | AlembicBranch, *, max_size: int = POOL_MAX_SIZE) -> None:
        self.url = redacted(url)
        self._conninfo = postgres_conninfo(url)
        self._closed = False
        kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in conninfo_to_dict(url):
            kwargs["connect_timeout"] = CONNECT_TIMEOUT_S
        component = schema.branch if isinstance(schema, AlembicBranch) else schema.component
        is_current = True
        try:
            with psycopg.connect(self._conninfo, **kwargs) as conn:
                _configure(conn)
                if isinstance(schema, AlembicBranch):
                    is_current = self._is_current(conn, schema.branch)
                else:
                    self._ensure_schema(conn, schema)
        except psycopg.Error as e:
            raise self._error(f"open the {component} tables", e) from e
        if isinstance(schema, AlembicBranch) and not is_current:
            self._migrate_branch(schema.branch, kwargs)
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            self._conninfo, kwargs=kwargs, min_size=1, max_size=max_size, timeout=POOL_TIMEOUT_S,
            configure=_configure, name=f"govsoc-{component}", open=True)

    def _error(self, what: str, e: BaseException) -> StoreError:
        return StoreError(f"{what}: {_scrubbed(str(e), self._conninfo)}", SourceLocation(path=self.url))

    @staticmethod
    def _is_current(conn: psycopg.Connection[Any], branch: str) -> bool:
        """One read of `alembic_version` on the opening connection (autocommit: a miss aborts nothing)."""
        from pipeline.store.migrations import VERSION_SQL, is_current

        try:
            return is_current([str(row[0]) for row in conn.execute(VERSION_SQL)], branch)
        except psycopg.errors.UndefinedTable:
            return False

    def _migrate_branch(self, branch: str, kwargs: dict[str, Any]) -> None:
        """Alembic's revisions on one direct connection (in a transaction, not autocommit)."""
        import sqlalchemy as sa  # SQLAlchemy only where a store is migrated by Alembic
        from sqlalchemy.pool import NullPool

        from pipeline.store.migrations import migrate

        def connect() -> psycopg.Connection[Any]:
            conn = psycopg.connect(self._conninfo, **{**kwargs, "autocommit": False})
            _configure(conn)
            conn.commit()  # SET TIME ZONE ran in a transaction of its own
            return conn

        engine = sa.create_engine("postgresql+psycopg://", creator=connect, poolclass=NullPool)
        try:
            migrate(engine, branch, where=self.url)
        except StoreError as e:
            raise StoreError(_scrubbed(e.reason, self._conninfo), SourceLocation(path=self.url)) from e
        finally:
            engine.dispose()

    def _ensure_schema(self, conn: psycopg.Connection[Any], schema: Schema) -> None:
        with conn.transaction():
            # One opener at a time per database: CREATE TABLE IF NOT EXISTS is not safe against
            # a concurrent CREATE of the same table.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('govsoc.schema_version'))")
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version "
                         "(component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version WHERE component = %s",
                               (schema.component,)).fetchone()
            if row is None:
                for statement in schema.statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (component, version) VALUES (%s, %s)",
                             (schema.component, 1))
                log.info("store_schema_created", url=self.url, component=schema.component, version=1)
                row = (1,)
            current = int(row[0])
            if current > schema.version or any(v not in schema.migrations
                                               for v in range(current + 1, schema.version + 1)):
                raise StoreError(
                    f"the {schema.component} tables are at schema version {current}, this govsoc "
                    f"reads version {schema.version} (no migration between them)",
                    SourceLocation(path=self.url),
                )
            self._migrate(conn, schema, current)

    def _migrate(self, conn: psycopg.Connection[Any], schema: Schema, current: int) -> None:
        """Run the migrations from `current` up to `schema.version` (inside the caller's transaction)."""
        for version in range(current + 1, schema.version + 1):
            for statement in schema.migrations[version]:
                conn.execute(statement)
            conn.execute("UPDATE schema_version SET version = %s WHERE component = %s",
                         (version, schema.component))
            log.info("store_schema_migrated", url=self.url, component=schema.component, version=version)

    @contextmanager
    def transaction(self, what: str) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection inside `BEGIN` ... `COMMIT`; rolled back on any error.

        A `StoreError` raised by the caller (say `IncidentConflict`) passes through unchanged.
        """
        self._check_open()
        try:
            with self._pool.connection() as conn, conn.transaction():
                yield conn
        except psycopg.Error as e:
            raise self._error(what, e) from e

    def query(self, what: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of one read (one statement, its own snapshot)."""
        self._check_open()
        try:
            with self._pool.connection() as conn:
                return conn.execute(sql, params).fetchall()
        except psycopg.Error as e:
            raise self._error(what, e) from e

    def rows(self, what: str, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """The rows of one read in one REPEATABLE READ snapshot, streamed by a server-side cursor.

        The connection is held until the iterator is exhausted or closed.
        """
        self._check_open()
        try:
            with self._pool.connection() as conn, conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                with conn.cursor(name=f"govsoc_{uuid.uuid4().hex}") as cursor:
                    cursor.itersize = STREAM_BATCH
                    cursor.execute(sql, params)
                    yield from cursor
        except psycopg.Error as e:
            raise self._error(what, e) from e

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed", SourceLocation(path=self.url))

    def close(self) -> None:
        """Close the pool; idempotent. Reads or writes after this raise `StoreError`."""
        if self._closed:
            return
        self._closed = True
        self._pool.close()


class PostgresStore:
    """What every PostgreSQL store shares: its schema, opening by URL, and closing."""

    schema: ClassVar[Schema | AlembicBranch]

    def __init__(self, url: str) -> None:
        self._db = PostgresDatabase(url, self.schema)

    @classmethod
    def from_url(cls, url: str) -> Self:
        return cls(url)

    @property
    def url(self) -> str:
        """The store's URL with its password hidden."""
        return self._db.url

    def close(self) -> None:
        self._db.close()
