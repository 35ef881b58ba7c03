"""Schema migrations of the incident store and the playbook runs (Alembic, shipped in the package).

In: a database (an `Engine` or a URL: `sqlite:///path`, `postgresql://...`) and a branch
(`incidents` or `runs`, see `pipeline.store.schema`). Out: that database at the branch's head,
and a `Migration` saying what was done. Stores call `migrate` when they open; `govsoc setup`
opens them, so it migrates PostgreSQL before any worker starts.

- `env.py` and `versions/` live here; Alembic is configured in code (`alembic_config`), no
  alembic.ini. Revisions are `incidents_NNNN` and `runs_NNNN`, one branch each: in PostgreSQL
  both branches share one `alembic_version` table (a row per branch), while on SQLite each branch
  has its own file and its own table. docs/migrations.md says how to add a revision.
- A database at head costs one read of `alembic_version` (`HEADS` is the head of each branch,
  checked against the revisions by a test). The stores make that read on the connection they
  open anyway (`VERSION_SQL`, `is_current`) and call `migrate` only when it says there is work,
  so opening a current database makes no engine and imports no Alembic (this module imports
  SQLAlchemy and Alembic only inside its functions).
- Otherwise the work runs in one transaction under a lock (SQLite `BEGIN IMMEDIATE`, PostgreSQL
  an advisory lock), so two processes opening a new database at once migrate it once, and a
  failed revision leaves the database as it was:
  - no table of the branch: upgraded from nothing to head;
  - the branch's tables but no version (a database the pre-Alembic stores made): the branch's
    first revision `adopt()`s it, the database is compared with that revision's
    `frozen_metadata()`, and only if they agree is it stamped and upgraded; any difference is
    refused with the list of differences, and nothing is written;
  - a version this govsoc does not know (written by a newer one): refused, nothing written.
- Every failure leaves as a `StoreError` naming the database (`where`) and the reason.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from config.errors import SourceLocation
from pipeline.errors import StoreError

if TYPE_CHECKING:
    import sqlalchemy as sa
    from alembic.config import Config
    from alembic.script import ScriptDirectory

log = structlog.get_logger(__name__)

SCRIPT_LOCATION = Path(__file__).parent
HEADS = {"incidents": "incidents_0001", "runs": "runs_0001"}  # the newest revision of each branch
VERSION_SQL = "SELECT version_num FROM alembic_version"  # no parameters: the same text on every driver
SQLITE_BUSY_TIMEOUT_S = 10.0
_READ_ONLY = "govsoc_read_only"  # execution option: a SQLite read that must not take the write lock


class Migration(StrEnum):
    """What `migrate` did."""

    CURRENT = "current"  # already at head: one version read, nothing written
    CREATED = "created"  # no tables of the branch: created up to head
    UPGRADED = "upgraded"  # at an older revision: upgraded to head
    ADOPTED = "adopted"  # made by the pre-Alembic store: checked, stamped, then upgraded to head


def is_current(versions: Iterable[str], branch: str) -> bool:
    """Whether the revisions read from `alembic_version` include the head of `branch`."""
    return HEADS[branch] in versions


def sqlite_engine(path: Path) -> sa.Engine:
    """An engine on one SQLite file whose transactions are `BEGIN IMMEDIATE` (DDL included).

    pysqlite's own transaction handling leaves DDL outside transactions; here the driver is in
    autocommit and the engine emits BEGIN itself, so a migration is all or nothing and takes the
    write lock first (two openers cannot both create the tables).
    """
    import sqlalchemy as sa
    from sqlalchemy import event
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(sa.URL.create("sqlite", database=str(path)), poolclass=NullPool,
                              connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _autocommit(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA synchronous = NORMAL")  # as the stores' own connections

    @event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        if not connection.get_execution_options().get(_READ_ONLY):
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def engine_for(url: str) -> sa.Engine:
    """An engine (no pool) for a store URL: `sqlite:///path` or `postgresql://` / `postgres://` (psycopg)."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    from pipeline.store.sqlite_db import sqlite_path  # the one reading of SQLite store URLs

    if url.startswith("sqlite:"):
        return sqlite_engine(sqlite_path(url))
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        return sa.create_engine(f"postgresql+psycopg://{rest}", poolclass=NullPool)
    raise StoreError(f"no migrations for a {scheme or url!r} store: they are for sqlite:/// and postgresql://")


def alembic_config(connection: sa.Connection | None = None, branch: str | None = None) -> Config:
    """Alembic's configuration for the revisions shipped here, bound to `connection` for env.py."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    config.attributes["branch"] = branch
    return config


def include_object_for(branch: str | None) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """Alembic's `include_object` filter: the branch's tables (all of ours for None), nothing else.

    A database table that no MetaData declares belongs to another store sharing the database
    (the event store's, the legacy `schema_version`), and is never drift.
    """
    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ != "table":
            return True
        if reflected and compare_to is None:
            return False
        info = getattr(obj, "info", {}) or {}
        return branch is None or info.get("branch", branch) == branch

    return include


def migrate(target: sa.Engine | str, branch: str, *, where: str | None = None) -> Migration:
    """Bring the database to the head of `branch`; see the module docstring for each case.

    `where` names the database in errors and logs (a path, or a URL with its password hidden);
    by default the engine's URL with any password hidden. An engine made here is disposed of here.
    """
    import sqlalchemy as sa

    from pipeline.store.schema import BRANCHES

    if branch not in BRANCHES:
        raise StoreError(f"unknown migration branch {branch!r}: the branches are {', '.join(BRANCHES)}")
    engine = engine_for(target) if isinstance(target, str) else target
    where = where or engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            if is_current(_versions(conn), branch):
                return Migration.CURRENT
            conn.execution_options(**{_READ_ONLY: False})
            with conn.begin():
                if conn.dialect.name == "postgresql":  # one migrator per database at a time
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext('govsoc.alembic'))")
                done = _migrate_locked(conn, branch)
    except StoreError as e:
        raise StoreError(f"migrate the {branch} tables: {e.reason}", SourceLocation(path=where)) from e
    except sa.exc.DBAPIError as e:
        reason = " ".join(str(e.orig).split())
        raise StoreError(f"migrate the {branch} tables: {reason}", SourceLocation(path=where)) from e
    except Exception as e:  # Alembic's CommandError, a revision's own error: named, never raw
        if not _is_alembic_error(e):
            raise
        raise StoreError(f"migrate the {branch} tables: {e}", SourceLocation(path=where)) from e
    finally:
        if isinstance(target, str):
            engine.dispose()
    log.info("store_schema_migrated", where=where, branch=branch, outcome=done.value, revision=HEADS[branch])
    return done


def _is_alembic_error(e: Exception) -> bool:
    import sqlalchemy as sa
    from alembic.util import CommandError

    return isinstance(e, CommandError | sa.exc.SQLAlchemyError)


def _versions(conn: sa.Connection) -> set[str]:
    """The revisions in `alembic_version` (one per branch), or none when there is no such table."""
    import sqlalchemy as sa

    conn.execution_options(**{_READ_ONLY: True})
    try:
        return {str(row[0]) for row in conn.exec_driver_sql(VERSION_SQL)}
    except sa.exc.DBAPIError:
        conn.rollback()  # PostgreSQL: the failed read aborted the implicit transaction
        if not sa.inspect(conn).has_table("alembic_version"):
            return set()
        raise
    finally:
        conn.rollback()


def _migrate_locked(conn: sa.Connection, branch: str) -> Migration:
    """The slow path, inside the caller's transaction and lock."""
    import sqlalchemy as sa
    from alembic.runtime.migration import MigrationContext

    from pipeline.store.schema import branch_tables

    script = _script()
    current = set(MigrationContext.configure(conn).get_current_heads())
    known = {revision.revision for revision in script.walk_revisions()}
    if unknown := sorted(current - known):
        raise StoreError(f"the database is at revision {', '.join(unknown)}, which this govsoc does not know "
                         "(a newer govsoc migrated it): refusing to read or change it")
    if is_current(current, branch):  # another opener migrated it while this one waited for the lock
        return Migration.CURRENT
    ours = {rev for rev in current if branch in (script.get_revision(rev) or _missing(rev)).branch_labels}
    if ours:
        done = Migration.UPGRADED
    elif any(sa.inspect(conn).has_table(table.name) for table in branch_tables(branch)):
        _adopt(conn, script, branch)
        base = _base(script, branch)
        _run(conn, branch, base, lambda rev: script._stamp_revs(base, rev))
        done = Migration.ADOPTED
    else:
        done = Migration.CREATED
    head = f"{branch}@head"
    _run(conn, branch, head, lambda rev: script._upgrade_revs(head, rev))
    return done


@functools.cache
def _script() -> ScriptDirectory:
    """The shipped revisions, read once per process (Alembic's commands would re-read them each time)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def _run(conn: sa.Connection, branch: str, destination: str, steps: Callable[[Any], Any]) -> None:
    """What `alembic.command.upgrade`/`stamp` do, on `conn` and with the cached script directory.

    env.py's configuration, inline: loading env.py and the revisions again on every open of a
    new database cost more than creating the tables.
    """
    from alembic.runtime.environment import EnvironmentContext

    from pipeline.store.schema import metadata

    script = _script()
    with EnvironmentContext(alembic_config(conn, branch), script, fn=lambda rev, _context: steps(rev),
                            destination_rev=destination) as context:
        context.configure(connection=conn, target_metadata=metadata, compare_type=True, render_as_batch=True,
                          include_object=include_object_for(branch))
        with context.begin_transaction():
            context.run_migrations()


def _missing(revision: str) -> Any:
    raise StoreError(f"revision {revision} is not among the shipped revisions")


def _base(script: ScriptDirectory, branch: str) -> str:
    for base in script.get_bases():
        revision = script.get_revision(base)
        if revision is not None and branch in revision.branch_labels:
            return base
    raise StoreError(f"no first revision of branch {branch!r} in {SCRIPT_LOCATION}")


def _adopt(conn: sa.Connection, script: ScriptDirectory, branch: str) -> None:
    """Bring a pre-Alembic database to the branch's first revision, or refuse it with the differences."""
    base = script.get_revision(_base(script, branch))
    assert base is not None
    module = base.module
    module.adopt(conn)
    differences = schema_differences(conn, module.frozen_metadata())
    if differences:
        listed = "; ".join(differences[:10])
        raise StoreError(f"the {branch} tables were made before migrations but differ from revision "
                         f"{base.revision} ({len(differences)} differences: {listed}); nothing was changed")
    log.info("store_schema_adopted", branch=branch, revision=base.revision)


def schema_differences(conn: sa.Connection, expected: sa.MetaData, branch: str | None = None) -> list[str]:
    """What differs between the database and `expected` (only the branch's tables, if given), one line each.

    Alembic's own comparison (types included), less what `_difference` accepts; tables the
    database has and `expected` does not declare are other stores' and never differences.
    """
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                      "include_object": include_object_for(branch)})
    return [described for diff in compare_metadata(context, expected)
            if (described := _difference(diff, conn.dialect.name)) is not None]


def _difference(diff: Any, dialect: str) -> str | None:
    """One of Alembic's differences (what it would do to the database) on one line, or None to accept it.

    Accepted: on SQLite, a primary-key column the legacy DDL left nullable (`id TEXT PRIMARY KEY`
    admits NULL in SQLite, unlike `NOT NULL` in the revision): the stores never wrote a NULL id.
    """
    if isinstance(diff, list):  # a column's modifications come as a list of one tuple each
        parts = [part for part in (_difference(d, dialect) for d in diff) if part is not None]
        return "; ".join(parts) if parts else None
    op = diff[0]
    if op.startswith("modify_"):
        _, _, table, column, existing, old, new = diff
        if dialect == "sqlite" and op == "modify_nullable" and old is True and new is False:
            return None
        return f"{op} {table}.{column}: {old!r} -> {new!r}"
    if op in ("add_column", "remove_column"):
        return f"{op} {diff[2]}.{diff[3].name}"
    if op in ("add_table", "remove_table", "add_index", "remove_index"):
        return f"{op} {diff[1].name}"
    return " ".join(str(part) for part in diff)
