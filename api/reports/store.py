"""SqliteReportStore: agency incident reports by reference, their versions, and deliveries upward.

In: report versions as JSON bodies (the form models dumped), delivery attempts. Out: the same,
read within a `TenantScope`.

Contract:
- A reference reads `<prefix>-<year>-<6 digits>` (`BC-2026-000123`); the number is the next one
  of that year, allocated inside the insert's `BEGIN IMMEDIATE` transaction, so two reports filed
  at once never share one.
- Version 1 of a reference is its initial report; follow-ups and the final report append
  versions 2, 3, ... (append-only: no call changes or removes a version). After a final report
  the reference takes no more versions (`ReportClosed`).
- Every read takes the caller's scope: a report of a tenant outside it reads as absent (None or
  not listed), exactly like one that does not exist. Lists are newest first and bounded.
- Every delivery attempt is one row (append-only), with its outcome and the reason of a failure.
- Queries are parameterised; tables live beside the other stores' in the same SQLite file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from config.tenants import TenantScope
from pipeline.errors import StoreError
from pipeline.store.sqlite_db import Schema, SqliteStore, from_us, page, scoped, to_us

SCHEMA = Schema(
    component="reports",
    version=1,
    statements=(
        """CREATE TABLE IF NOT EXISTS reports (
            reference TEXT PRIMARY KEY, tenant TEXT NOT NULL, year INTEGER NOT NULL, seq INTEGER NOT NULL,
            incident_id TEXT NOT NULL, title TEXT NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL,
            versions INTEGER NOT NULL, is_final INTEGER NOT NULL, UNIQUE (year, seq))""",
        "CREATE INDEX IF NOT EXISTS reports_tenant_updated ON reports (tenant, updated)",
        "CREATE INDEX IF NOT EXISTS reports_incident ON reports (incident_id)",
        """CREATE TABLE IF NOT EXISTS report_versions (
            reference TEXT NOT NULL, version INTEGER NOT NULL, tenant TEXT NOT NULL, kind TEXT NOT NULL,
            filed_at INTEGER NOT NULL, actor TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (reference, version))""",
        """CREATE TABLE IF NOT EXISTS report_deliveries (
            id INTEGER PRIMARY KEY AUTOINCREMENT, reference TEXT NOT NULL, tenant TEXT NOT NULL,
            recipient TEXT NOT NULL, channel TEXT NOT NULL, attempt INTEGER NOT NULL, at INTEGER NOT NULL,
            ok INTEGER NOT NULL, detail TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS report_deliveries_reference ON report_deliveries (reference, id)",
    ),
)

_SUMMARY_COLUMNS = "reference, tenant, incident_id, title, created, updated, versions, is_final"


class ReportClosed(StoreError):
    """The reference already has its final report; it takes no more versions."""


@dataclass(frozen=True, slots=True)
class ReportSummary:
    reference: str
    tenant: str
    incident_id: str
    title: str
    created: datetime
    updated: datetime
    versions: int
    is_final: bool


@dataclass(frozen=True, slots=True)
class ReportVersion:
    """One filed form: `kind` is initial, follow_up or final; `body` the form as JSON."""

    reference: str
    version: int
    tenant: str
    kind: str
    filed_at: datetime
    actor: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReportRecord:
    summary: ReportSummary
    versions: tuple[ReportVersion, ...]  # oldest first: versions[0] is the initial report

    @property
    def initial(self) -> ReportVersion:
        return self.versions[0]

    @property
    def final(self) -> ReportVersion | None:
        return next((v for v in self.versions if v.kind == "final"), None)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt to deliver a report to a recipient, and how it went."""

    reference: str
    tenant: str
    recipient: str
    channel: str
    attempt: int
    at: datetime
    ok: bool
    detail: str


def _summary(row: tuple[Any, ...]) -> ReportSummary:
    return ReportSummary(reference=row[0], tenant=row[1], incident_id=row[2], title=row[3], created=from_us(row[4]),
                         updated=from_us(row[5]), versions=row[6], is_final=bool(row[7]))


class SqliteReportStore(SqliteStore):
    schema = SCHEMA

    def create(self, first: ReportVersion, *, prefix: str, year: int, incident_id: str, title: str) -> ReportVersion:
        """Store an initial report under the next reference of `year`; returns it with its reference."""
        at = to_us(first.filed_at, "filed_at")
        with self._db.transaction("file a report") as conn:
            row = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM reports WHERE year = ?", (year,)).fetchone()
            reference = f"{prefix}-{year:04d}-{row[0]:06d}"
            conn.execute(
                f"INSERT INTO reports ({_SUMMARY_COLUMNS}, year, seq) VALUES (?, ?, ?, ?, ?, ?, 1, 0, ?, ?)",
                (reference, first.tenant, incident_id, title, at, at, year, row[0]))
            conn.execute("INSERT INTO report_versions VALUES (?, 1, ?, ?, ?, ?, ?)",
                         (reference, first.tenant, first.kind, at, first.actor, orjson.dumps(first.body).decode()))
        return ReportVersion(reference, 1, first.tenant, first.kind, first.filed_at, first.actor, first.body)

    def append(self, scope: TenantScope, draft: ReportVersion) -> ReportVersion:
        """Append the next version to `draft.reference` (within `scope`); a final one closes it.

        Raises `StoreError` if the reference is not in scope and `ReportClosed` after a final report.
        """
        at = to_us(draft.filed_at, "filed_at")
        where = scoped(scope)
        with self._db.transaction("add to a report") as conn:
            row = conn.execute(f"SELECT versions, is_final, tenant FROM reports WHERE reference = ? AND {where.sql}",
                               (draft.reference, *where.params)).fetchone()
            if row is None:
                raise StoreError(f"report {draft.reference}: not found")
            if row[1]:
                raise ReportClosed(f"report {draft.reference}: the final report was filed; it takes no more versions")
            version = row[0] + 1
            conn.execute("INSERT INTO report_versions VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (draft.reference, version, row[2], draft.kind, at, draft.actor,
                          orjson.dumps(draft.body).decode()))
            conn.execute("UPDATE reports SET versions = ?, updated = MAX(updated, ?), is_final = ? WHERE reference = ?",
                         (version, at, int(draft.kind == "final"), draft.reference))
        return ReportVersion(draft.reference, version, row[2], draft.kind, draft.filed_at, draft.actor, draft.body)

    def report(self, scope: TenantScope, reference: str) -> ReportRecord | None:
        where = scoped(scope)
        rows = self._db.query("read a report", f"SELECT {_SUMMARY_COLUMNS} FROM reports "
                              f"WHERE reference = ? AND {where.sql}", (reference, *where.params))
        if not rows:
            return None
        versions = self._db.query(
            "read a report's versions", "SELECT reference, version, tenant, kind, filed_at, actor, body "
            "FROM report_versions WHERE reference = ? ORDER BY version", (reference,))
        return ReportRecord(_summary(rows[0]), tuple(
            ReportVersion(r[0], r[1], r[2], r[3], from_us(r[4]), r[5], orjson.loads(r[6])) for r in versions))

    def report_of_incident(self, scope: TenantScope, incident_id: str) -> ReportRecord | None:
        """The newest report linked to the incident, within `scope`."""
        where = scoped(scope)
        rows = self._db.query("find an incident's report", f"SELECT reference FROM reports WHERE incident_id = ? "
                              f"AND {where.sql} ORDER BY created DESC LIMIT 1", (incident_id, *where.params))
        return self.report(scope, rows[0][0]) if rows else None

    def reports(self, scope: TenantScope, limit: int = 100, offset: int = 0) -> list[ReportSummary]:
        limit, offset = page(limit, offset)
        where = scoped(scope)
        rows = self._db.query("list reports", f"SELECT {_SUMMARY_COLUMNS} FROM reports WHERE {where.sql} "
                              "ORDER BY updated DESC, reference DESC LIMIT ? OFFSET ?", (*where.params, limit, offset))
        return [_summary(r) for r in rows]

    def count_reports(self, scope: TenantScope) -> int:
        where = scoped(scope)
        return int(self._db.query("count reports", f"SELECT COUNT(*) FROM reports WHERE {where.sql}",
                                  where.params)[0][0])

    def record_delivery(self, delivery: Delivery) -> None:
        with self._db.transaction("record a delivery") as conn:
            conn.execute("INSERT INTO report_deliveries (reference, tenant, recipient, channel, attempt, at, ok, "
                         "detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (delivery.reference, delivery.tenant, delivery.recipient, delivery.channel,
                          delivery.attempt, to_us(delivery.at, "at"), int(delivery.ok), delivery.detail))

    def deliveries(self, scope: TenantScope, reference: str, limit: int = 1000) -> list[Delivery]:
        """Attempts to deliver the report, oldest first."""
        limit, _ = page(limit, 0)
        where = scoped(scope)
        rows = self._db.query(
            "read deliveries", "SELECT reference, tenant, recipient, channel, attempt, at, ok, detail "
            f"FROM report_deliveries WHERE reference = ? AND {where.sql} ORDER BY id LIMIT ?",
            (reference, *where.params, limit))
        return [Delivery(r[0], r[1], r[2], r[3], r[4], from_us(r[5]), bool(r[6]), r[7]) for r in rows]
