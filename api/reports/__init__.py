"""Agency incident reports and the national report documents.

Modules, in flow order:
- form: the strict models of the forms (initial report, national form 03; follow-up; final
  report) and of the answers about them; choice codes checked against configuration.
- store: `SqliteReportStore`, reports by reference (`BC-2026-000123`), their versions and every
  delivery attempt, read within a tenant scope.
- service: `ReportService`, filing (creating or linking an incident), acknowledging with the
  reference, follow-ups and the final report on it, escalation; every step audited.
- forward: `Forwarder`, delivery upward to a parent tenant, an HTTP platform or a mailbox, with
  retries and a delivery record per attempt.
- render: `ReportRenderer`, the documents (initial, final, six-monthly/annual statistics) as HTML
  from Jinja2 templates (`templates/`) and as PDF through WeasyPrint.
"""

from pathlib import Path

from api.reports.form import FinalReport, FollowUpReport, InitialReport, ReportAck
from api.reports.forward import Forwarder, ForwardError, ForwardOutcome
from api.reports.render import PeriodStats, ReportRenderer, period_stats, to_pdf
from api.reports.service import ReportError, ReportInvalid, ReportNotFound, ReportRefused, ReportService
from api.reports.store import Delivery, ReportRecord, SqliteReportStore
from pipeline.store.sqlite_db import sqlite_file_or

__all__ = [
    "Delivery",
    "FinalReport",
    "FollowUpReport",
    "ForwardError",
    "ForwardOutcome",
    "Forwarder",
    "InitialReport",
    "PeriodStats",
    "ReportAck",
    "ReportError",
    "ReportInvalid",
    "ReportNotFound",
    "ReportRecord",
    "ReportRefused",
    "ReportRenderer",
    "ReportService",
    "SqliteReportStore",
    "open_report_store",
    "period_stats",
    "to_pdf",
]


def open_report_store(store_url: str, data_dir: Path) -> SqliteReportStore:
    """The report store: in the pipeline's SQLite file when it has one, else `data_dir/reports.db`
    (a scale-out deployment keeps its reports, few and small, in the embedded file)."""
    return SqliteReportStore(sqlite_file_or(store_url, data_dir / "reports.db"))
