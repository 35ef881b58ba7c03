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
- Rows, WHERE clauses and statements are `pipeline.store.schema`'s, shared with
  `SqliteIncidentStore` (`POSTGRES` is how they differ here): times are `timestamptz`
  (microseconds, as Python's), a time without a zone is refused, and a set of tenants or states
  is one `text[]` parameter. JSON values (entity, tags, details) are text, not jsonb: the audit
  hash is over exactly the stored text, and entities compare as text, key order normalised.
- Ids sort with `COLLATE "C"` (byte order), so ties break as in SQLite whatever the database's
  locale. PostgreSQL refuses the NUL character in text: such a value raises `StoreError`.
- Reads are newest first: alerts by (time, id), incidents by (last_seen, id), audit by seq.
- The audit trail is append-only in the database itself: triggers abort any UPDATE, DELETE or
  TRUNCATE. The chain (seq from 1, no gaps; `hash = sha256(prev_hash + canonical JSON ...)`) is
  the one `pipeline.store.schema` documents, computed by the same `audit_hash`. Appends are
  serialised by `LOCK TABLE audit IN EXCLUSIVE MODE` inside the appending transaction: the lock
  conflicts with itself, so a second appender (any thread, process or machine) waits until the
  first commits and then reads the new head; reads are not blocked. `seq` is also the primary
  key, so even a writer that skipped the lock could not fork the chain, only fail.
- The tables (and the audit triggers) are `pipeline.store.schema`'s `incidents` branch, created
  and migrated on open by Alembic's revisions (`pipeline.store.migrations`), as on SQLite; a
  database from before them (`schema_version` 1) is checked against `incidents_0001` and adopted.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from config.tenants import TenantScope
from pipeline.errors import StoreError
from pipeline.records import (
    Alert,
    AuditRecord,
    Incident,
    IncidentComment,
    StateChange,
    Suppression,
    parse_iso,
    to_iso,
    utc_now,
)
from pipeline.store.base import AlertQuery, AuditCheck, IncidentConflict, IncidentQuery
from pipeline.store.postgres_db import PostgresStore, aware
from pipeline.store.schema import (
    GENESIS_HASH,
    INCIDENT_ORDER,
    INCIDENTS,
    OPEN_STATES,
    Dialect,
    IncidentSql,
    alert_row,
    alert_where,
    audit_hash,
    audit_row,
    canonical_json,
    chain_problem,
    comment_row,
    incident_row,
    incident_where,
    read_alert,
    read_audit,
    read_comment,
    read_incident,
    read_state_change,
    read_suppression,
    scoped,
    state_change_row,
    suppression_row,
)
from pipeline.store.sqlite_db import AlembicBranch, page


def _as_read(value: Any) -> datetime:
    """psycopg already gives a `timestamptz` as a zoned datetime (UTC: the session's zone)."""
    return value  # type: ignore[no-any-return]


def _clock(ts: datetime, what: str) -> str:
    return to_iso(aware(ts, what))


POSTGRES = Dialect(mark="%s", time=aware, read_time=_as_read, clock=_clock, read_clock=parse_iso,
                   any_of="{column} = ANY({mark}::text[])", list_param=list)
_SQL = IncidentSql.of(POSTGRES)


class PostgresIncidentStore(PostgresStore):
    """Alerts, incidents and the audit chain in a PostgreSQL database; safe across threads and processes."""

    schema = AlembicBranch(INCIDENTS)

    def write_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Store alerts whose id is new; returns exactly those, in input order."""
        rows = [alert_row(alert, POSTGRES) for alert in alerts]
        if not rows:
            return []
        inserted: set[str] = set()
        with self._db.transaction("write alerts") as conn, conn.cursor() as cursor:
            cursor.executemany(f"{_SQL.insert_alert} RETURNING id", rows, returning=True)
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
        where = alert_where(scope, query, POSTGRES)
        limit, offset = page(query.limit, query.offset)
        rows = self._db.query("read alerts", f"{_SQL.select_alerts} WHERE {where.sql} "
                              "ORDER BY ts DESC, id DESC LIMIT %s OFFSET %s", [*where.params, limit, offset])
        return [read_alert(row, POSTGRES) for row in rows]

    def count_alerts(self, scope: TenantScope, query: AlertQuery) -> int:
        where = alert_where(scope, query, POSTGRES)
        rows = self._db.query("count alerts", f"SELECT count(*) FROM alerts WHERE {where.sql}", where.params)
        return int(rows[0][0])

    def find_open_incident(self, scope: TenantScope, rule_id: str, entity: Mapping[str, str],
                           since: datetime) -> Incident | None:
        """The open incident of this rule and entity last seen at or after `since`; the newest if several."""
        where = scoped(scope, POSTGRES)
        where.add("rule_id = %s", rule_id)
        where.add("entity = %s", canonical_json(dict(entity)))
        where.add(POSTGRES.is_any("state"), OPEN_STATES)
        where.add("last_seen >= %s", aware(since, "since"))
        rows = self._db.query("find an open incident", f"{_SQL.select_incidents} WHERE {where.sql} "
                              "ORDER BY last_seen DESC, id DESC LIMIT 1", where.params)
        return read_incident(rows[0], POSTGRES) if rows else None

    def save_incident(self, incident: Incident, alert_ids: Sequence[str], *,
                      expected_updated: datetime | None = None) -> None:
        """Upsert the incident and link `alert_ids` to it (links are kept, never removed).

        `expected_updated` is checked on the row locked `FOR UPDATE`: a concurrent save of the
        same incident waits for this transaction and then sees its `updated`.
        """
        row = incident_row(incident, POSTGRES)
        expected = None if expected_updated is None else aware(expected_updated, "expected_updated")
        with self._db.transaction(f"save incident {incident.id}") as conn:
            if expected is not None:
                stored = conn.execute("SELECT updated FROM incidents WHERE id = %s FOR UPDATE",
                                      (incident.id,)).fetchone()
                if stored is None or stored[0] != expected:
                    raise IncidentConflict(f"incident {incident.id} changed since it was read")
            conn.execute(_SQL.upsert_incident, row)
            if alert_ids:
                with conn.cursor() as cursor:
                    cursor.executemany(_SQL.link_alert, [(incident.id, alert_id) for alert_id in alert_ids])

    def incident(self, scope: TenantScope, incident_id: str) -> Incident | None:
        where = scoped(scope, POSTGRES)
        where.add("id = %s", incident_id)
        rows = self._db.query("read an incident", f"{_SQL.select_incidents} WHERE {where.sql}", where.params)
        return read_incident(rows[0], POSTGRES) if rows else None

    def incidents(self, scope: TenantScope, query: IncidentQuery) -> list[Incident]:
        where = incident_where(scope, query, POSTGRES)
        limit, offset = page(query.limit, query.offset)
        rows = self._db.query("read incidents", f"{_SQL.select_incidents} WHERE {where.sql} "
                              f"ORDER BY {INCIDENT_ORDER[query.sort]} LIMIT %s OFFSET %s",
                              [*where.params, limit, offset])
        return [read_incident(row, POSTGRES) for row in rows]

    def count_incidents(self, scope: TenantScope, query: IncidentQuery) -> int:
        where = incident_where(scope, query, POSTGRES)
        rows = self._db.query("count incidents", f"SELECT count(*) FROM incidents WHERE {where.sql}",
                              where.params)
        return int(rows[0][0])

    def add_comment(self, comment: IncidentComment) -> None:
        """Store a comment; a comment id already stored keeps its first text."""
        row = comment_row(comment, POSTGRES)
        with self._db.transaction(f"comment on incident {comment.incident_id}") as conn:
            conn.execute(_SQL.insert_comment, row)

    def comments(self, scope: TenantScope, incident_id: str, limit: int = 100) -> list[IncidentComment]:
        """Newest first."""
        where = scoped(scope, POSTGRES)
        where.add("incident_id = %s", incident_id)
        limit, _ = page(limit, 0)
        rows = self._db.query("read comments", f"{_SQL.select_comments} WHERE {where.sql} "
                              "ORDER BY created DESC, id DESC LIMIT %s", [*where.params, limit])
        return [read_comment(row, POSTGRES) for row in rows]

    def record_state_change(self, change: StateChange) -> None:
        """Append one step to the incident's state history (kept in the order recorded)."""
        row = state_change_row(change, POSTGRES)
        with self._db.transaction(f"record a state change of {change.incident_id}") as conn:
            conn.execute(_SQL.insert_state, row)

    def state_history(self, scope: TenantScope, incident_id: str, limit: int = 100) -> list[StateChange]:
        """Newest first."""
        where = scoped(scope, POSTGRES)
        where.add("incident_id = %s", incident_id)
        limit, _ = page(limit, 0)
        rows = self._db.query("read state history", f"{_SQL.select_states} WHERE {where.sql} "
                              "ORDER BY seq DESC LIMIT %s", [*where.params, limit])
        return [read_state_change(row, POSTGRES) for row in rows]

    def save_suppression(self, suppression: Suppression) -> None:
        """Upsert by id (changing the expiry of an exception is saving it again)."""
        with self._db.transaction(f"save suppression {suppression.id}") as conn:
            conn.execute(_SQL.upsert_suppression, suppression_row(suppression, POSTGRES))

    def suppressions(self, scope: TenantScope, active_at: datetime | None = None,
                     limit: int = 1000) -> list[Suppression]:
        """Newest first; only those not expired at `active_at` when it is given."""
        where = scoped(scope, POSTGRES)
        if active_at is not None:
            where.add("(expires IS NULL OR expires > %s)", aware(active_at, "active_at"))
        limit, _ = page(limit, 0)
        rows = self._db.query("read suppressions", f"{_SQL.select_suppressions} WHERE {where.sql} "
                              "ORDER BY created DESC, id DESC LIMIT %s", [*where.params, limit])
        return [read_suppression(row, POSTGRES) for row in rows]

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
            conn.execute(_SQL.insert_audit, audit_row(record, POSTGRES))
        return record

    def audit_trail(self, scope: TenantScope, object_id: str | None = None,
                    limit: int = 100) -> list[AuditRecord]:
        """Newest first, optionally of one object."""
        where = scoped(scope, POSTGRES)
        if object_id is not None:
            where.add("object_id = %s", object_id)
        limit, _ = page(limit, 0)
        rows = self._db.query("read the audit trail", f"{_SQL.select_audit} WHERE {where.sql} "
                              "ORDER BY seq DESC LIMIT %s", [*where.params, limit])
        return [read_audit(row, POSTGRES) for row in rows]

    def verify_audit(self) -> AuditCheck:
        """Recompute the whole chain in one snapshot; reports the first entry that does not fit."""
        entries, expected_prev = 0, GENESIS_HASH
        first_bad: tuple[int, str] | None = None
        for row in self._db.rows("verify the audit trail", f"{_SQL.select_audit} ORDER BY seq"):
            entries += 1
            if first_bad is None:
                problem = chain_problem(row, entries, expected_prev, POSTGRES)
                if problem is not None:
                    first_bad = (row[0], problem)
                # The next entry must chain to the hash as stored: a changed entry is reported
                # at its own seq, not at every entry after it.
                expected_prev = row[9]
        if first_bad is None:
            return AuditCheck(ok=True, entries=entries)
        return AuditCheck(ok=False, entries=entries, first_bad_seq=first_bad[0], reason=first_bad[1])
