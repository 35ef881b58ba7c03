"""IntelStore: indicators and their sightings in SQLite, read only within a `TenantScope`.

In: indicators from imports, the API and the demo (`publish`); sightings from intel alerts
(`record_sightings`). Out: pages of indicators and sighting summaries a scope may see, under the
rules of sharing.py, written here as SQL with bound parameters only (`scoped`-style JSON lists).

Contract:
- `publish` upserts by indicator id (deterministic, model.py): publishing the same bundle twice
  changes nothing; a newer copy replaces every column. The publisher, recipients and widened
  tenants must exist in the tree (`IntelError` names the indicator and the tenant otherwise).
- A sighting is one (indicator, event); recording the same event again changes nothing, so the
  summary (indicator, tenant, first seen, last seen, count of events) survives at-least-once
  delivery.
- Every read takes a scope; `matchable(scope)` is what a matcher for those tenants loads: what
  any of them may see, TLP:RED included for its named tenants (the matcher applies the rules per
  event again).
- `revision()` grows with every `publish`, so a long-running matcher (feed.py) knows when to reload.
- Reads are ordered: indicators by (publisher, type, value), sightings by last seen, newest first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import orjson

from config.tenants import TenantScope, TenantTree
from detections.intel.match import Match, indicator_id_of
from detections.intel.model import Indicator, IndicatorType, IntelError
from detections.intel.sharing import near_tenants
from pipeline.records import Alert
from pipeline.store.sqlite_db import Schema, SqliteStore, Where, from_us, json_list, page, sqlite_path, to_us

SCHEMA = Schema(
    component="intel",
    version=1,
    statements=(
        """CREATE TABLE IF NOT EXISTS intel_indicators (
            id TEXT PRIMARY KEY, type TEXT NOT NULL, value TEXT NOT NULL, publisher TEXT NOT NULL,
            source TEXT NOT NULL, tlp TEXT NOT NULL, confidence INTEGER NOT NULL,
            valid_from INTEGER, valid_until INTEGER, stix_id TEXT,
            recipients TEXT NOT NULL, shared_with TEXT NOT NULL, doc TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS intel_indicators_value ON intel_indicators (type, value)",
        "CREATE INDEX IF NOT EXISTS intel_indicators_order ON intel_indicators (publisher, type, value)",
        """CREATE TABLE IF NOT EXISTS intel_sighting_events (
            indicator_id TEXT NOT NULL, event_id TEXT NOT NULL, tenant TEXT NOT NULL, ts INTEGER NOT NULL,
            PRIMARY KEY (indicator_id, event_id))""",
        """CREATE TABLE IF NOT EXISTS intel_sightings (
            indicator_id TEXT NOT NULL, tenant TEXT NOT NULL, first_seen INTEGER NOT NULL,
            last_seen INTEGER NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (indicator_id, tenant))""",
        "CREATE INDEX IF NOT EXISTS intel_sightings_last ON intel_sightings (last_seen)",
        "CREATE TABLE IF NOT EXISTS intel_revision (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL)",
        "INSERT OR IGNORE INTO intel_revision (id, value) VALUES (1, 0)",
    ),
)

_COLUMNS = "i.doc"
_NEAR = "(SELECT value FROM json_each(?))"


@dataclass(frozen=True, slots=True)
class Sighting:
    """One event of `tenant` that carried the indicator."""

    indicator_id: str
    tenant: str
    event_id: str
    seen: datetime


@dataclass(frozen=True, slots=True)
class SightingSummary:
    indicator: Indicator
    tenant: str
    first_seen: datetime
    last_seen: datetime
    count: int


@dataclass(frozen=True, slots=True)
class IndicatorQuery:
    type: IndicatorType | None = None
    value: str | None = None
    publisher: str | None = None
    source: str | None = None
    active_at: datetime | None = None
    limit: int = 100
    offset: int = 0


def sightings_of(items: Sequence[Match] | Sequence[Alert]) -> list[Sighting]:
    """The sightings that matches, or intel alerts (other alerts are ignored), stand for."""
    out: list[Sighting] = []
    for item in items:
        if isinstance(item, Match):
            out.append(Sighting(item.indicator.id, item.event.tenant, item.event.id, item.event.timestamp))
        elif (indicator_id := indicator_id_of(item)) is not None:
            out.extend(Sighting(indicator_id, item.tenant, e, item.timestamp) for e in item.event_ids)
    return out


def visible(scope: TenantScope, tree: TenantTree, *, alias: str = "i") -> Where:
    """The SQL of `sharing.can_see` for the reader of `scope` (`alias` is a constant of this module)."""
    near = json_list(sorted(near_tenants(scope, tree)))
    where = Where()
    where.add(
        f"({alias}.tlp IN ('clear', 'green')"
        f" OR ({alias}.tlp = 'red' AND ({alias}.publisher = ?"
        f" OR EXISTS (SELECT 1 FROM json_each({alias}.recipients) WHERE value = ?)))"
        f" OR ({alias}.tlp IN ('amber', 'amber+strict') AND (? OR {alias}.publisher IN {_NEAR}"
        f" OR ({alias}.tlp = 'amber' AND EXISTS (SELECT 1 FROM json_each({alias}.shared_with)"
        f" WHERE value IN {_NEAR})))))",
        scope.root, scope.root, 1 if scope.is_all else 0, near, near,
    )
    return where


class IntelStore(SqliteStore):
    """The embedded intelligence store; `tree` resolves a scope's ancestors for the sharing rules."""

    schema = SCHEMA

    def __init__(self, path: Path, tree: TenantTree) -> None:
        super().__init__(path)
        self.tree = tree

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Refused: the sharing rules need the tenant tree; use `IntelStore.open(url, tree)`."""
        raise IntelError(f"{url}: an IntelStore needs the tenant tree: IntelStore.open(url, tree)")

    @classmethod
    def open(cls, url: str, tree: TenantTree) -> IntelStore:
        """The store of a `sqlite:///path` URL (the same file as the other stores is fine)."""
        return cls(sqlite_path(url), tree)

    def publish(self, indicators: Sequence[Indicator]) -> int:
        """Upsert `indicators` in one transaction; returns how many distinct indicators were written.

        The same value from one source twice (two STIX indicators naming one address) is one
        indicator: the last copy's context and STIX id win.
        """
        rows = [self._row(ind) for ind in indicators]
        with self._db.transaction("publish indicators") as conn:
            conn.executemany(
                "INSERT INTO intel_indicators (id, type, value, publisher, source, tlp, confidence, valid_from,"
                " valid_until, stix_id, recipients, shared_with, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET type = excluded.type, value = excluded.value,"
                " publisher = excluded.publisher, source = excluded.source, tlp = excluded.tlp,"
                " confidence = excluded.confidence, valid_from = excluded.valid_from,"
                " valid_until = excluded.valid_until, stix_id = excluded.stix_id, recipients = excluded.recipients,"
                " shared_with = excluded.shared_with, doc = excluded.doc", rows)
            conn.execute("UPDATE intel_revision SET value = value + 1 WHERE id = 1")
        return len({row[0] for row in rows})

    def revision(self) -> int:
        """A number that grows with every `publish` (from any process): a matcher reloads when it changes."""
        rows = self._db.query("read the intel revision", "SELECT value FROM intel_revision WHERE id = 1")
        return int(rows[0][0]) if rows else 0

    def _row(self, ind: Indicator) -> tuple[Any, ...]:
        for tenant in (ind.publisher, *ind.recipients, *ind.shared_with):
            if tenant not in self.tree:
                raise IntelError(f"indicator {ind.id} ({ind.type.value} {ind.value}): unknown tenant {tenant!r}")
        return (ind.id, ind.type.value, ind.value, ind.publisher, ind.source, ind.tlp.value, ind.confidence,
                to_us(ind.valid_from, "valid_from") if ind.valid_from else None,
                to_us(ind.valid_until, "valid_until") if ind.valid_until else None, ind.stix_id,
                json_list(ind.recipients), json_list(ind.shared_with), orjson.dumps(ind.to_dict()).decode())

    def _filtered(self, scope: TenantScope, query: IndicatorQuery) -> Where:
        where = visible(scope, self.tree)
        if query.type is not None:
            where.add("i.type = ?", query.type.value)
        if query.value is not None:
            where.add("i.value = ?", query.value)
        if query.publisher is not None:
            where.add("i.publisher = ?", query.publisher)
        if query.source is not None:
            where.add("i.source = ?", query.source)
        if query.active_at is not None:
            at = to_us(query.active_at, "active_at")
            where.add("(i.valid_from IS NULL OR i.valid_from <= ?) AND (i.valid_until IS NULL OR i.valid_until > ?)",
                      at, at)
        return where

    def indicators(self, scope: TenantScope, query: IndicatorQuery = IndicatorQuery()) -> list[Indicator]:
        limit, offset = page(query.limit, query.offset)
        where = self._filtered(scope, query)
        rows = self._db.query("read indicators", f"SELECT {_COLUMNS} FROM intel_indicators i WHERE {where.sql}"
                              " ORDER BY i.publisher, i.type, i.value, i.id LIMIT ? OFFSET ?",
                              [*where.params, limit, offset])
        return [Indicator.from_dict(orjson.loads(row[0])) for row in rows]

    def count_indicators(self, scope: TenantScope, query: IndicatorQuery = IndicatorQuery()) -> int:
        where = self._filtered(scope, query)
        rows = self._db.query("count indicators", f"SELECT count(*) FROM intel_indicators i WHERE {where.sql}",
                              where.params)
        return int(rows[0][0])

    def indicator(self, scope: TenantScope, indicator_id: str) -> Indicator | None:
        """The indicator if the scope may see it; None when it is absent or not shared with the scope."""
        where = visible(scope, self.tree)
        rows = self._db.query("read an indicator", f"SELECT {_COLUMNS} FROM intel_indicators i "
                              f"WHERE i.id = ? AND {where.sql}", [indicator_id, *where.params])
        return Indicator.from_dict(orjson.loads(rows[0][0])) if rows else None

    def matchable(self, scope: TenantScope) -> Iterator[Indicator]:
        """What a matcher for the tenants of `scope` loads: what any of them may see (streamed)."""
        if scope.is_all:
            where = Where()
        else:
            tenants = json_list(sorted(scope.tenant_ids))
            where = visible(scope, self.tree)
            where.clauses[0] = (f"({where.clauses[0]} OR (i.tlp = 'red' AND (i.publisher IN {_NEAR}"
                                f" OR EXISTS (SELECT 1 FROM json_each(i.recipients) WHERE value IN {_NEAR}))))")
            where.params.extend([tenants, tenants])
        for row in self._db.rows("load indicators", f"SELECT {_COLUMNS} FROM intel_indicators i WHERE {where.sql}",
                                 where.params):
            yield Indicator.from_dict(orjson.loads(row[0]))

    def record_sightings(self, sightings: Sequence[Sighting]) -> int:
        """Count each (indicator, event) once; returns how many were new."""
        new = 0
        with self._db.transaction("record sightings") as conn:
            for s in sightings:
                ts = to_us(s.seen, "seen")
                cursor = conn.execute("INSERT OR IGNORE INTO intel_sighting_events (indicator_id, event_id, tenant, ts)"
                                      " VALUES (?, ?, ?, ?)", (s.indicator_id, s.event_id, s.tenant, ts))
                if cursor.rowcount != 1:
                    continue
                new += 1
                conn.execute(
                    "INSERT INTO intel_sightings (indicator_id, tenant, first_seen, last_seen, count)"
                    " VALUES (?, ?, ?, ?, 1) ON CONFLICT (indicator_id, tenant) DO UPDATE SET"
                    " first_seen = min(first_seen, excluded.first_seen),"
                    " last_seen = max(last_seen, excluded.last_seen),"
                    " count = count + 1", (s.indicator_id, s.tenant, ts, ts))
        return new

    def sightings(self, scope: TenantScope, indicator_id: str | None = None,
                  limit: int = 100, offset: int = 0) -> list[SightingSummary]:
        """Sightings at the scope's tenants or of indicators they published, whose indicator the scope sees."""
        limit, offset = page(limit, offset)
        where = visible(scope, self.tree)
        if not scope.is_all:
            tenants = json_list(sorted(scope.tenant_ids))
            where.add(f"(s.tenant IN {_NEAR} OR i.publisher IN {_NEAR})", tenants, tenants)
        if indicator_id is not None:
            where.add("s.indicator_id = ?", indicator_id)
        rows = self._db.query(
            "read sightings", f"SELECT {_COLUMNS}, s.tenant, s.first_seen, s.last_seen, s.count FROM intel_sightings s"
            f" JOIN intel_indicators i ON i.id = s.indicator_id WHERE {where.sql}"
            " ORDER BY s.last_seen DESC, s.indicator_id, s.tenant LIMIT ? OFFSET ?", [*where.params, limit, offset])
        return [SightingSummary(Indicator.from_dict(orjson.loads(r[0])), r[1], from_us(r[2]), from_us(r[3]), r[4])
                for r in rows]
