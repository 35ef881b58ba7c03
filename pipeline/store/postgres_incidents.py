"""PostgresIncidentStore: the scale-out IncidentStore (`postgresql://`): alerts, incidents, audit trail.

In and out as `SqliteIncidentStore` (pipeline/store/sqlite_incidents.py), whose behaviour this one
keeps exactly (the contract suite in tests/pipeline/contracts/ runs both). For many processes on
many machines: every method is safe to call from any thread of any process at once.

Contract (as `pipeline.store.base`, plus what is particular to PostgreSQL):
- `write_alerts` keeps the first alert of an id and returns the alerts that were new, in input
  order, each id once (`INSERT ... ON CONFLICT DO NOTHING RETURNING`, one transaction).
- `save_incident` upserts the incident and links the alert ids in one transaction; with
  `expected_updated` it locks the stored row (`SELECT ... FOR UPDATE`) and compares `updated`, so
  a concurrent writer waits and cannot slip in between the check and the write.
- Times are `timestamptz` (microseconds, as Python's); a time without a zone is refused. JSON
  values (entity, tags, details) are kept as canonical JSON text, not jsonb: the audit hash is
  over exactly the stored text, and entities compare as text, key order already normalised.
- Ids sort with `COLLATE "C"` (byte order), so ties break as in SQLite whatever the database's
  locale. PostgreSQL refuses the NUL character in text: such a value raises `StoreError`.
- Reads are newest first: alerts by (time, id), incidents by (last_seen, id), audit by seq.
- The audit trail is append-only in the database itself: triggers abort any UPDATE, DELETE or
  TRUNCATE. The chain (seq from 1, no gaps; `hash = sha256(prev_hash + canonical JSON ...)`) is
  the one `sqlite_incidents` documents, computed by the same `audit_hash`. Appends are
  serialised by `LOCK TABLE audit IN EXCLUSIVE MODE` inside the appending transaction: the lock
  conflicts with itself, so a second appender (any thread, process or machine) waits until the
  first commits and then reads the new head; reads are not blocked. `seq` is also the primary
  key, so even a writer that skipped the lock could not fork the chain, only fail.
- Schema version 1 is the shape SQLite reaches at its version 2 (lifecycle times, comments,
  state history, suppressions); later versions migrate through `SCHEMA.migrations`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from config.tenants import TenantScope
from pipeline.errors import StoreError
from pipeline.records import (
    Alert,
    AuditRecord,
    DetectionKind,
    Incident,
    IncidentComment,
    IncidentState,
    Severity,
    StateChange,
    Suppression,
    parse_iso,
    to_iso,
    utc_now,
)
from pipeline.store.base import AlertQuery, AuditCheck, IncidentConflict, IncidentQuery, IncidentSort
from pipeline.store.postgres_db import PostgresStore, Where, aware, optional_aware, scoped
from pipeline.store.sqlite_db import Schema, page
from pipeline.store.sqlite_incidents import GENESIS_HASH, audit_hash, canonical_json

_APPEND_ONLY = """CREATE OR REPLACE FUNCTION govsoc_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: entries cannot be %', lower(TG_OP) || 'd';
END $$"""

SCHEMA = Schema(
    component="incidents",
    version=1,
    statements=(
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
        _APPEND_ONLY,
        "CREATE OR REPLACE TRIGGER audit_no_update BEFORE UPDATE ON audit "
        "FOR EACH ROW EXECUTE FUNCTION govsoc_audit_append_only()",
        "CREATE OR REPLACE TRIGGER audit_no_delete BEFORE DELETE ON audit "
        "FOR EACH ROW EXECUTE FUNCTION govsoc_audit_append_only()",
        "CREATE OR REPLACE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit "
        "FOR EACH STATEMENT EXECUTE FUNCTION govsoc_audit_append_only()",
    ),
)

_ALERT_COLUMNS = "id, tenant, ts, rule_id, kind, severity, doc"
_INCIDENT_COLUMNS = ("id", "tenant", "title", "severity", "state", "rule_id", "entity", "first_seen",
                     "last_seen", "alert_count", "created", "updated", "tags", "assignee", "asset_id",
                     "responded", "resolved", "reported", "clocks_met")
_AUDIT_COLUMNS = "seq, ts, actor, tenant, action, object_type, object_id, details, prev_hash, hash"
_COMMENT_COLUMNS = "id, incident_id, tenant, author, text, created"
_STATE_COLUMNS = "incident_id, tenant, from_state, to_state, actor, reason, at"
_SUPPRESSION_COLUMNS = "id, tenant, reason, created_by, created, expires, rule_id, entity"

_INCIDENT_SELECT = f"SELECT {', '.join(_INCIDENT_COLUMNS)} FROM incidents"
_UPSERT_INCIDENT = (
    f"INSERT INTO incidents ({', '.join(_INCIDENT_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(_INCIDENT_COLUMNS))}) "
    "ON CONFLICT (id) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in _INCIDENT_COLUMNS[1:])
)
_OPEN_STATES = [state.value for state in IncidentState if state.is_open]


def _placeholders(columns: str) -> str:
    return ", ".join(["%s"] * len(columns.split(", ")))


# --- rows <-> records -----------------------------------------------------------------------

def _alert_row(alert: Alert) -> tuple[Any, ...]:
    doc = {"rule_title": alert.rule_title, "event_ids": list(alert.event_ids), "entity": dict(alert.entity),
           "tags": list(alert.tags), "description": alert.description}
    return (alert.id, alert.tenant, aware(alert.timestamp, f"alert {alert.id}"), alert.rule_id,
            alert.kind.value, int(alert.severity), orjson.dumps(doc).decode())


def _alert(row: tuple[Any, ...]) -> Alert:
    id_, tenant, ts, rule_id, kind, severity, doc_text = row
    doc = orjson.loads(doc_text)
    return Alert(id=id_, tenant=tenant, timestamp=ts, kind=DetectionKind(kind), rule_id=rule_id,
                 rule_title=doc["rule_title"], severity=Severity(severity), event_ids=tuple(doc["event_ids"]),
                 entity=doc["entity"], tags=tuple(doc["tags"]), description=doc["description"])


def _incident_row(incident: Incident) -> tuple[Any, ...]:
    what = f"incident {incident.id}"
    clocks = {k: to_iso(aware(v, what)) for k, v in incident.clocks_met.items()}
    return (incident.id, incident.tenant, incident.title, int(incident.severity), incident.state.value,
            incident.rule_id, canonical_json(dict(incident.entity)), aware(incident.first_seen, what),
            aware(incident.last_seen, what), incident.alert_count, aware(incident.created, what),
            aware(incident.updated, what), canonical_json(list(incident.tags)), incident.assignee,
            incident.asset_id, optional_aware(incident.responded, what), optional_aware(incident.resolved, what),
            optional_aware(incident.reported, what), canonical_json(clocks))


def _incident(row: tuple[Any, ...]) -> Incident:
    (id_, tenant, title, severity, state, rule_id, entity, first_seen, last_seen, alert_count, created,
     updated, tags, assignee, asset_id, responded, resolved, reported, clocks_met) = row
    return Incident(id=id_, tenant=tenant, title=title, severity=Severity(severity),
                    state=IncidentState(state), rule_id=rule_id, entity=json.loads(entity),
                    first_seen=first_seen, last_seen=last_seen, alert_count=alert_count, created=created,
                    updated=updated, tags=tuple(json.loads(tags)), assignee=assignee, asset_id=asset_id,
                    responded=responded, resolved=resolved, reported=reported,
                    clocks_met={k: parse_iso(v) for k, v in json.loads(clocks_met).items()})


def _comment(row: tuple[Any, ...]) -> IncidentComment:
    id_, incident_id, tenant, author, text, created = row
    return IncidentComment(id=id_, incident_id=incident_id, tenant=tenant, author=author, text=text,
                           created=created)


def _state_change(row: tuple[Any, ...]) -> StateChange:
    incident_id, tenant, from_state, to_state, actor, reason, at = row
    return StateChange(incident_id=incident_id, tenant=tenant, from_state=IncidentState(from_state),
                       to_state=IncidentState(to_state), actor=actor, reason=reason, at=at)


def _suppression_row(s: Suppression) -> tuple[Any, ...]:
    what = f"suppression {s.id}"
    return (s.id, s.tenant, s.reason, s.created_by, aware(s.created, what), optional_aware(s.expires, what),
            s.rule_id, canonical_json(dict(s.entity)))


def _suppression(row: tuple[Any, ...]) -> Suppression:
    id_, tenant, reason, created_by, created, expires, rule_id, entity = row
    return Suppression(id=id_, tenant=tenant, reason=reason, created_by=created_by, created=created,
                       expires=expires, rule_id=rule_id, entity=json.loads(entity))


def _audit_record(row: tuple[Any, ...]) -> AuditRecord:
    seq, ts, actor, tenant, action, object_type, object_id, details, prev_hash, hash_ = row
    return AuditRecord(seq=seq, timestamp=ts, actor=actor, tenant=tenant, action=action,
                       object_type=object_type, object_id=object_id, details=json.loads(details),
                       prev_hash=prev_hash, hash=hash_)


def _chain_problem(row: tuple[Any, ...], expected_seq: int, expected_prev: str) -> str | None:
    """Why the stored entry `row` does not continue the chain, or None if it does."""
    try:
        record = _audit_record(row)
    except (TypeError, ValueError, OverflowError) as e:
        return f"the entry does not decode: {e}"
    if record.seq != expected_seq:
        return f"expected seq {expected_seq}, found {record.seq}: entries are missing or reordered"
    if record.prev_hash != expected_prev:
        return "prev_hash is not the hash of the entry before it"
    if record.hash != audit_hash(record):
        return "hash does not match the entry's contents"
    return None


def _alert_where(scope: TenantScope, query: AlertQuery) -> Where:
    where = scoped(scope)
    if query.start is not None:
        where.add("ts >= %s", aware(query.start, "start"))
    if query.end is not None:
        where.add("ts < %s", aware(query.end, "end"))
    if query.rule_id is not None:
        where.add("rule_id = %s", query.rule_id)
    if query.incident_id is not None:
        where.add("id IN (SELECT alert_id FROM incident_alerts WHERE incident_id = %s)", query.incident_id)
    return where


def _incident_where(scope: TenantScope, query: IncidentQuery) -> Where:
    where = scoped(scope)
    if query.states is not None:
        where.add("state = ANY(%s::text[])", [IncidentState(state).value for state in query.states])
    if query.min_severity is not None:
        where.add("severity >= %s", int(query.min_severity))
    if query.rule_id is not None:
        where.add("rule_id = %s", query.rule_id)
    if query.assignee is not None:
        where.add("coalesce(assignee, '') = %s", query.assignee)
    if query.within is not None and not query.within.is_all:
        where.add("tenant = ANY(%s::text[])", sorted(query.within.tenant_ids))
    if query.since is not None:
        where.add("last_seen >= %s", aware(query.since, "since"))
    if query.until is not None:
        where.add("last_seen < %s", aware(query.until, "until"))
    return where


_INCIDENT_ORDER = {  # constants only: the sort is an enum, never text from the caller
    IncidentSort.LAST_SEEN: "last_seen DESC, id DESC",
    IncidentSort.SEVERITY: "severity DESC, last_seen DESC, id DESC",
    IncidentSort.CREATED: "created DESC, id DESC",
    IncidentSort.OLDEST: "created ASC, id ASC",
}


class PostgresIncidentStore(PostgresStore):
    """Alerts, incidents and the audit chain in a PostgreSQL database; safe across threads and processes."""

    schema = SCHEMA

    def write_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Store alerts whose id is new; returns exactly those, in input order."""
        rows = [_alert_row(alert) for alert in alerts]
        if not rows:
            return []
        inserted: set[str] = set()
        with self._db.transaction("write alerts") as conn, conn.cursor() as cursor:
            cursor.executemany(f"INSERT INTO alerts ({_ALERT_COLUMNS}) VALUES ({_placeholders(_ALERT_COLUMNS)}) "
                               "ON CONFLICT (id) DO NOTHING RETURNING id", rows, returning=True)
            while True:  # one result per row, empty when the id was already stored
                inserted.update(row[0] for row in cursor.fetchall())
                if not cursor.nextset():
                    break
        new: list[Alert] = []
        for alert in alerts:  # a repeated id within the batch was inserted once, by its first copy
            if alert.id in inserted:
                inserted.discard(alert.id)
                new.append(alert)
        return new

    def alerts(self, scope: TenantScope, query: AlertQuery) -> list[Alert]:
        where = _alert_where(scope, query)
        limit, offset = page(query.limit, query.offset)
        rows = self._db.query("read alerts", f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE {where.sql} "
                              "ORDER BY ts DESC, id DESC LIMIT %s OFFSET %s", [*where.params, limit, offset])
        return [_alert(row) for row in rows]

    def count_alerts(self, scope: TenantScope, query: AlertQuery) -> int:
        where = _alert_where(scope, query)
        rows = self._db.query("count alerts", f"SELECT count(*) FROM alerts WHERE {where.sql}", where.params)
        return int(rows[0][0])

    def find_open_incident(self, scope: TenantScope, rule_id: str, entity: Mapping[str, str],
                           since: datetime) -> Incident | None:
        """The open incident of this rule and entity last seen at or after `since`; the newest if several."""
        where = scoped(scope)
        where.add("rule_id = %s", rule_id)
        where.add("entity = %s", canonical_json(dict(entity)))
        where.add("state = ANY(%s::text[])", _OPEN_STATES)
        where.add("last_seen >= %s", aware(since, "since"))
        rows = self._db.query("find an open incident", f"{_INCIDENT_SELECT} WHERE {where.sql} "
                              "ORDER BY last_seen DESC, id DESC LIMIT 1", where.params)
        return _incident(rows[0]) if rows else None

    def save_incident(self, incident: Incident, alert_ids: Sequence[str], *,
                      expected_updated: datetime | None = None) -> None:
        """Upsert the incident and link `alert_ids` to it (links are kept, never removed).

        `expected_updated` is checked on the row locked `FOR UPDATE`: a concurrent save of the
        same incident waits for this transaction and then sees its `updated`.
        """
        row = _incident_row(incident)
        expected = None if expected_updated is None else aware(expected_updated, "expected_updated")
        with self._db.transaction(f"save incident {incident.id}") as conn:
            if expected is not None:
                stored = conn.execute("SELECT updated FROM incidents WHERE id = %s FOR UPDATE",
                                      (incident.id,)).fetchone()
                if stored is None or stored[0] != expected:
                    raise IncidentConflict(f"incident {incident.id} changed since it was read")
            conn.execute(_UPSERT_INCIDENT, row)
            if alert_ids:
                with conn.cursor() as cursor:
                    cursor.executemany("INSERT INTO incident_alerts (incident_id, alert_id) VALUES (%s, %s) "
                                       "ON CONFLICT DO NOTHING", [(incident.id, alert_id) for alert_id in alert_ids])

    def incident(self, scope: TenantScope, incident_id: str) -> Incident | None:
        where = scoped(scope)
        where.add("id = %s", incident_id)
        rows = self._db.query("read an incident", f"{_INCIDENT_SELECT} WHERE {where.sql}", where.params)
        return _incident(rows[0]) if rows else None

    def incidents(self, scope: TenantScope, query: IncidentQuery) -> list[Incident]:
        where = _incident_where(scope, query)
        limit, offset = page(query.limit, query.offset)
        rows = self._db.query("read incidents", f"{_INCIDENT_SELECT} WHERE {where.sql} "
                              f"ORDER BY {_INCIDENT_ORDER[query.sort]} LIMIT %s OFFSET %s",
                              [*where.params, limit, offset])
        return [_incident(row) for row in rows]

    def count_incidents(self, scope: TenantScope, query: IncidentQuery) -> int:
        where = _incident_where(scope, query)
        rows = self._db.query("count incidents", f"SELECT count(*) FROM incidents WHERE {where.sql}",
                              where.params)
        return int(rows[0][0])

    def add_comment(self, comment: IncidentComment) -> None:
        """Store a comment; a comment id already stored keeps its first text."""
        row = (comment.id, comment.incident_id, comment.tenant, comment.author, comment.text,
               aware(comment.created, f"comment {comment.id}"))
        with self._db.transaction(f"comment on incident {comment.incident_id}") as conn:
            conn.execute(f"INSERT INTO incident_comments ({_COMMENT_COLUMNS}) "
                         f"VALUES ({_placeholders(_COMMENT_COLUMNS)}) ON CONFLICT (id) DO NOTHING", row)

    def comments(self, scope: TenantScope, incident_id: str, limit: int = 100) -> list[IncidentComment]:
        """Newest first."""
        where = scoped(scope)
        where.add("incident_id = %s", incident_id)
        limit, _ = page(limit, 0)
        rows = self._db.query("read comments", f"SELECT {_COMMENT_COLUMNS} FROM incident_comments "
                              f"WHERE {where.sql} ORDER BY created DESC, id DESC LIMIT %s", [*where.params, limit])
        return [_comment(row) for row in rows]

    def record_state_change(self, change: StateChange) -> None:
        """Append one step to the incident's state history (kept in the order recorded)."""
        row = (change.incident_id, change.tenant, change.from_state.value, change.to_state.value, change.actor,
               change.reason, aware(change.at, f"state change of {change.incident_id}"))
        with self._db.transaction(f"record a state change of {change.incident_id}") as conn:
            conn.execute(f"INSERT INTO incident_states ({_STATE_COLUMNS}) VALUES ({_placeholders(_STATE_COLUMNS)})",
                         row)

    def state_history(self, scope: TenantScope, incident_id: str, limit: int = 100) -> list[StateChange]:
        """Newest first."""
        where = scoped(scope)
        where.add("incident_id = %s", incident_id)
        limit, _ = page(limit, 0)
        rows = self._db.query("read state history", f"SELECT {_STATE_COLUMNS} FROM incident_states "
                              f"WHERE {where.sql} ORDER BY seq DESC LIMIT %s", [*where.params, limit])
        return [_state_change(row) for row in rows]

    def save_suppression(self, suppression: Suppression) -> None:
        """Upsert by id (changing the expiry of an exception is saving it again)."""
        columns = _SUPPRESSION_COLUMNS.split(", ")
        update = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
        with self._db.transaction(f"save suppression {suppression.id}") as conn:
            conn.execute(f"INSERT INTO suppressions ({_SUPPRESSION_COLUMNS}) "
                         f"VALUES ({_placeholders(_SUPPRESSION_COLUMNS)}) ON CONFLICT (id) DO UPDATE SET {update}",
                         _suppression_row(suppression))

    def suppressions(self, scope: TenantScope, active_at: datetime | None = None,
                     limit: int = 1000) -> list[Suppression]:
        """Newest first; only those not expired at `active_at` when it is given."""
        where = scoped(scope)
        if active_at is not None:
            where.add("(expires IS NULL OR expires > %s)", aware(active_at, "active_at"))
        limit, _ = page(limit, 0)
        rows = self._db.query("read suppressions", f"SELECT {_SUPPRESSION_COLUMNS} FROM suppressions "
                              f"WHERE {where.sql} ORDER BY created DESC, id DESC LIMIT %s", [*where.params, limit])
        return [_suppression(row) for row in rows]

    def append_audit(self, *, actor: str, tenant: str, action: str, object_type: str, object_id: str,
                     details: Mapping[str, Any]) -> AuditRecord:
        """Append one entry; the head is read and extended under the table's EXCLUSIVE lock."""
        try:  # stored and hashed as what JSON gives back, so verify_audit sees exactly this
            details = json.loads(canonical_json(dict(details)))
        except (TypeError, ValueError) as e:
            raise StoreError(f"audit details of {object_type} {object_id}: not JSON: {e}") from e
        with self._db.transaction("append to the audit trail") as conn:
            conn.execute("LOCK TABLE audit IN EXCLUSIVE MODE")
            last = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev_hash = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS_HASH)
            record = AuditRecord(seq=seq, timestamp=utc_now(), actor=actor, tenant=tenant, action=action,
                                 object_type=object_type, object_id=object_id, details=details,
                                 prev_hash=prev_hash, hash="")
            record = dataclasses.replace(record, hash=audit_hash(record))
            conn.execute(f"INSERT INTO audit ({_AUDIT_COLUMNS}) VALUES ({_placeholders(_AUDIT_COLUMNS)})",
                         (seq, record.timestamp, actor, tenant, action, object_type, object_id,
                          canonical_json(details), prev_hash, record.hash))
        return record

    def audit_trail(self, scope: TenantScope, object_id: str | None = None,
                    limit: int = 100) -> list[AuditRecord]:
        """Newest first, optionally of one object."""
        where = scoped(scope)
        if object_id is not None:
            where.add("object_id = %s", object_id)
        limit, _ = page(limit, 0)
        rows = self._db.query("read the audit trail", f"SELECT {_AUDIT_COLUMNS} FROM audit WHERE {where.sql} "
                              "ORDER BY seq DESC LIMIT %s", [*where.params, limit])
        return [_audit_record(row) for row in rows]

    def verify_audit(self) -> AuditCheck:
        """Recompute the whole chain in one snapshot; reports the first entry that does not fit."""
        entries, expected_prev = 0, GENESIS_HASH
        first_bad: tuple[int, str] | None = None
        for row in self._db.rows("verify the audit trail", f"SELECT {_AUDIT_COLUMNS} FROM audit ORDER BY seq"):
            entries += 1
            if first_bad is None:
                problem = _chain_problem(row, entries, expected_prev)
                if problem is not None:
                    first_bad = (row[0], problem)
                # The next entry must chain to the hash as stored: a changed entry is reported
                # at its own seq, not at every entry after it.
                expected_prev = row[9]
        if first_bad is None:
            return AuditCheck(ok=True, entries=entries)
        return AuditCheck(ok=False, entries=entries, first_bad_seq=first_bad[0], reason=first_bad[1])
