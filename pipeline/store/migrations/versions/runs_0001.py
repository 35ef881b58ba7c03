"""runs 0001: playbook runs, their steps, approvals and side effects.

The schema the pre-Alembic run stores had (SQLite's `playbook_runs.db`, PostgreSQL's
`schema_version` 1 of `playbook_runs`), frozen here as it was. Times are ISO 8601 TEXT on SQLite
and `timestamptz` on PostgreSQL, as they were; `adopt()` gives a pre-Alembic SQLite file the
index PostgreSQL always had.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "runs_0001"
down_revision: str | None = None
branch_labels = ("runs",)
depends_on: str | None = None

_ID = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
_TIME = sa.Text().with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")
LEGACY_COMPONENT = "playbook_runs"  # its row in PostgreSQL's pre-Alembic `schema_version` table


def _text(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.Text, nullable=False)


def _time(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, _TIME, nullable=nullable)


def frozen_metadata() -> sa.MetaData:
    """The tables of this revision, as they were when it was written."""
    md = sa.MetaData()
    sa.Table("playbook_runs", md, sa.Column("id", _ID, primary_key=True), _text("playbook_id"), _text("playbook"),
             _text("incident_id"), _text("tenant"), _text("mode"), _text("state"), sa.Column("cursor", sa.Text),
             _time("created"), _time("updated"), sa.Index("playbook_runs_created", "created"))
    sa.Table("playbook_steps", md, sa.Column("run_id", sa.Text, sa.ForeignKey("playbook_runs.id"), primary_key=True),
             sa.Column("step_id", sa.Text, primary_key=True), sa.Column("position", sa.Integer, nullable=False),
             _text("state"), _text("output"), _text("error"), _time("started", nullable=True), _time("updated"))
    sa.Table("playbook_approvals", md, sa.Column("run_id", sa.Text, primary_key=True),
             sa.Column("step_id", sa.Text, primary_key=True), sa.Column("user", _ID, primary_key=True),
             _text("role"), _text("decision"), _time("at"))
    sa.Table("playbook_side_effects", md, sa.Column("key", sa.Text, primary_key=True), _text("run_id"),
             _text("step_id"), _text("state"), _text("request"), sa.Column("result", sa.Text), _time("started"),
             _time("finished", nullable=True))
    return md


def _legacy_marker(dialect: str) -> tuple[str, ...]:
    """PostgreSQL's pre-Alembic run store kept a `schema_version` row; keep it at 1 (see incidents_0001)."""
    if dialect != "postgresql":
        return ()
    return ("CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
            f"INSERT INTO schema_version (component, version) VALUES ('{LEGACY_COMPONENT}', 1) "
            "ON CONFLICT (component) DO UPDATE SET version = 1")


def adopt(bind: sa.Connection) -> None:
    """Bring a database the pre-Alembic run store made (its tables, no Alembic version) to this revision."""
    if bind.dialect.name == "sqlite":
        bind.exec_driver_sql("CREATE INDEX IF NOT EXISTS playbook_runs_created ON playbook_runs (created)")
    for statement in _legacy_marker(bind.dialect.name):
        bind.execute(sa.text(statement))


def upgrade() -> None:
    bind = op.get_bind()
    # checkfirst=False: this runs only where none of the branch's tables exist (else `adopt`)
    frozen_metadata().create_all(bind, checkfirst=False)
    for statement in _legacy_marker(bind.dialect.name):
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("govsoc migrates forward only: restore a backup to go back")
