"""What is particular to PostgresIncidentStore: many writers at once, reopening, schema versions, URLs.

The IncidentStore contract itself runs in tests/pipeline/contracts/ against SQLite and PostgreSQL;
here two store instances stand for two processes (each has its own connection pool), and one
test appends from a real second process.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import psycopg
import pytest

from pipeline.errors import StoreError
from pipeline.store.base import IncidentConflict, IncidentQuery
from pipeline.store.postgres_db import POOL_MAX_SIZE, PostgresDatabase
from pipeline.store.postgres_incidents import PostgresIncidentStore
from pipeline.store.registry import open_event_store, open_incident_store
from pipeline.store.sqlite_db import Schema
from tests.pipeline.contracts.test_incident_store import EVERYTHING, T0, append, make_alert, make_incident
from tests.servers import postgres
from tests.servers.postgres import PostgresServer, free_port

postgres_server = postgres.postgres_server  # one server per session, shared with the contract suite
postgres_database = postgres.postgres_database


@pytest.fixture
def open_store(postgres_database: str) -> Iterator[Callable[[], PostgresIncidentStore]]:
    """Opens stores on the test's database (each its own pool, like another process); closes them all."""
    opened: list[PostgresIncidentStore] = []

    def opener() -> PostgresIncidentStore:
        opened.append(PostgresIncidentStore.from_url(postgres_database))
        return opened[-1]

    yield opener
    for store in opened:
        store.close()


def run_threads(target: Callable[[int], object], count: int) -> list[BaseException]:
    errors: list[BaseException] = []

    def guarded(k: int) -> None:
        try:
            target(k)
        except BaseException as e:  # reported by the caller: an exception in a thread would be lost
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


# --- many writers ---------------------------------------------------------------------------

def test_two_stores_appending_at_once_keep_one_chain(open_store: Callable[[], PostgresIncidentStore]) -> None:
    stores = [open_store(), open_store()]

    def worker(k: int) -> None:
        for n in range(30):
            append(stores[k % 2], k * 1000 + n)

    assert run_threads(worker, 6) == []
    check = stores[0].verify_audit()
    assert (check.ok, check.entries) == (True, 180)
    trail = stores[1].audit_trail(EVERYTHING, limit=1000)
    assert [r.seq for r in trail] == list(range(180, 0, -1))
    assert all(newer.prev_hash == older.hash for newer, older in zip(trail, trail[1:], strict=False))


def test_another_process_appends_to_the_same_chain(open_store: Callable[[], PostgresIncidentStore],
                                                   postgres_database: str) -> None:
    store = open_store()
    script = ("import sys\n"
              "from pipeline.store.postgres_incidents import PostgresIncidentStore\n"
              "store = PostgresIncidentStore.from_url(sys.argv[1])\n"
              "for n in range(40):\n"
              "    store.append_audit(actor='worker', tenant='province-a', action='x', object_type='incident',\n"
              "                       object_id='inc-p', details={'n': n})\n"
              "store.close()\n")
    child = subprocess.Popen([sys.executable, "-c", script, postgres_database])
    for n in range(40):
        append(store, n)
    assert child.wait(60) == 0
    check = store.verify_audit()
    assert (check.ok, check.entries) == (True, 80)


def test_compare_and_set_lets_one_of_two_writers_win(open_store: Callable[[], PostgresIncidentStore]) -> None:
    first, second = open_store(), open_store()
    incident = make_incident("a")
    first.save_incident(incident, [])
    outcomes: list[str] = []

    def worker(k: int) -> None:
        changed = dataclasses.replace(incident, assignee=f"analyst-{k}", updated=T0 + timedelta(minutes=k + 1))
        try:
            (first, second)[k].save_incident(changed, [], expected_updated=incident.updated)
            outcomes.append("saved")
        except IncidentConflict:
            outcomes.append("conflict")

    assert run_threads(worker, 2) == []
    assert sorted(outcomes) == ["conflict", "saved"]


def test_two_stores_opening_a_new_database_at_once(postgres_database: str) -> None:
    stores: list[PostgresIncidentStore] = []
    errors = run_threads(lambda k: stores.append(PostgresIncidentStore.from_url(postgres_database)), 4)
    for store in stores:
        store.close()
    assert errors == []


# --- reopening and schema versions ------------------------------------------------------------

def test_reopened_store_keeps_everything(open_store: Callable[[], PostgresIncidentStore]) -> None:
    store = open_store()
    alert = make_alert(1)
    store.write_alerts([alert])
    store.save_incident(make_incident("a"), [alert.id])
    records = [append(store, n) for n in range(3)]
    store.close()
    again = open_store()
    assert again.write_alerts([alert]) == []
    assert again.count_incidents(EVERYTHING, IncidentQuery()) == 1
    assert again.audit_trail(EVERYTHING) == records[::-1]
    assert append(again, 3).prev_hash == records[-1].hash
    assert again.verify_audit().ok


def version_of(url: str, component: str) -> int | None:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT version FROM schema_version WHERE component = %s", (component,)).fetchone()
    return None if row is None else int(row[0])


def test_revision_is_recorded_and_newer_is_refused(open_store: Callable[[], PostgresIncidentStore],
                                                   postgres_database: str) -> None:
    """Alembic's revision, beside the pre-Alembic marker (tests/pipeline/test_migrations.py has the rest)."""
    open_store().close()
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("incidents_0001",)]
        conn.execute("UPDATE alembic_version SET version_num = 'incidents_0007'")
    assert version_of(postgres_database, "incidents") == 1
    with pytest.raises(StoreError, match="revision incidents_0007, which this govsoc does not know") as caught:
        open_store()
    assert postgres_database in str(caught.value)  # no password here, so shown whole


def test_an_older_schema_is_migrated_in_one_transaction(postgres_database: str) -> None:
    v1 = Schema("probe", 1, ("CREATE TABLE IF NOT EXISTS probe (id TEXT PRIMARY KEY)",))
    PostgresDatabase(postgres_database, v1).close()
    broken = dataclasses.replace(v1, version=2, migrations={2: ("ALTER TABLE probe ADD COLUMN note TEXT",
                                                                 "SELECT no_such_function()")})
    with pytest.raises(StoreError, match="no_such_function"):
        PostgresDatabase(postgres_database, broken)
    assert version_of(postgres_database, "probe") == 1  # nothing of the failed migration stayed
    v2 = dataclasses.replace(v1, version=2, migrations={2: ("ALTER TABLE probe ADD COLUMN note TEXT",)})
    PostgresDatabase(postgres_database, v2).close()
    assert version_of(postgres_database, "probe") == 2
    with psycopg.connect(postgres_database) as conn:
        conn.execute("INSERT INTO probe (id, note) VALUES ('a', 'b')")


# --- refusals and errors ----------------------------------------------------------------------

def test_truncating_the_audit_is_refused(open_store: Callable[[], PostgresIncidentStore],
                                         postgres_database: str) -> None:
    store = open_store()
    append(store, 1)
    with psycopg.connect(postgres_database, autocommit=True) as conn, \
            pytest.raises(psycopg.errors.RaiseException, match="append-only: entries cannot be truncated"):
        conn.execute("TRUNCATE audit")
    assert store.verify_audit().entries == 1


def test_values_postgres_cannot_hold_raise_store_error(open_store: Callable[[], PostgresIncidentStore]) -> None:
    store = open_store()
    with pytest.raises(StoreError, match="save incident inc-a"):
        store.save_incident(dataclasses.replace(make_incident("a"), title="nul \x00 here"), [])
    with pytest.raises(StoreError, match="without a zone"):
        store.save_incident(dataclasses.replace(make_incident("b"), updated=datetime(2025, 7, 1)), [])
    assert store.count_incidents(EVERYTHING, IncidentQuery()) == 0


def test_closed_store_refuses_work(open_store: Callable[[], PostgresIncidentStore]) -> None:
    store = open_store()
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.count_incidents(EVERYTHING, IncidentQuery())


def test_both_schemes_open_the_store_and_events_are_refused(postgres_database: str) -> None:
    store = open_incident_store(postgres_database.replace("postgresql://", "postgres://", 1))
    store.close()
    with pytest.raises(StoreError, match="holds no events: events need one of .*sqlite://"):
        open_event_store(postgres_database)


@pytest.mark.parametrize("make_url, reason", [
    (lambda server: f"postgresql://govsoc:s3cret@127.0.0.1:{free_port()}/govsoc", "Connection refused"),
    (lambda server: f"postgresql://postgres:s3cret@127.0.0.1:{server.port}/missing", 'database "missing"'),
    (lambda server: "postgresql://govsoc:s3cret@127.0.0.1:notaport/govsoc", "not a PostgreSQL URL"),
    (lambda server: "postgresql://govsoc:s3cret@127.0.0.1/govsoc?bogus=1", "bogus"),
    (lambda server: "postgresql://govsoc:s3cret@127.0.0.1:5432", "postgresql://user"),
])
def test_bad_urls_name_the_url_and_reason_but_never_the_password(
        postgres_server: PostgresServer, make_url: Callable[[PostgresServer], str], reason: str) -> None:
    url = make_url(postgres_server)
    with pytest.raises(StoreError) as caught:
        open_incident_store(url)
    message = str(caught.value)
    assert "s3cret" not in message and reason in message, message
    assert "postgresql://govsoc:***@" in message or "postgresql://postgres:***@" in message, message


def test_connections_the_server_dropped_fail_once_then_are_replaced(
        open_store: Callable[[], PostgresIncidentStore], postgres_database: str) -> None:
    store = open_store()
    run_threads(lambda k: append(store, k), 4)  # several pooled connections in use, then idle
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    failures = 0
    for _ in range(20):
        try:
            store.count_incidents(EVERYTHING, IncidentQuery())
            break
        except StoreError as e:
            assert "count incidents" in str(e)
            failures += 1
    else:
        pytest.fail("the store never recovered from dropped connections")
    assert failures <= POOL_MAX_SIZE, failures  # each broken connection fails one call at most
    assert append(store, 5).seq == 5 and store.verify_audit().ok
