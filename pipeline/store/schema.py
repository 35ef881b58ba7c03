"""The incident store's and the playbook runs' tables, as one SQLAlchemy Core `MetaData`, and the rows.

In: records (`Alert`, `Incident`, `AuditRecord`, ...) and queries. Out: `metadata` and its tables,
which the Alembic revisions in `pipeline/store/migrations/` create and
`tests/pipeline/test_migrations.py` compares with every migrated database (SQLite and
PostgreSQL), so this module and the migrations cannot drift apart; and, below the tables, the one
mapping between records and rows, the WHERE clauses and the statements that both incident stores
use, each store giving its `Dialect` (placeholder, time representation, list parameter).

Invariants:
- One declaration serves both back ends; where they store a value differently the type is a
  variant, and the difference is the one the stores have always had (so old data reads back):
  - times are INTEGER microseconds since the epoch (UTC) in the SQLite incident store, ISO 8601
    TEXT in the SQLite run store, and `timestamptz` in PostgreSQL;
  - record ids sort with `COLLATE "C"` (byte order) in PostgreSQL, as SQLite always does;
  - sequence numbers are BIGINT in PostgreSQL and INTEGER in SQLite, where only
    `INTEGER PRIMARY KEY` is the rowid (and may be AUTOINCREMENT).
- JSON values (entities, tags, clocks, audit details, step output) are TEXT, not JSON/jsonb: the
  audit hash is over exactly the stored text, and entities compare as canonical text.
- Each table belongs to one Alembic branch (`table.info["branch"]`): `incidents` (alerts,
  incidents, links, comments, state history, suppressions, audit) or `runs` (playbook runs,
  steps, approvals, side effects). In PostgreSQL both live in one database; on SQLite each has
  its own file, so a file is migrated along its own branch only.
- Indexes are PostgreSQL's on both back ends: SQLite's `alerts_ts` and `incidents_last_seen`
  gained the id that breaks ties in every `ORDER BY ... id` (a pre-Alembic file is given them
  when it is adopted).
- What a MetaData cannot say is in the revisions: the audit trail's append-only triggers.
- The column order of each table is the order the stores read and write rows in.
- The statements are plain SQL text with the driver's placeholders, made once per store class
  (`IncidentSql.of`): the stores' hot paths run exactly the SQL they ran before, with every value
  bound as a parameter. Table and column names come only from the tables here.
- The audit chain: entry `seq` (from 1, no gaps) has `hash = sha256(prev_hash + canonical JSON of
  seq, ts, actor, tenant, action, object_type, object_id, details)`, canonical JSON being
  `json.dumps(sort_keys=True, separators=(",", ":"))`, `ts` ISO 8601 with `Z`, and the first
  `prev_hash` 64 zeros (`GENESIS_HASH`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import SchemaItem
from sqlalchemy.types import TypeEngine

from config.tenants import TenantScope
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
    to_iso,
)
from pipeline.store.base import AlertQuery, IncidentQuery, IncidentSort
from pipeline.store.sqlite_db import Where

INCIDENTS = "incidents"
RUNS = "runs"
BRANCHES = (INCIDENTS, RUNS)

Id = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
MicrosOrTimestamp = sa.Integer().with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")
IsoOrTimestamp = sa.Text().with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")
Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()


def _incidents_table(name: str, *items: SchemaItem, **kwargs: Any) -> sa.Table:
    return sa.Table(name, metadata, *items, info={"branch": INCIDENTS}, **kwargs)


def _runs_table(name: str, *items: SchemaItem) -> sa.Table:
    return sa.Table(name, metadata, *items, info={"branch": RUNS})


def _required(name: str, type_: TypeEngine[Any] | type[TypeEngine[Any]] = sa.Text) -> sa.Column[Any]:
    return sa.Column(name, type_, nullable=False)


# --- incidents branch ---------------------------------------------------------------------------

alerts = _incidents_table(
    "alerts",
    sa.Column("id", Id, primary_key=True), _required("tenant"), _required("ts", MicrosOrTimestamp),
    _required("rule_id"), _required("kind"), _required("severity", sa.Integer), _required("doc"),
    sa.Index("alerts_tenant_ts", "tenant", "ts"),
    sa.Index("alerts_ts", "ts", "id"),
)

incidents = _incidents_table(
    "incidents",
    sa.Column("id", Id, primary_key=True), _required("tenant"), _required("title"),
    _required("severity", sa.Integer), _required("state"), _required("rule_id"), _required("entity"),
    _required("first_seen", MicrosOrTimestamp), _required("last_seen", MicrosOrTimestamp),
    _required("alert_count", sa.Integer), _required("created", MicrosOrTimestamp),
    _required("updated", MicrosOrTimestamp), _required("tags"), sa.Column("assignee", sa.Text),
    sa.Column("asset_id", sa.Text), sa.Column("responded", MicrosOrTimestamp),
    sa.Column("resolved", MicrosOrTimestamp), sa.Column("reported", MicrosOrTimestamp),
    sa.Column("clocks_met", sa.Text, nullable=False, server_default="{}"),
    sa.Index("incidents_tenant_last_seen", "tenant", "last_seen"),
    sa.Index("incidents_last_seen", "last_seen", "id"),
    sa.Index("incidents_grouping", "rule_id", "entity", "last_seen"),
)

incident_alerts = _incidents_table(
    "incident_alerts",
    sa.Column("incident_id", sa.Text, primary_key=True), sa.Column("alert_id", sa.Text, primary_key=True),
    sa.Index("incident_alerts_alert", "alert_id"),
)

incident_comments = _incidents_table(
    "incident_comments",
    sa.Column("id", Id, primary_key=True), _required("incident_id"), _required("tenant"), _required("author"),
    _required("text"), _required("created", MicrosOrTimestamp),
    sa.Index("incident_comments_incident", "incident_id", "created"),
)

incident_states = _incidents_table(
    "incident_states",
    sa.Column("seq", Seq, sa.Identity(always=True), primary_key=True), _required("incident_id"),
    _required("tenant"), _required("from_state"), _required("to_state"), _required("actor"), _required("reason"),
    _required("at", MicrosOrTimestamp),
    sa.Index("incident_states_incident", "incident_id", "seq"),
    sqlite_autoincrement=True,
)

suppressions = _incidents_table(
    "suppressions",
    sa.Column("id", Id, primary_key=True), _required("tenant"), _required("reason"), _required("created_by"),
    _required("created", MicrosOrTimestamp), sa.Column("expires", MicrosOrTimestamp),
    sa.Column("rule_id", sa.Text), _required("entity"),
)

audit = _incidents_table(
    "audit",
    sa.Column("seq", Seq, primary_key=True, autoincrement=False), _required("ts", MicrosOrTimestamp),
    _required("actor"), _required("tenant"), _required("action"), _required("object_type"),
    _required("object_id"), _required("details"), _required("prev_hash"), _required("hash"),
    sa.Index("audit_object", "object_id", "seq"),
)

# --- runs branch --------------------------------------------------------------------------------

playbook_runs = _runs_table(
    "playbook_runs",
    sa.Column("id", Id, primary_key=True), _required("playbook_id"), _required("playbook"),
    _required("incident_id"), _required("tenant"), _required("mode"), _required("state"),
    sa.Column("cursor", sa.Text), _required("created", IsoOrTimestamp), _required("updated", IsoOrTimestamp),
    sa.Index("playbook_runs_created", "created"),
)

playbook_steps = _runs_table(
    "playbook_steps",
    sa.Column("run_id", sa.Text, sa.ForeignKey("playbook_runs.id"), primary_key=True),
    sa.Column("step_id", sa.Text, primary_key=True), _required("position", sa.Integer), _required("state"),
    _required("output"), _required("error"), sa.Column("started", IsoOrTimestamp),
    _required("updated", IsoOrTimestamp),
)

playbook_approvals = _runs_table(
    "playbook_approvals",
    sa.Column("run_id", sa.Text, primary_key=True), sa.Column("step_id", sa.Text, primary_key=True),
    sa.Column("user", Id, primary_key=True), _required("role"), _required("decision"),
    _required("at", IsoOrTimestamp),
)

playbook_side_effects = _runs_table(
    "playbook_side_effects",
    sa.Column("key", sa.Text, primary_key=True), _required("run_id"), _required("step_id"), _required("state"),
    _required("request"), sa.Column("result", sa.Text), _required("started", IsoOrTimestamp),
    sa.Column("finished", IsoOrTimestamp),
)


def branch_tables(branch: str) -> list[sa.Table]:
    """The tables of one branch, in creation order (a table after those it references)."""
    return [table for table in metadata.sorted_tables if table.info["branch"] == branch]


def column_names(table: sa.Table) -> tuple[str, ...]:
    """The table's columns in declaration order: the order of every row a store reads or writes."""
    return tuple(column.name for column in table.columns)


# --- rows: how records map to the incident tables, shared by the SQLite and PostgreSQL stores --------

GENESIS_HASH = "0" * 64  # the `prev_hash` of the first audit entry


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, ASCII only, no NaN: equal values always give the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_iso(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def audit_hash(record: AuditRecord) -> str:
    """The hash an entry must carry, given its `prev_hash` and contents (not its own `hash`)."""
    payload = {
        "seq": record.seq, "ts": to_iso(record.timestamp), "actor": record.actor, "tenant": record.tenant,
        "action": record.action, "object_type": record.object_type, "object_id": record.object_id,
        "details": record.details,
    }
    return hashlib.sha256((record.prev_hash + canonical_json(payload)).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Dialect:
    """What the incident stores spell differently; every shared row and query below is built from it.

    `mark` is the driver's placeholder. `time` turns a zoned time into its column's value (a
    naive one is refused, `what` naming the record) and `read_time` turns it back; `clock` and
    `read_clock` do the same for the times inside `clocks_met`'s JSON. `any_of` is the condition
    that `{column}` is one of a list bound as one parameter, which `list_param` makes.
    """

    mark: str
    time: Callable[[datetime, str], Any]
    read_time: Callable[[Any], datetime]
    clock: Callable[[datetime, str], Any]
    read_clock: Callable[[Any], datetime]
    any_of: str
    list_param: Callable[[Sequence[str]], Any]

    def marks(self, count: int) -> str:
        return ", ".join([self.mark] * count)

    def is_any(self, column: str) -> str:
        """`column` (a constant of the calling module, never input) is one of the bound list."""
        return self.any_of.format(column=column, mark=self.mark)

    def optional_time(self, ts: datetime | None, what: str) -> Any:
        return None if ts is None else self.time(ts, what)

    def read_optional_time(self, value: Any) -> datetime | None:
        return None if value is None else self.read_time(value)


def _columns(table: sa.Table) -> str:
    return ", ".join(f'"{name}"' if name == "user" else name for name in column_names(table))


@dataclass(frozen=True, slots=True)
class IncidentSql:
    """The incident store's statements in one dialect, made once per store class (constants only)."""

    insert_alert: str  # ON CONFLICT (id) DO NOTHING: the first copy of an id is kept
    select_alerts: str
    select_incidents: str
    upsert_incident: str
    link_alert: str
    insert_comment: str
    select_comments: str
    insert_state: str
    select_states: str
    upsert_suppression: str
    select_suppressions: str
    insert_audit: str
    select_audit: str

    @classmethod
    def of(cls, d: Dialect) -> IncidentSql:
        def insert(table: sa.Table, columns: tuple[str, ...] | None = None) -> str:
            names = columns or column_names(table)
            return f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({d.marks(len(names))})"

        def upsert(table: sa.Table) -> str:
            update = ", ".join(f"{c} = excluded.{c}" for c in column_names(table)[1:])
            return f"{insert(table)} ON CONFLICT (id) DO UPDATE SET {update}"

        state_columns = column_names(incident_states)[1:]  # seq is the database's
        return cls(
            insert_alert=f"{insert(alerts)} ON CONFLICT (id) DO NOTHING",
            select_alerts=f"SELECT {_columns(alerts)} FROM alerts",
            select_incidents=f"SELECT {_columns(incidents)} FROM incidents",
            upsert_incident=upsert(incidents),
            link_alert=f"{insert(incident_alerts)} ON CONFLICT DO NOTHING",
            insert_comment=f"{insert(incident_comments)} ON CONFLICT (id) DO NOTHING",
            select_comments=f"SELECT {_columns(incident_comments)} FROM incident_comments",
            insert_state=insert(incident_states, state_columns),
            select_states=f"SELECT {', '.join(state_columns)} FROM incident_states",
            upsert_suppression=upsert(suppressions),
            select_suppressions=f"SELECT {_columns(suppressions)} FROM suppressions",
            insert_audit=insert(audit),
            select_audit=f"SELECT {_columns(audit)} FROM audit",
        )


INCIDENT_ORDER = {  # constants only: the sort is an enum, never text from the caller
    IncidentSort.LAST_SEEN: "last_seen DESC, id DESC",
    IncidentSort.SEVERITY: "severity DESC, last_seen DESC, id DESC",
    IncidentSort.CREATED: "created DESC, id DESC",
    IncidentSort.OLDEST: "created ASC, id ASC",
}
OPEN_STATES = [state.value for state in IncidentState if state.is_open]


def scoped(scope: TenantScope, d: Dialect, column: str = "tenant") -> Where:
    """A `Where` limited to the scope's tenants (none for an all-tenant scope), the ids as one parameter."""
    where = Where()
    if not scope.is_all:
        where.add(d.is_any(column), d.list_param(sorted(scope.tenant_ids)))
    return where


def alert_where(scope: TenantScope, query: AlertQuery, d: Dialect) -> Where:
    where, mark = scoped(scope, d), d.mark
    if query.start is not None:
        where.add(f"ts >= {mark}", d.time(query.start, "start"))
    if query.end is not None:
        where.add(f"ts < {mark}", d.time(query.end, "end"))
    if query.rule_id is not None:
        where.add(f"rule_id = {mark}", query.rule_id)
    if query.incident_id is not None:
        where.add(f"id IN (SELECT alert_id FROM incident_alerts WHERE incident_id = {mark})", query.incident_id)
    return where


def incident_where(scope: TenantScope, query: IncidentQuery, d: Dialect) -> Where:
    where, mark = scoped(scope, d), d.mark
    if query.states is not None:
        where.add(d.is_any("state"), d.list_param([IncidentState(state).value for state in query.states]))
    if query.min_severity is not None:
        where.add(f"severity >= {mark}", int(query.min_severity))
    if query.rule_id is not None:
        where.add(f"rule_id = {mark}", query.rule_id)
    if query.assignee is not None:
        where.add(f"coalesce(assignee, '') = {mark}", query.assignee)
    if query.within is not None and not query.within.is_all:
        where.add(d.is_any("tenant"), d.list_param(sorted(query.within.tenant_ids)))
    if query.since is not None:
        where.add(f"last_seen >= {mark}", d.time(query.since, "since"))
    if query.until is not None:
        where.add(f"last_seen < {mark}", d.time(query.until, "until"))
    return where


def alert_row(alert: Alert, d: Dialect) -> tuple[Any, ...]:
    doc = {"rule_title": alert.rule_title, "event_ids": list(alert.event_ids), "entity": dict(alert.entity),
           "tags": list(alert.tags), "description": alert.description}
    return (alert.id, alert.tenant, d.time(alert.timestamp, f"alert {alert.id}"), alert.rule_id,
            alert.kind.value, int(alert.severity), orjson.dumps(doc).decode())


def read_alert(row: Sequence[Any], d: Dialect) -> Alert:
    id_, tenant, ts, rule_id, kind, severity, doc_text = row
    doc = orjson.loads(doc_text)
    return Alert(id=id_, tenant=tenant, timestamp=d.read_time(ts), kind=DetectionKind(kind), rule_id=rule_id,
                 rule_title=doc["rule_title"], severity=Severity(severity), event_ids=tuple(doc["event_ids"]),
                 entity=doc["entity"], tags=tuple(doc["tags"]), description=doc["description"])


def incident_row(incident: Incident, d: Dialect) -> tuple[Any, ...]:
    what = f"incident {incident.id}"
    return (incident.id, incident.tenant, incident.title, int(incident.severity), incident.state.value,
            incident.rule_id, canonical_json(dict(incident.entity)), d.time(incident.first_seen, what),
            d.time(incident.last_seen, what), incident.alert_count, d.time(incident.created, what),
            d.time(incident.updated, what), orjson.dumps(list(incident.tags)).decode(), incident.assignee,
            incident.asset_id, d.optional_time(incident.responded, what), d.optional_time(incident.resolved, what),
            d.optional_time(incident.reported, what),
            canonical_json({k: d.clock(v, what) for k, v in incident.clocks_met.items()}))


def read_incident(row: Sequence[Any], d: Dialect) -> Incident:
    (id_, tenant, title, severity, state, rule_id, entity, first_seen, last_seen, alert_count, created,
     updated, tags, assignee, asset_id, responded, resolved, reported, clocks_met) = row
    return Incident(id=id_, tenant=tenant, title=title, severity=Severity(severity),
                    state=IncidentState(state), rule_id=rule_id, entity=json.loads(entity),
                    first_seen=d.read_time(first_seen), last_seen=d.read_time(last_seen), alert_count=alert_count,
                    created=d.read_time(created), updated=d.read_time(updated), tags=tuple(json.loads(tags)),
                    assignee=assignee, asset_id=asset_id, responded=d.read_optional_time(responded),
                    resolved=d.read_optional_time(resolved), reported=d.read_optional_time(reported),
                    clocks_met={k: d.read_clock(v) for k, v in json.loads(clocks_met).items()})


def comment_row(comment: IncidentComment, d: Dialect) -> tuple[Any, ...]:
    return (comment.id, comment.incident_id, comment.tenant, comment.author, comment.text,
            d.time(comment.created, f"comment {comment.id}"))


def read_comment(row: Sequence[Any], d: Dialect) -> IncidentComment:
    id_, incident_id, tenant, author, text, created = row
    return IncidentComment(id=id_, incident_id=incident_id, tenant=tenant, author=author, text=text,
                           created=d.read_time(created))


def state_change_row(change: StateChange, d: Dialect) -> tuple[Any, ...]:
    return (change.incident_id, change.tenant, change.from_state.value, change.to_state.value, change.actor,
            change.reason, d.time(change.at, f"state change of {change.incident_id}"))


def read_state_change(row: Sequence[Any], d: Dialect) -> StateChange:
    incident_id, tenant, from_state, to_state, actor, reason, at = row
    return StateChange(incident_id=incident_id, tenant=tenant, from_state=IncidentState(from_state),
                       to_state=IncidentState(to_state), actor=actor, reason=reason, at=d.read_time(at))


def suppression_row(s: Suppression, d: Dialect) -> tuple[Any, ...]:
    what = f"suppression {s.id}"
    return (s.id, s.tenant, s.reason, s.created_by, d.time(s.created, what), d.optional_time(s.expires, what),
            s.rule_id, canonical_json(dict(s.entity)))


def read_suppression(row: Sequence[Any], d: Dialect) -> Suppression:
    id_, tenant, reason, created_by, created, expires, rule_id, entity = row
    return Suppression(id=id_, tenant=tenant, reason=reason, created_by=created_by, created=d.read_time(created),
                       expires=d.read_optional_time(expires), rule_id=rule_id, entity=json.loads(entity))


def audit_row(record: AuditRecord, d: Dialect) -> tuple[Any, ...]:
    """The stored entry; `details` as canonical JSON, exactly the text its hash covers."""
    return (record.seq, d.time(record.timestamp, f"audit entry {record.seq}"), record.actor, record.tenant,
            record.action, record.object_type, record.object_id, canonical_json(record.details),
            record.prev_hash, record.hash)


def read_audit(row: Sequence[Any], d: Dialect) -> AuditRecord:
    seq, ts, actor, tenant, action, object_type, object_id, details, prev_hash, hash_ = row
    return AuditRecord(seq=seq, timestamp=d.read_time(ts), actor=actor, tenant=tenant, action=action,
                       object_type=object_type, object_id=object_id, details=json.loads(details),
                       prev_hash=prev_hash, hash=hash_)


def chain_problem(row: Sequence[Any], expected_seq: int, expected_prev: str, d: Dialect) -> str | None:
    """Why the stored entry `row` does not continue the chain, or None if it does."""
    try:
        record = read_audit(row, d)
    except (TypeError, ValueError, OverflowError) as e:
        return f"the entry does not decode: {e}"
    if record.seq != expected_seq:
        return f"expected seq {expected_seq}, found {record.seq}: entries are missing or reordered"
    if record.prev_hash != expected_prev:
        return "prev_hash is not the hash of the entry before it"
    if record.hash != audit_hash(record):
        return "hash does not match the entry's contents"
    return None
