"""What the SQLite stores promise beyond the contract suites: threads, files, schema, URLs."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import pipeline.store
from config.tenants import TenantScope
from pipeline.errors import StoreError
from pipeline.records import Event
from pipeline.store.base import EventQuery
from pipeline.store.registry import BACKENDS, open_event_store, open_incident_store
from pipeline.store.sqlite_events import SqliteEventStore, fts_query
from pipeline.store.sqlite_incidents import SqliteIncidentStore

T0 = datetime(2025, 7, 1, 8, 0, tzinfo=UTC)
EVERYTHING = TenantScope.everything()


def make_event(n: int, *, tenant: str = "province-a", message: str = "user login ok") -> Event:
    doc: dict[str, Any] = {"@timestamp": T0 + timedelta(seconds=n), "organization": {"id": tenant},
                           "message": message}
    return Event.create(doc, id_parts=["sqlite-test", n])


def run_threads(*targets: Callable[[], None]) -> list[BaseException]:
    """Run each target in a thread; returns what they raised (a thread's exception is otherwise lost)."""
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def raw_rows(path: Path, sql: str) -> list[Any]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# --- threads --------------------------------------------------------------------------------

def test_reader_keeps_reading_while_a_writer_writes(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "govsoc.db")
    events = [make_event(n) for n in range(20_000)]
    writing_done = threading.Event()
    counts: list[int] = []

    def write() -> None:
        try:
            for start in range(0, len(events), 500):
                store.write(events[start:start + 500])
        finally:
            writing_done.set()

    def read() -> None:
        while not writing_done.is_set():
            counts.append(store.count(EVERYTHING, EventQuery()))
            store.search(EVERYTHING, EventQuery(limit=10))
        counts.append(store.count(EVERYTHING, EventQuery()))

    try:
        assert run_threads(write, read) == []
    finally:
        store.close()
    assert counts == sorted(counts)  # never decreases: each read sees a committed batch boundary
    assert all(count % 500 == 0 for count in counts)
    assert counts[-1] == 20_000
    assert any(0 < count < 20_000 for count in counts)  # the reader ran while the writer wrote


def test_both_stores_write_one_file_at_once(tmp_path: Path) -> None:
    events = SqliteEventStore(tmp_path / "govsoc.db")
    incidents = SqliteIncidentStore(tmp_path / "govsoc.db")

    def write_events() -> None:
        for start in range(0, 5000, 100):
            events.write([make_event(n) for n in range(start, start + 100)])

    def append_audit() -> None:
        for n in range(200):
            incidents.append_audit(actor="analyst", tenant="province-a", action="note",
                                   object_type="incident", object_id="inc-a", details={"n": n})

    try:
        assert run_threads(write_events, append_audit) == []
        assert events.count(EVERYTHING, EventQuery()) == 5000
        assert incidents.verify_audit().entries == 200
    finally:
        events.close()
        incidents.close()


def test_reads_from_many_short_lived_threads(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "govsoc.db")
    store.write([make_event(1)])
    seen: list[int] = []
    try:
        for _ in range(5):
            assert run_threads(*[lambda: seen.append(store.count(EVERYTHING, EventQuery()))] * 10) == []
    finally:
        store.close()
    assert seen == [1] * 50


# --- files and schema -------------------------------------------------------------------------

def test_reopen_keeps_data_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "govsoc.db"
    for _ in range(2):
        events, incidents = SqliteEventStore(path), SqliteIncidentStore(path)
        events.write([make_event(1)])
        incidents.append_audit(actor="a", tenant="province-a", action="open", object_type="store",
                               object_id="x", details={})
        events.close()
        incidents.close()
    events, incidents = SqliteEventStore(path), SqliteIncidentStore(path)
    try:
        assert events.count(EVERYTHING, EventQuery(text="login")) == 1
        assert incidents.verify_audit().entries == 2
    finally:
        events.close()
        incidents.close()
    assert sorted(raw_rows(path, "SELECT component, version FROM schema_version")) == [("events", 1),
                                                                                         ("incidents", 2)]
    assert raw_rows(path, "PRAGMA journal_mode") == [("wal",)]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "govsoc.db"
    SqliteEventStore(path).close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE schema_version SET version = 99 WHERE component = 'events'")
    conn.close()
    with pytest.raises(StoreError, match="version 99") as caught:
        SqliteEventStore(path)
    assert str(path) in str(caught.value)
    SqliteIncidentStore(path).close()  # the other component's tables are unaffected


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "govsoc.db"
    path.write_bytes(b"not a database " * 100)
    with pytest.raises(StoreError, match="not a database") as caught:
        SqliteEventStore(path)
    assert str(path) in str(caught.value)


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "govsoc.db")
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.count(EVERYTHING, EventQuery())
    with pytest.raises(StoreError, match="closed"):
        store.write([make_event(1)])


def test_unstorable_event_fails_the_batch_by_id(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "govsoc.db")
    bad = make_event(2, message="lone surrogate \ud800")
    try:
        with pytest.raises(StoreError, match=bad.id):
            store.write([make_event(1), bad])
        assert store.count(EVERYTHING, EventQuery()) == 0
    finally:
        store.close()


def test_time_without_zone_is_refused(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "govsoc.db")
    try:
        with pytest.raises(StoreError, match="start"):
            store.search(EVERYTHING, EventQuery(start=datetime(2025, 7, 1)))
    finally:
        store.close()


# --- full text ---------------------------------------------------------------------------------

def test_text_index_stays_in_sync_through_rewrites(tmp_path: Path) -> None:
    path = tmp_path / "govsoc.db"
    store = SqliteEventStore(path)
    try:
        store.write([make_event(n, message=f"first {n}") for n in range(50)])
        store.write([make_event(n, message=f"second {n}" if n % 2 else f"first {n}") for n in range(50)])
        assert store.count(EVERYTHING, EventQuery(text="first")) == 25
        assert store.count(EVERYTHING, EventQuery(text="second")) == 25
    finally:
        store.close()
    conn = sqlite3.connect(path)
    # Raises if the index and the events table disagree.
    conn.execute("INSERT INTO events_fts (events_fts, rank) VALUES ('integrity-check', 1)")
    conn.close()


def test_text_ignores_diacritics(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "govsoc.db")
    try:
        store.write([make_event(1, message="Đăng nhập thất bại"),
                     make_event(2, message="Đăng nhập thành công")])
        assert store.count(EVERYTHING, EventQuery(text="that bai")) == 1
        assert store.count(EVERYTHING, EventQuery(text="nhap")) == 2
    finally:
        store.close()


@pytest.mark.parametrize("text, expected", [
    ("failed password", '"failed" AND "password"'),
    ('say "hi"', '"say" AND """hi"""'),
    ("NEAR(a b) OR c*", '"NEAR(a" AND "b)" AND "OR" AND "c*"'),
    ("a\x00b", '"a" AND "b"'),
    ("* ( ) -", None),
    ("", None),
])
def test_fts_query_quotes_every_word(text: str, expected: str | None) -> None:
    assert fts_query(text) == expected


# --- URLs and the registry ----------------------------------------------------------------------

def test_relative_and_absolute_urls_create_parents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = open_event_store("sqlite:///data/relative/govsoc.db")
    relative.close()
    assert (tmp_path / "data" / "relative" / "govsoc.db").is_file()
    absolute = tmp_path / "elsewhere" / "deep" / "govsoc.db"
    store = open_incident_store(f"sqlite:///{absolute}")  # sqlite:////tmp/...
    store.close()
    assert absolute.is_file()


@pytest.mark.parametrize("url", ["cassandra://localhost:9042", "kafka://localhost:9092", "data/govsoc.db",
                                 ""])
def test_unknown_scheme_names_url_and_known_schemes(url: str) -> None:
    with pytest.raises(StoreError) as caught:
        open_event_store(url)
    assert repr(url) in str(caught.value)
    assert "sqlite://" in str(caught.value)


def test_unknown_scheme_hides_password() -> None:
    with pytest.raises(StoreError) as caught:
        open_incident_store("postgresql://govsoc:s3cret@db.example:5432/govsoc")
    assert "s3cret" not in str(caught.value)
    assert "postgresql://govsoc:***@db.example:5432/govsoc" in str(caught.value)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:///:memory:", "sqlite://host/x.db",
                                 "sqlite:///x.db?mode=ro"])
def test_bad_sqlite_url_is_refused(url: str) -> None:
    with pytest.raises(StoreError, match="sqlite:///relative/path.db"):
        open_event_store(url)


def test_every_store_class_is_registered() -> None:
    registered = {target for backend in BACKENDS.values()
                  for target in (backend.events, backend.incidents, backend.sensors) if target}
    found = set()
    for info in pkgutil.iter_modules(pipeline.store.__path__):
        module = importlib.import_module(f"pipeline.store.{info.name}")
        for name, obj in vars(module).items():
            is_store = inspect.isclass(obj) and name.endswith(("EventStore", "IncidentStore", "SensorStore"))
            if is_store and obj.__module__ == module.__name__ and not getattr(obj, "_is_protocol", False):
                found.add(f"{module.__name__}:{name}")
    assert found == registered
