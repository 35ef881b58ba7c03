"""SqliteEventStore: the embedded EventStore (`sqlite:///path`), events and dead letters in one file.

In: batches of validated `Event`s and `DeadLetter`s from the ingest step. Out: pages of them for
search, hunts and the console, always limited to the caller's `TenantScope`.

Contract (as `pipeline.store.base`, plus what is particular to SQLite):
- `write` upserts a batch in one transaction by `event.id` (a redelivery overwrites) and returns
  how many ids were new; `write_dead_letters` keeps the first letter of an id and returns how many
  were new.
- Events are ordered by (`@timestamp`, id), newest first unless `oldest_first`; ties break on
  the id, so paging with `offset` neither repeats nor skips.
- `fields` compare the JSON value at a dotted ECS name (nested objects, or a top-level key that
  itself contains the dots) for equality, typed: `22` does not equal `"22"`, `True` equals `1`.
  An array field matches when any element is equal. Names outside `[A-Za-z0-9_@.-]` raise
  `StoreError`. Field conditions are not indexed: they filter what scope and time select.
- `text` is split into words; each word is searched as a quoted FTS5 phrase, all AND-ed, so no
  user text is FTS5 syntax. A word with no letter or digit cannot match anything, so a text of only
  such words finds nothing; a blank text is no condition. Matching ignores case and diacritics
  ("that bai" finds "thất bại"): analysts type Vietnamese with and without them.
- A dead letter with no tenant is seen only by an all-tenant scope.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import orjson

from config.tenants import TenantScope
from pipeline import ecs
from pipeline.errors import RefusedEvents, StoreError
from pipeline.records import DeadLetter, Event
from pipeline.store.base import EventQuery
from pipeline.store.sqlite_db import (
    Schema,
    SqliteStore,
    Where,
    from_us,
    json_list,
    page,
    scoped,
    to_us,
)

SCHEMA = Schema(
    component="events",
    version=1,
    statements=(
        """CREATE TABLE IF NOT EXISTS events (
            id TEXT PRIMARY KEY, ts INTEGER NOT NULL, tenant TEXT NOT NULL, dataset TEXT,
            message TEXT NOT NULL, doc TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS events_tenant_ts ON events (tenant, ts)",
        # For all-tenant reads (the national centre), which would otherwise sort the whole table.
        "CREATE INDEX IF NOT EXISTS events_ts ON events (ts)",
        # External-content FTS over events.message, kept in sync by the triggers below.
        # remove_diacritics 2: "that bai" finds "thất bại" (see the module docstring).
        """CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5 (
            message, content='events', content_rowid='rowid',
            tokenize='unicode61 remove_diacritics 2')""",
        """CREATE TRIGGER IF NOT EXISTS events_fts_insert AFTER INSERT ON events BEGIN
            INSERT INTO events_fts (rowid, message) VALUES (new.rowid, new.message);
        END""",
        """CREATE TRIGGER IF NOT EXISTS events_fts_delete AFTER DELETE ON events BEGIN
            INSERT INTO events_fts (events_fts, rowid, message) VALUES ('delete', old.rowid, old.message);
        END""",
        # Only when the message changed: a redelivered event costs no FTS work.
        """CREATE TRIGGER IF NOT EXISTS events_fts_update AFTER UPDATE OF message ON events
            WHEN old.message IS NOT new.message BEGIN
            INSERT INTO events_fts (events_fts, rowid, message) VALUES ('delete', old.rowid, old.message);
            INSERT INTO events_fts (rowid, message) VALUES (new.rowid, new.message);
        END""",
        """CREATE TABLE IF NOT EXISTS dead_letters (
            id TEXT PRIMARY KEY, received INTEGER NOT NULL, tenant TEXT, source TEXT NOT NULL,
            reason TEXT NOT NULL, raw BLOB NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS dead_letters_received ON dead_letters (received)",
        "CREATE INDEX IF NOT EXISTS dead_letters_tenant_received ON dead_letters (tenant, received)",
    ),
)

_UPSERT_EVENT = """
    INSERT INTO events (id, ts, tenant, dataset, message, doc) VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET ts = excluded.ts, tenant = excluded.tenant,
        dataset = excluded.dataset, message = excluded.message, doc = excluded.doc"""

_INSERT_DEAD_LETTER = """
    INSERT INTO dead_letters (id, received, tenant, source, reason, raw) VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO NOTHING"""

# One field condition: any element of an array, never an object, else the scalar itself.
_FIELD_CONDITION = """CASE json_type(doc, ?)
    WHEN 'array' THEN EXISTS (SELECT 1 FROM json_each(doc, ?) AS element
                              WHERE element.type NOT IN ('array', 'object') AND element.value = ?)
    WHEN 'object' THEN 0
    ELSE json_extract(doc, ?) = ? END"""

_FIELD_NAME = re.compile(r"[A-Za-z0-9_@.-]+")

EventRow = tuple[str, int, str, str | None, str, str]


def fts_query(text: str) -> str | None:
    """An FTS5 query that ANDs the words of `text` as quoted phrases; None if no word can match.

    Inside a quoted phrase FTS5 reads no operators (`OR`, `NEAR(`, `*`, `^`, `:`); a quote is
    doubled. NUL ends an FTS5 string early, so it separates words like a space.
    """
    words = [word for word in text.replace("\x00", " ").split() if any(ch.isalnum() for ch in word)]
    if not words:
        return None
    return " AND ".join('"' + word.replace('"', '""') + '"' for word in words)


def json_paths(name: str) -> list[str]:
    """JSON paths for a dotted ECS name: the nested one, and the flat key for dotted names."""
    if not _FIELD_NAME.fullmatch(name):
        raise StoreError(f"field {name!r}: not an ECS field name (letters, digits, _ @ . - only)")
    nested = "$." + ".".join(f'"{part}"' for part in name.split("."))
    return [nested, f'$."{name}"'] if "." in name else [nested]


def _add_field(where: Where, name: str, value: object) -> None:
    if not isinstance(value, str | int | float):  # bool is an int
        raise StoreError(f"field {name!r}: compares with a string, number or boolean, "
                         f"got {type(value).__name__}")
    paths = json_paths(name)
    params = [param for path in paths for param in (path, path, value, path, value)]
    where.add("(" + " OR ".join([_FIELD_CONDITION] * len(paths)) + ")", *params)


def _event_where(scope: TenantScope, query: EventQuery) -> Where:
    where = scoped(scope)
    if query.start is not None:
        where.add("ts >= ?", to_us(query.start, "start"))
    if query.end is not None:
        where.add("ts < ?", to_us(query.end, "end"))
    if query.ids is not None:
        where.add("id IN (SELECT value FROM json_each(?))", json_list(query.ids))
    for name, value in query.fields.items():
        _add_field(where, name, value)
    if query.text is not None and query.text.strip():
        match = fts_query(query.text)
        if match is None:
            where.add("0")
        else:
            where.add("rowid IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)", match)
    return where


def _event_row(event: Event) -> EventRow:
    try:
        doc = event.to_json().decode()
    except (TypeError, UnicodeDecodeError) as e:  # orjson.JSONEncodeError is a TypeError
        raise RefusedEvents({event.id: f"the document is not storable as JSON: {e}"}) from e
    dataset = event.get(ecs.EVENT_DATASET)
    return (event.id, to_us(event.timestamp, f"event {event.id}"), event.tenant,
            dataset if isinstance(dataset, str) else None, event.message, doc)


def _dead_letter_row(letter: DeadLetter) -> tuple[str, int, str | None, str, str, bytes]:
    return (letter.id, to_us(letter.received, f"dead letter {letter.id}"), letter.tenant, letter.source,
            letter.reason, letter.raw)


class SqliteEventStore(SqliteStore):
    """Events and dead letters in a SQLite file (WAL, FTS5); safe to share between threads."""

    schema = SCHEMA

    def write(self, events: Sequence[Event]) -> int:
        """Upsert the batch in one transaction; returns how many ids were not stored before."""
        if not events:
            return 0
        rows = [_event_row(event) for event in events]
        ids = sorted({row[0] for row in rows})
        with self._db.transaction("write events") as conn:
            (existing,) = conn.execute(
                "SELECT count(*) FROM events WHERE id IN (SELECT value FROM json_each(?))", (json_list(ids),)
            ).fetchone()
            conn.executemany(_UPSERT_EVENT, rows)
        return len(ids) - int(existing)

    def search(self, scope: TenantScope, query: EventQuery) -> list[Event]:
        where = _event_where(scope, query)
        limit, offset = page(query.limit, query.offset)
        order = "ASC" if query.oldest_first else "DESC"
        rows = self._db.query(
            "search events",
            f"SELECT id, ts, tenant, doc FROM events WHERE {where.sql} "
            f"ORDER BY ts {order}, id {order} LIMIT ? OFFSET ?",
            [*where.params, limit, offset],
        )
        # Rows were validated as events when written; the columns are the record's own fields.
        return [Event(id=id_, timestamp=from_us(ts), tenant=tenant, doc=orjson.loads(doc))
                for id_, ts, tenant, doc in rows]

    def count(self, scope: TenantScope, query: EventQuery) -> int:
        where = _event_where(scope, query)
        rows = self._db.query("count events", f"SELECT count(*) FROM events WHERE {where.sql}", where.params)
        return int(rows[0][0])

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        """Store letters not stored before (by id); returns how many were new."""
        if not letters:
            return 0
        rows = [_dead_letter_row(letter) for letter in letters]
        with self._db.transaction("write dead letters") as conn:
            cursor = conn.executemany(_INSERT_DEAD_LETTER, rows)
        return cursor.rowcount

    def dead_letters(self, scope: TenantScope, limit: int = 100) -> list[DeadLetter]:
        """Newest received first. Letters with no tenant are seen only by an all-tenant scope."""
        where = scoped(scope)
        limit, _ = page(limit, 0)
        rows = self._db.query(
            "read dead letters",
            f"SELECT id, received, tenant, source, reason, raw FROM dead_letters WHERE {where.sql} "
            "ORDER BY received DESC, id DESC LIMIT ?",
            [*where.params, limit],
        )
        return [DeadLetter(id=id_, received=from_us(received), tenant=tenant, source=source, reason=reason,
                           raw=bytes(raw))
                for id_, received, tenant, source, reason, raw in rows]

    def count_dead_letters(self, scope: TenantScope) -> int:
        where = scoped(scope)
        rows = self._db.query("count dead letters", f"SELECT count(*) FROM dead_letters WHERE {where.sql}",
                              where.params)
        return int(rows[0][0])

