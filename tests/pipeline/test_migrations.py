"""Alembic migrations of the incident store and the run store, on SQLite and on a real PostgreSQL.

- No drift: after `migrate`, Alembic finds nothing to change between `pipeline.store.schema` and
  the database (its `command.check`, through the shipped env.py), on both back ends and branches.
- Databases the pre-Alembic stores made (their DDL is inline below, as those stores had it) are
  checked, stamped, and read back; a legacy database that differs is refused untouched.
- A database at head costs one version read; one at an unknown (newer) revision is refused.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from pipeline.errors import StoreError
from pipeline.records import IncidentState
from pipeline.store.migrations import (
    HEADS,
    Migration,
    alembic_config,
    engine_for,
    migrate,
    schema_differences,
    sqlite_engine,
)
from pipeline.store.registry import open_incident_store
from pipeline.store.schema import BRANCHES, INCIDENTS, RUNS, metadata
from pipeline.store.sqlite_incidents import SqliteIncidentStore
from playbooks.runs import RunState, SqliteRunStore
from playbooks.runs_postgres import PostgresRunStore
from tests.pipeline.contracts.test_incident_store import EVERYTHING, append, make_comment
from tests.servers import postgres

postgres_server = postgres.postgres_server
postgres_database = postgres.postgres_database

# --- the pre-Alembic DDL, as the stores had it -------------------------------------------------

SQLITE_INCIDENTS_V1 = (
    "CREATE TABLE schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS alerts (
        id TEXT PRIMARY KEY, tenant TEXT NOT NULL, ts INTEGER NOT NULL, rule_id TEXT NOT NULL,
        kind TEXT NOT NULL, severity INTEGER NOT NULL, doc TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS alerts_tenant_ts ON alerts (tenant, ts)",
    "CREATE INDEX IF NOT EXISTS alerts_ts ON alerts (ts)",
    """CREATE TABLE IF NOT EXISTS incidents (
        id TEXT PRIMARY KEY, tenant TEXT NOT NULL, title TEXT NOT NULL, severity INTEGER NOT NULL,
        state TEXT NOT NULL, rule_id TEXT NOT NULL, entity TEXT NOT NULL,
        first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, alert_count INTEGER NOT NULL,
        created INTEGER NOT NULL, updated INTEGER NOT NULL, tags TEXT NOT NULL,
        assignee TEXT, asset_id TEXT)""",
    "CREATE INDEX IF NOT EXISTS incidents_tenant_last_seen ON incidents (tenant, last_seen)",
    "CREATE INDEX IF NOT EXISTS incidents_last_seen ON incidents (last_seen)",
    "CREATE INDEX IF NOT EXISTS incidents_grouping ON incidents (rule_id, entity, last_seen)",
    """CREATE TABLE IF NOT EXISTS incident_alerts (
        incident_id TEXT NOT NULL, alert_id TEXT NOT NULL, PRIMARY KEY (incident_id, alert_id))""",
    "CREATE INDEX IF NOT EXISTS incident_alerts_alert ON incident_alerts (alert_id)",
    """CREATE TABLE IF NOT EXISTS audit (
        seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, actor TEXT NOT NULL, tenant TEXT NOT NULL,
        action TEXT NOT NULL, object_type TEXT NOT NULL, object_id TEXT NOT NULL,
        details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS audit_object ON audit (object_id, seq)",
    """CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit BEGIN
        SELECT RAISE(ABORT, 'the audit trail is append-only: entries cannot be updated');
    END""",
    """CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit BEGIN
        SELECT RAISE(ABORT, 'the audit trail is append-only: entries cannot be deleted');
    END""",
    "INSERT INTO schema_version VALUES ('incidents', 1)",
)
SQLITE_INCIDENTS_V2 = (
    "ALTER TABLE incidents ADD COLUMN responded INTEGER",
    "ALTER TABLE incidents ADD COLUMN resolved INTEGER",
    "ALTER TABLE incidents ADD COLUMN reported INTEGER",
    "ALTER TABLE incidents ADD COLUMN clocks_met TEXT NOT NULL DEFAULT '{}'",
    """CREATE TABLE IF NOT EXISTS incident_comments (
        id TEXT PRIMARY KEY, incident_id TEXT NOT NULL, tenant TEXT NOT NULL, author TEXT NOT NULL,
        text TEXT NOT NULL, created INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS incident_comments_incident ON incident_comments (incident_id, created)",
    """CREATE TABLE IF NOT EXISTS incident_states (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, incident_id TEXT NOT NULL, tenant TEXT NOT NULL,
        from_state TEXT NOT NULL, to_state TEXT NOT NULL, actor TEXT NOT NULL, reason TEXT NOT NULL,
        at INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS incident_states_incident ON incident_states (incident_id, seq)",
    """CREATE TABLE IF NOT EXISTS suppressions (
        id TEXT PRIMARY KEY, tenant TEXT NOT NULL, reason TEXT NOT NULL, created_by TEXT NOT NULL,
        created INTEGER NOT NULL, expires INTEGER, rule_id TEXT, entity TEXT NOT NULL)""",
    "UPDATE schema_version SET version = 2 WHERE component = 'incidents'",
)
POSTGRES_INCIDENTS_V1 = (
    "CREATE TABLE schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS alerts (
        id TEXT COLLATE "C" PRIMARY KEY, tenant TEXT NOT NULL, ts TIMESTAMPTZ NOT NULL,
        rule_id TEXT NOT NULL, kind TEXT NOT NULL, severity INTEGER NOT NULL, doc TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS alerts_tenant_ts ON alerts (tenant, ts)",
    "CREATE INDEX IF NOT EXISTS alerts_ts ON alerts (ts, id)",
    """CREATE TABLE IF NOT EXISTS incidents (
        id TEXT COLLATE "C" PRIMARY KEY, tenant TEXT NOT NULL, title TEXT NOT NULL,
        severity INTEGER NOT NULL, state TEXT NOT NULL, rule_id TEXT NOT NULL, entity TEXT NOT NULL,
        first_seen TIMESTAMPTZ NOT NULL, last_seen TIMESTAMPTZ NOT NULL, alert_count INTEGER NOT NULL,
        created TIMESTAMPTZ NOT NULL, updated TIMESTAMPTZ NOT NULL, tags TEXT NOT NULL,
        assignee TEXT, asset_id TEXT, responded TIMESTAMPTZ, resolved TIMESTAMPTZ, reported TIMESTAMPTZ,
        clocks_met TEXT NOT NULL DEFAULT '{}')""",
    "CREATE INDEX IF NOT EXISTS incidents_tenant_last_seen ON incidents (tenant, last_seen)",
    "CREATE INDEX IF NOT EXISTS incidents_last_seen ON incidents (last_seen, id)",
    "CREATE INDEX IF NOT EXISTS incidents_grouping ON incidents (rule_id, entity, last_seen)",
    """CREATE TABLE IF NOT EXISTS incident_alerts (
        incident_id TEXT NOT NULL, alert_id TEXT NOT NULL, PRIMARY KEY (incident_id, alert_id))""",
    "CREATE INDEX IF NOT EXISTS incident_alerts_alert ON incident_alerts (alert_id)",
    """CREATE TABLE IF NOT EXISTS incident_comments (
        id TEXT COLLATE "C" PRIMARY KEY, incident_id TEXT NOT NULL, tenant TEXT NOT NULL,
        author TEXT NOT NULL, text TEXT NOT NULL, created TIMESTAMPTZ NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS incident_comments_incident ON incident_comments (incident_id, created)",
    """CREATE TABLE IF NOT EXISTS incident_states (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, incident_id TEXT NOT NULL,
        tenant TEXT NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL, actor TEXT NOT NULL,
        reason TEXT NOT NULL, at TIMESTAMPTZ NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS incident_states_incident ON incident_states (incident_id, seq)",
    """CREATE TABLE IF NOT EXISTS suppressions (
        id TEXT COLLATE "C" PRIMARY KEY, tenant TEXT NOT NULL, reason TEXT NOT NULL,
        created_by TEXT NOT NULL, created TIMESTAMPTZ NOT NULL, expires TIMESTAMPTZ, rule_id TEXT,
        entity TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS audit (
        seq BIGINT PRIMARY KEY, ts TIMESTAMPTZ NOT NULL, actor TEXT NOT NULL, tenant TEXT NOT NULL,
        action TEXT NOT NULL, object_type TEXT NOT NULL, object_id TEXT NOT NULL,
        details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS audit_object ON audit (object_id, seq)",
    """CREATE OR REPLACE FUNCTION govsoc_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the audit trail is append-only: entries cannot be %', lower(TG_OP) || 'd';
    END $$""",
    "CREATE OR REPLACE TRIGGER audit_no_update BEFORE UPDATE ON audit "
    "FOR EACH ROW EXECUTE FUNCTION govsoc_audit_append_only()",
    "CREATE OR REPLACE TRIGGER audit_no_delete BEFORE DELETE ON audit "
    "FOR EACH ROW EXECUTE FUNCTION govsoc_audit_append_only()",
    "CREATE OR REPLACE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit "
    "FOR EACH STATEMENT EXECUTE FUNCTION govsoc_audit_append_only()",
    "INSERT INTO schema_version VALUES ('incidents', 1)",
)
SQLITE_RUNS = (
    """CREATE TABLE IF NOT EXISTS playbook_runs (
      id TEXT PRIMARY KEY, playbook_id TEXT NOT NULL, playbook TEXT NOT NULL, incident_id TEXT NOT NULL,
      tenant TEXT NOT NULL, mode TEXT NOT NULL, state TEXT NOT NULL, cursor TEXT,
      created TEXT NOT NULL, updated TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS playbook_steps (
      run_id TEXT NOT NULL REFERENCES playbook_runs(id), step_id TEXT NOT NULL, position INTEGER NOT NULL,
      state TEXT NOT NULL, output TEXT NOT NULL, error TEXT NOT NULL, started TEXT, updated TEXT NOT NULL,
      PRIMARY KEY (run_id, step_id))""",
    """CREATE TABLE IF NOT EXISTS playbook_approvals (
      run_id TEXT NOT NULL, step_id TEXT NOT NULL, user TEXT NOT NULL, role TEXT NOT NULL,
      decision TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (run_id, step_id, user))""",
    """CREATE TABLE IF NOT EXISTS playbook_side_effects (
      key TEXT PRIMARY KEY, run_id TEXT NOT NULL, step_id TEXT NOT NULL, state TEXT NOT NULL,
      request TEXT NOT NULL, result TEXT, started TEXT NOT NULL, finished TEXT)""",
)
POSTGRES_RUNS_V1 = (
    "CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS playbook_runs (
        id TEXT COLLATE "C" PRIMARY KEY, playbook_id TEXT NOT NULL, playbook TEXT NOT NULL,
        incident_id TEXT NOT NULL, tenant TEXT NOT NULL, mode TEXT NOT NULL, state TEXT NOT NULL,
        cursor TEXT, created TIMESTAMPTZ NOT NULL, updated TIMESTAMPTZ NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS playbook_runs_created ON playbook_runs (created)",
    """CREATE TABLE IF NOT EXISTS playbook_steps (
        run_id TEXT NOT NULL REFERENCES playbook_runs(id), step_id TEXT NOT NULL,
        position INTEGER NOT NULL, state TEXT NOT NULL, output TEXT NOT NULL, error TEXT NOT NULL,
        started TIMESTAMPTZ, updated TIMESTAMPTZ NOT NULL, PRIMARY KEY (run_id, step_id))""",
    """CREATE TABLE IF NOT EXISTS playbook_approvals (
        run_id TEXT NOT NULL, step_id TEXT NOT NULL, "user" TEXT COLLATE "C" NOT NULL, role TEXT NOT NULL,
        decision TEXT NOT NULL, at TIMESTAMPTZ NOT NULL, PRIMARY KEY (run_id, step_id, "user"))""",
    """CREATE TABLE IF NOT EXISTS playbook_side_effects (
        key TEXT PRIMARY KEY, run_id TEXT NOT NULL, step_id TEXT NOT NULL, state TEXT NOT NULL,
        request TEXT NOT NULL, result TEXT, started TIMESTAMPTZ NOT NULL, finished TIMESTAMPTZ)""",
    "INSERT INTO schema_version VALUES ('playbook_runs', 1)",
)

SQLITE_OLD_INCIDENT = ("INSERT INTO incidents VALUES ('inc-old', 'province-a', 't', 3, 'triage', 'r', "
                       "'{\"host.name\":\"pc-1\"}', 0, 60000000, 1, 0, 60000000, '[\"attack.t1110\"]', 'an', NULL")
POSTGRES_OLD_INCIDENT = ("INSERT INTO incidents VALUES ('inc-old', 'province-a', 't', 3, 'triage', 'r', "
                         "'{\"host.name\":\"pc-1\"}', '1970-01-01Z', '1970-01-01 00:01Z', 1, '1970-01-01Z', "
                         "'1970-01-01 00:01Z', '[\"attack.t1110\"]', 'an', NULL, NULL, NULL, NULL, '{}')")
OLD_RUN = ("INSERT INTO playbook_runs VALUES ('run-old', 'brute-force', '{}', 'inc-old', 'province-a', 'live', "
           "'done', NULL, '2025-07-01T08:00:00Z', '2025-07-01T08:01:00Z')")


def sqlite_file(path: Path, *statements: str) -> Path:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()
    return path


def sqlite_rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def postgres_execute(url: str, *statements: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows: list[tuple[object, ...]] = []
        for statement in statements:
            cursor = conn.execute(statement.encode())
            rows = cursor.fetchall() if cursor.description else []
        return rows


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh PostgreSQL database (started only when asked for)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'govsoc.db'}"
    else:
        yield request.getfixturevalue("postgres_database")


def check(url: str, branch: str) -> None:
    """Alembic's comparison of the branch's tables in `pipeline.store.schema` with the database: no differences.

    (SQLite's nullable legacy primary keys are accepted, as when a legacy file is adopted.)

    (`command.check` needs every branch's head in the database, so it runs where both live: PostgreSQL.)
    """
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            assert schema_differences(conn, metadata, branch) == []
    finally:
        engine.dispose()


# --- revisions and drift -----------------------------------------------------------------------

def test_heads_are_the_newest_revision_of_each_branch() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    heads = {branch: script.get_revision(f"{branch}@head") for branch in BRANCHES}
    assert {branch: revision.revision for branch, revision in heads.items() if revision} == HEADS
    assert all(revision is not None and revision.down_revision is None for revision in heads.values())  # 0001


@pytest.mark.parametrize("branch", BRANCHES)
def test_migrated_database_has_no_drift_from_the_metadata(database_url: str, branch: str) -> None:
    assert migrate(database_url, branch) is Migration.CREATED
    check(database_url, branch)
    assert migrate(database_url, branch) is Migration.CURRENT


def test_both_branches_share_one_postgres_database(postgres_database: str) -> None:
    for branch in BRANCHES:
        migrate(postgres_database, branch)
    assert sorted(postgres_execute(postgres_database, "SELECT version_num FROM alembic_version")) == [
        ("incidents_0001",), ("runs_0001",)]
    for branch in BRANCHES:
        check(postgres_database, branch)
    engine = engine_for(postgres_database)
    try:
        with engine.connect() as conn:
            command.check(alembic_config(conn))  # through the shipped env.py, both branches at once
    finally:
        engine.dispose()


def test_sqlite_drift_is_found(tmp_path: Path) -> None:
    """The check is not vacuous: a column the MetaData lacks is reported."""
    url = f"sqlite:///{tmp_path / 'govsoc.db'}"
    migrate(url, INCIDENTS)
    sqlite_file(tmp_path / "govsoc.db", "ALTER TABLE incidents ADD COLUMN stray TEXT")
    with pytest.raises(AssertionError, match="stray"):
        check(url, INCIDENTS)


def test_a_database_at_head_costs_one_version_read(tmp_path: Path) -> None:
    path = tmp_path / "govsoc.db"
    migrate(f"sqlite:///{path}", INCIDENTS)
    engine = sqlite_engine(path)
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda conn, cursor, sql, *rest: statements.append(sql))
    try:
        assert migrate(engine, INCIDENTS) is Migration.CURRENT
    finally:
        engine.dispose()
    assert statements == ["SELECT version_num FROM alembic_version"]


def test_opening_a_store_at_head_runs_no_migration_machinery(database_url: str) -> None:
    """The stores read the version on their own connection: at head, Alembic is never imported."""
    open_incident_store(database_url).close()
    script = ("import sys\n"
              "from pipeline.store.registry import open_incident_store\n"
              "open_incident_store(sys.argv[1]).close()\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n")
    done = subprocess.run([sys.executable, "-c", script, database_url], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_legacy_marker_keeps_a_pre_alembic_govsoc_from_remigrating(tmp_path: Path) -> None:
    """An older govsoc reads `schema_version`: at 2 it opens the file as it is instead of re-adding columns."""
    path = tmp_path / "govsoc.db"
    SqliteIncidentStore(path).close()
    assert sqlite_rows(path, "SELECT component, version FROM schema_version") == [("incidents", 2)]


def test_a_newer_revision_is_refused(database_url: str) -> None:
    migrate(database_url, INCIDENTS)
    update = "UPDATE alembic_version SET version_num = 'incidents_9999'"
    if database_url.startswith("sqlite"):
        sqlite_file(Path(database_url.removeprefix("sqlite:///")), update)
    else:
        postgres_execute(database_url, update)
    with pytest.raises(StoreError, match="revision incidents_9999, which this govsoc does not know"):
        open_incident_store(database_url)


def test_new_sqlite_file_opened_by_many_threads_at_once_is_created_once(tmp_path: Path) -> None:
    path, errors, outcomes = tmp_path / "govsoc.db", [], []

    def opener() -> None:
        try:
            outcomes.append(migrate(f"sqlite:///{path}", INCIDENTS))
        except BaseException as e:  # reported below: lost in a thread otherwise
            errors.append(e)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(outcomes) == sorted([Migration.CREATED] + [Migration.CURRENT] * 3)


# --- databases made before Alembic ---------------------------------------------------------------

@pytest.mark.parametrize("statements", [SQLITE_INCIDENTS_V1, SQLITE_INCIDENTS_V1 + SQLITE_INCIDENTS_V2],
                         ids=["version-1", "version-2"])
def test_pre_alembic_sqlite_file_is_stamped_and_reads_back(tmp_path: Path, statements: tuple[str, ...]) -> None:
    path = tmp_path / "govsoc.db"
    is_v1 = len(statements) == len(SQLITE_INCIDENTS_V1)
    old_row = SQLITE_OLD_INCIDENT + (")" if is_v1 else ", NULL, NULL, NULL, '{}')")
    sqlite_file(path, *statements, old_row)
    store = SqliteIncidentStore(path)
    try:
        old = store.incident(EVERYTHING, "inc-old")
        assert old is not None
        assert (old.state, dict(old.entity), old.tags, old.assignee) == (IncidentState.TRIAGE, {"host.name": "pc-1"},
                                                                         ("attack.t1110",), "an")
        assert (old.responded, dict(old.clocks_met), old.last_seen.minute) == (None, {}, 1)
        store.add_comment(make_comment(1, incident_id="inc-old"))
        assert len(store.comments(EVERYTHING, "inc-old")) == 1
        append(store, 1)
        assert store.verify_audit().ok
    finally:
        store.close()
    assert sqlite_rows(path, "SELECT version_num FROM alembic_version") == [("incidents_0001",)]
    assert sqlite_rows(path, "SELECT version FROM schema_version WHERE component = 'incidents'") == [(2,)]
    check(f"sqlite:///{path}", INCIDENTS)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        sqlite_file(path, "DELETE FROM audit")


def test_pre_alembic_postgres_database_is_stamped_and_reads_back(postgres_database: str) -> None:
    postgres_execute(postgres_database, *POSTGRES_INCIDENTS_V1, POSTGRES_OLD_INCIDENT, *POSTGRES_RUNS_V1,
                     OLD_RUN)
    store = open_incident_store(postgres_database)
    runs = PostgresRunStore(postgres_database)
    try:
        old = store.incident(EVERYTHING, "inc-old")
        assert old is not None and (old.state, dict(old.entity)) == (IncidentState.TRIAGE, {"host.name": "pc-1"})
        append(store, 1)
        assert store.verify_audit().ok
        assert [run.id for run in runs.runs(RunState.DONE)] == ["run-old"]
    finally:
        store.close()
        runs.close()
    assert sorted(postgres_execute(postgres_database, "SELECT version_num FROM alembic_version")) == [
        ("incidents_0001",), ("runs_0001",)]
    for branch in BRANCHES:
        check(postgres_database, branch)


def test_pre_alembic_sqlite_run_file_is_stamped_and_reads_back(tmp_path: Path) -> None:
    path = sqlite_file(tmp_path / "playbook_runs.db", *SQLITE_RUNS, OLD_RUN)
    store = SqliteRunStore(path)
    try:
        assert [run.id for run in store.runs(RunState.DONE)] == ["run-old"]
    finally:
        store.close()
    assert sqlite_rows(path, "SELECT version_num FROM alembic_version") == [("runs_0001",)]
    check(f"sqlite:///{path}", RUNS)


def test_a_legacy_file_that_differs_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "govsoc.db"
    sqlite_file(path, *SQLITE_INCIDENTS_V1, *SQLITE_INCIDENTS_V2, "ALTER TABLE alerts DROP COLUMN doc")
    with pytest.raises(StoreError, match="differ from revision incidents_0001") as caught:
        SqliteIncidentStore(path)
    assert str(path) in str(caught.value) and "doc" in str(caught.value)
    tables = {name for (name,) in sqlite_rows(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "alembic_version" not in tables
    assert sqlite_rows(path, "SELECT sql FROM sqlite_master WHERE name = 'alerts_ts'") == [
        ("CREATE INDEX alerts_ts ON alerts (ts)",)]  # the adoption's index change was rolled back too
