"""SqliteIncidentStore: the embedded IncidentStore (`sqlite:///path`): alerts, incidents, audit trail.

In: alerts from the detection engines, incidents from the grouping service, audit entries from
every person or process that changes an incident. Out: pages of them within a `TenantScope`.

Contract (as `pipeline.store.base`, plus what is particular to SQLite):
- `write_alerts` keeps the first alert of an id (ids are deterministic, so a replay is the same
  alert) and returns the alerts that were new, in input order, each id once.
- `save_incident` upserts the incident (every column from the record) and links the alert ids,
  in one transaction; with `expected_updated` it is a compare-and-set on the `updated` column.
  Entities are compared as canonical JSON, so key order never matters.
- The tables are `pipeline.store.schema`'s `incidents` branch, created and migrated on open by
  Alembic's revisions (`pipeline.store.migrations`); a file from before them (its
  `schema_version` row at 1 or 2) is checked against revision `incidents_0001` and adopted.
- Reads are newest first: alerts by (time, id), incidents by (last_seen, id), audit by seq.
- Rows, WHERE clauses and statements are `pipeline.store.schema`'s, shared with
  `PostgresIncidentStore`; here times are microseconds since the epoch (`SQLITE`), and a set of
  tenants or states is one JSON parameter read by `json_each`.
- The audit trail is append-only in the database itself: triggers abort any UPDATE or DELETE.
  The hash chain is the one `pipeline.store.schema` documents (`audit_hash`). Appends run under
  `BEGIN IMMEDIATE`, so concurrent appends (threads or processes) chain one after another. The
  chain shows a changed, removed or reordered entry; removing the newest entries needs an anchor
  kept elsewhere (the last hash) to be seen.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from config.tenants import TenantScope
from pipeline.errors import StoreError
from pipeline.records import Alert, AuditRecord, Incident, IncidentComment, StateChange, Suppression, utc_now
from pipeline.store.base import AlertQuery, AuditCheck, IncidentConflict, IncidentQuery
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
from pipeline.store.sqlite_db import AlembicBranch, SqliteStore, from_us, json_list, page, to_us

__all__ = ["GENESIS_HASH", "SQLITE", "SqliteIncidentStore", "audit_hash", "canonical_json"]


SQLITE = Dialect(mark="?", time=to_us, read_time=from_us, clock=to_us, read_clock=from_us,
                 any_of="{column} IN (SELECT value FROM json_each({mark}))", list_param=json_list)
_SQL = IncidentSql.of(SQLITE)
_OPEN_STATES = json_list(OPEN_STATES)


class SqliteIncidentStore(SqliteStore):
    """Alerts, incidents and the audit chain in a SQLite file; safe to share between threads."""

    schema = AlembicBranch(INCIDENTS)

    def write_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Store alerts whose id is new; returns exactly those, in input order."""
        rows = [alert_row(alert, SQLITE) for alert in alerts]
        new: list[Alert] = []
        if not rows:
            return new
        with self._db.transaction("write alerts") as conn:
            for alert, row in zip(alerts, rows, strict=True):
                if conn.execute(_SQL.insert_alert, row).rowcount == 1:
                    new.append(alert)
        return new

    def alerts(self, scope: TenantScope, query: AlertQuery) -> list[Alert]:
        where = alert_where(scope, query, SQLITE)
        limit, offset = page(query.limit, query.offset)
        rows = self._db.query("read alerts", f"{_SQL.select_alerts} WHERE {where.sql} "
                              "ORDER BY ts DESC, id DESC LIMIT ? OFFSET ?", [*where.params, limit, offset])
        return [read_alert(row, SQLITE) for row in rows]

    def count_alerts(self, scope: TenantScope, query: AlertQuery) -> int:
        where = alert_where(scope, query, SQLITE)
        rows = self._db.query("count alerts", f"SELECT count(*) FROM alerts WHERE {where.sql}", where.params)
        return int(rows[0][0])

    def find_open_incident(self, scope: TenantScope, rule_id: str, entity: Mapping[str, str],
                           since: datetime) -> Incident | None:
        """The open incident of this rule and entity last seen at or after `since`; the newest if several."""
        where = scoped(scope, SQLITE)
        where.add("rule_id = ?", rule_id)
        where.add("entity = ?", canonical_json(dict(entity)))
        where.add(SQLITE.is_any("state"), _OPEN_STATES)
        where.add("last_seen >= ?", to_us(since, "since"))
        rows = self._db.query("find an open incident", f"{_SQL.select_incidents} WHERE {where.sql} "
                              "ORDER BY last_seen DESC, id DESC LIMIT 1", where.params)
        return read_incident(rows[0], SQLITE) if rows else None

    def save_incident(self, incident: Incident, alert_ids: Sequence[str], *,
                      expected_updated: datetime | None = None) -> None:
        """Upsert the incident and link `alert_ids` to it (links are kept, never removed).

        `expected_updated` is checked under the write lock (`BEGIN IMMEDIATE`), so no other
        writer can slip in between the check and the write.
        """
        row = incident_row(incident, SQLITE)
        expected = None if expected_updated is None else to_us(expected_updated, "expected_updated")
        with self._db.transaction(f"save incident {incident.id}") as conn:
            if expected is not None:
                stored = conn.execute("SELECT updated FROM incidents WHERE id = ?", (incident.id,)).fetchone()
                if stored is None or stored[0] != expected:
                    raise IncidentConflict(f"incident {incident.id} changed since it was read")
            conn.execute(_SQL.upsert_incident, row)
            conn.executemany(_SQL.link_alert, [(incident.id, alert_id) for alert_id in alert_ids])

    def incident(self, scope: TenantScope, incident_id: str) -> Incident | None:
        where = scoped(scope, SQLITE)
        where.add("id = ?", incident_id)
        rows = self._db.query("read an incident", f"{_SQL.select_incidents} WHERE {where.sql}", where.params)
        return read_incident(rows[0], SQLITE) if rows else None

    def incidents(self, scope: TenantScope, query: IncidentQuery) -> list[Incident]:
        where = incident_where(scope, query, SQLITE)
        limit, offset = page(query.limit, query.offset)
        rows = self._db.query("read incidents", f"{_SQL.select_incidents} WHERE {where.sql} "
                              f"ORDER BY {INCIDENT_ORDER[query.sort]} LIMIT ? OFFSET ?",
                              [*where.params, limit, offset])
        return [read_incident(row, SQLITE) for row in rows]

    def count_incidents(self, scope: TenantScope, query: IncidentQuery) -> int:
        where = incident_where(scope, query, SQLITE)
        rows = self._db.query("count incidents", f"SELECT count(*) FROM incidents WHERE {where.sql}",
                              where.params)
        return int(rows[0][0])

    def add_comment(self, comment: IncidentComment) -> None:
        """Store a comment; a comment id already stored keeps its first text."""
        row = comment_row(comment, SQLITE)
        with self._db.transaction(f"comment on incident {comment.incident_id}") as conn:
            conn.execute(_SQL.insert_comment, row)

    def comments(self, scope: TenantScope, incident_id: str, limit: int = 100) -> list[IncidentComment]:
        """Newest first."""
        where = scoped(scope, SQLITE)
        where.add("incident_id = ?", incident_id)
        limit, _ = page(limit, 0)
        rows = self._db.query("read comments", f"{_SQL.select_comments} WHERE {where.sql} "
                              "ORDER BY created DESC, id DESC LIMIT ?", [*where.params, limit])
        return [read_comment(row, SQLITE) for row in rows]

    def record_state_change(self, change: StateChange) -> None:
        """Append one step to the incident's state history (kept in the order recorded)."""
        row = state_change_row(change, SQLITE)
        with self._db.transaction(f"record a state change of {change.incident_id}") as conn:
            conn.execute(_SQL.insert_state, row)

    def state_history(self, scope: TenantScope, incident_id: str, limit: int = 100) -> list[StateChange]:
        """Newest first."""
        where = scoped(scope, SQLITE)
        where.add("incident_id = ?", incident_id)
        limit, _ = page(limit, 0)
        rows = self._db.query("read state history", f"{_SQL.select_states} WHERE {where.sql} "
                              "ORDER BY seq DESC LIMIT ?", [*where.params, limit])
        return [read_state_change(row, SQLITE) for row in rows]

    def save_suppression(self, suppression: Suppression) -> None:
        """Upsert by id (changing the expiry of an exception is saving it again)."""
        with self._db.transaction(f"save suppression {suppression.id}") as conn:
            conn.execute(_SQL.upsert_suppression, suppression_row(suppression, SQLITE))

    def suppressions(self, scope: TenantScope, active_at: datetime | None = None,
                     limit: int = 1000) -> list[Suppression]:
        """Newest first; only those not expired at `active_at` when it is given."""
        where = scoped(scope, SQLITE)
        if active_at is not None:
            where.add("(expires IS NULL OR expires > ?)", to_us(active_at, "active_at"))
        limit, _ = page(limit, 0)
        rows = self._db.query("read suppressions", f"{_SQL.select_suppressions} WHERE {where.sql} "
                              "ORDER BY created DESC, id DESC LIMIT ?", [*where.params, limit])
        return [read_suppression(row, SQLITE) for row in rows]

    def append_audit(self, *, actor: str, tenant: str, action: str, object_type: str, object_id: str,
                     details: Mapping[str, Any]) -> AuditRecord:
        """Append one entry to the chain; the last hash is read and extended under one write lock."""
        try:  # stored and hashed as what JSON gives back, so verify_audit sees exactly this
            details = json.loads(canonical_json(dict(details)))
        except (TypeError, ValueError) as e:
            raise StoreError(f"audit details of {object_type} {object_id}: not JSON: {e}") from e
        with self._db.transaction("append to the audit trail") as conn:
            last = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
            record = AuditRecord(seq=seq, timestamp=utc_now(), actor=actor, tenant=tenant, action=action,
                                 object_type=object_type, object_id=object_id, details=details,
                                 prev_hash=prev_hash, hash="")
            record = dataclasses.replace(record, hash=audit_hash(record))
            conn.execute(_SQL.insert_audit, audit_row(record, SQLITE))
        return record

    def audit_trail(self, scope: TenantScope, object_id: str | None = None,
                    limit: int = 100) -> list[AuditRecord]:
        """Newest first, optionally of one object."""
        where = scoped(scope, SQLITE)
        if object_id is not None:
            where.add("object_id = ?", object_id)
        limit, _ = page(limit, 0)
        rows = self._db.query("read the audit trail", f"{_SQL.select_audit} WHERE {where.sql} "
                              "ORDER BY seq DESC LIMIT ?", [*where.params, limit])
        return [read_audit(row, SQLITE) for row in rows]

    def verify_audit(self) -> AuditCheck:
        """Recompute the whole chain in one snapshot; reports the first entry that does not fit."""
        entries, expected_prev = 0, GENESIS_HASH
        first_bad: tuple[int, str] | None = None
        for row in self._db.rows("verify the audit trail", f"{_SQL.select_audit} ORDER BY seq"):
            entries += 1
            if first_bad is None:
                problem = chain_problem(row, entries, expected_prev, SQLITE)
                if problem is not None:
                    first_bad = (row[0], problem)
                # The next entry must chain to the hash as stored: a changed entry is reported
                # at its own seq, not at every entry after it.
                expected_prev = row[9]
        if first_bad is None:
            return AuditCheck(ok=True, entries=entries)
        return AuditCheck(ok=False, entries=entries, first_bad_seq=first_bad[0], reason=first_bad[1])
