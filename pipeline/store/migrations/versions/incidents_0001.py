"""incidents 0001: alerts, incidents and their links, comments, state history, suppressions, audit.

The schema the pre-Alembic stores reached (SQLite's `schema_version` 2, PostgreSQL's 1), frozen
here as it was: later changes are later revisions, never edits of this one. `frozen_metadata()`
is what a pre-Alembic database is checked against before it is stamped, after `adopt()` brought
its two SQLite-only differences (a version 1 file's missing columns and tables, and two indexes
that gained the id for the ORDER BY ... id tie-break) to this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "incidents_0001"
down_revision: str | None = None
branch_labels = ("incidents",)
depends_on: str | None = None

_ID = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
_TIME = sa.Integer().with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LEGACY_COMPONENT = "incidents"  # its row in the pre-Alembic `schema_version` table
LEGACY_VERSION = {"sqlite": 2, "postgresql": 1}  # the version those stores wrote last


def _text(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.Text, nullable=False)


def _time(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, _TIME, nullable=nullable)


def frozen_metadata() -> sa.MetaData:
    """The tables of this revision, as they were when it was written."""
    md = sa.MetaData()
    sa.Table("alerts", md, sa.Column("id", _ID, primary_key=True), _text("tenant"), _time("ts"), _text("rule_id"),
             _text("kind"), sa.Column("severity", sa.Integer, nullable=False), _text("doc"),
             sa.Index("alerts_tenant_ts", "tenant", "ts"), sa.Index("alerts_ts", "ts", "id"))
    sa.Table("incidents", md, sa.Column("id", _ID, primary_key=True), _text("tenant"), _text("title"),
             sa.Column("severity", sa.Integer, nullable=False), _text("state"), _text("rule_id"), _text("entity"),
             _time("first_seen"), _time("last_seen"), sa.Column("alert_count", sa.Integer, nullable=False),
             _time("created"), _time("updated"), _text("tags"), sa.Column("assignee", sa.Text),
             sa.Column("asset_id", sa.Text), _time("responded", nullable=True), _time("resolved", nullable=True),
             _time("reported", nullable=True), sa.Column("clocks_met", sa.Text, nullable=False, server_default="{}"),
             sa.Index("incidents_tenant_last_seen", "tenant", "last_seen"),
             sa.Index("incidents_last_seen", "last_seen", "id"),
             sa.Index("incidents_grouping", "rule_id", "entity", "last_seen"))
    sa.Table("incident_alerts", md, sa.Column("incident_id", sa.Text, primary_key=True),
             sa.Column("alert_id", sa.Text, primary_key=True), sa.Index("incident_alerts_alert", "alert_id"))
    sa.Table("incident_comments", md, sa.Column("id", _ID, primary_key=True), _text("incident_id"), _text("tenant"),
             _text("author"), _text("text"), _time("created"),
             sa.Index("incident_comments_incident", "incident_id", "created"))
    sa.Table("incident_states", md, sa.Column("seq", _SEQ, sa.Identity(always=True), primary_key=True),
             _text("incident_id"), _text("tenant"), _text("from_state"), _text("to_state"), _text("actor"),
             _text("reason"), _time("at"), sa.Index("incident_states_incident", "incident_id", "seq"),
             sqlite_autoincrement=True)
    sa.Table("suppressions", md, sa.Column("id", _ID, primary_key=True), _text("tenant"), _text("reason"),
             _text("created_by"), _time("created"), _time("expires", nullable=True), sa.Column("rule_id", sa.Text),
             _text("entity"))
    sa.Table("audit", md, sa.Column("seq", _SEQ, primary_key=True, autoincrement=False), _time("ts"),
             _text("actor"), _text("tenant"), _text("action"), _text("object_type"), _text("object_id"),
             _text("details"), _text("prev_hash"), _text("hash"), sa.Index("audit_object", "object_id", "seq"))
    return md


# The audit trail refuses changes in the database itself, not only in the store's code.
_GUARDS = {
    "sqlite": (
        """CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit BEGIN
            SELECT RAISE(ABORT, 'the audit trail is append-only: entries cannot be updated');
        END""",
        """CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit BEGIN
            SELECT RAISE(ABORT, 'the audit trail is append-only: entries cannot be deleted');
        END""",
    ),
    "postgresql": (
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
    ),
}

# A pre-Alembic SQLite file at schema_version 1 lacks these; its version 2 step, as it was.
_SQLITE_V1_TO_V2 = (
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
)
# SQLite's two time indexes were (ts) and (last_seen); PostgreSQL's, and this revision's, end with
# the id that breaks ties in every ORDER BY.
_SQLITE_INDEXES = (
    "DROP INDEX IF EXISTS alerts_ts",
    "CREATE INDEX alerts_ts ON alerts (ts, id)",
    "DROP INDEX IF EXISTS incidents_last_seen",
    "CREATE INDEX incidents_last_seen ON incidents (last_seen, id)",
)


def adopt(bind: sa.Connection) -> None:
    """Bring a database the pre-Alembic store made (its tables, no Alembic version) to this revision.

    Run inside the caller's transaction, before the database is compared with `frozen_metadata()`
    and stamped; what it runs is idempotent or guarded by the legacy version it reads.
    """
    dialect = bind.dialect.name
    if dialect == "sqlite":
        if sa.inspect(bind).has_table("schema_version"):
            legacy = bind.exec_driver_sql("SELECT version FROM schema_version WHERE component = ?",
                                          (LEGACY_COMPONENT,)).scalar()
            if legacy == 1:
                for statement in _SQLITE_V1_TO_V2:
                    bind.exec_driver_sql(statement)
        for statement in _SQLITE_INDEXES:
            bind.exec_driver_sql(statement)
    for statement in (*_GUARDS[dialect], *_legacy_marker(dialect)):
        bind.execute(sa.text(statement))  # as op.execute does: the guards' '%' is not a placeholder


def _legacy_marker(dialect: str) -> tuple[str, ...]:
    """Keep the pre-Alembic `schema_version` row at the last version those stores knew.

    A govsoc from before Alembic opening this database then reads it (this revision is that
    schema) instead of re-running its own migrations; a later revision that changes the shape
    bumps the row, so such a govsoc refuses the database rather than misreading it.
    """
    create = "CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    version = LEGACY_VERSION[dialect]
    upsert = ("INSERT INTO schema_version (component, version) VALUES "
              f"('{LEGACY_COMPONENT}', {version}) ON CONFLICT (component) DO UPDATE SET version = {version}")
    return create, upsert


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    # checkfirst=False: this runs only where none of the branch's tables exist (else `adopt`)
    frozen_metadata().create_all(bind, checkfirst=False)
    for statement in (*_GUARDS[dialect], *_legacy_marker(dialect)):
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("govsoc migrates forward only: restore a backup to go back")
