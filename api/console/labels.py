"""Names of the values the console shows, as English msgids the catalogues translate.

Every value here is a msgid of `locales/*/messages.po`; a test checks that the Vietnamese
catalogue translates each one (terms from GLOSSARY-vi.md). Templates pass them through `_()`.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.records import IncidentState, Severity

STATES: Mapping[str, str] = {
    IncidentState.NEW: "new", IncidentState.TRIAGE: "triage", IncidentState.IN_PROGRESS: "in progress",
    IncidentState.CONTAINED: "contained", IncidentState.RESOLVED: "resolved", IncidentState.CLOSED: "closed",
    IncidentState.FALSE_POSITIVE: "false positive",
}
SEVERITIES: Mapping[str, str] = {
    Severity.INFORMATIONAL.label: "informational", Severity.LOW.label: "low", Severity.MEDIUM.label: "medium",
    Severity.HIGH.label: "high", Severity.CRITICAL.label: "critical",
}
SENSOR_STATES: Mapping[str, str] = {"ok": "healthy", "silent": "silent", "never": "never seen"}
DEADLINE_STATUSES: Mapping[str, str] = {
    "not_started": "not started", "running": "running", "due_soon": "due soon", "overdue": "overdue",
    "met": "met", "met_late": "met late",
}
STEP_STATES: Mapping[str, str] = {
    "pending": "pending", "running": "running", "waiting_approval": "waiting for approval", "done": "done",
    "failed": "failed", "skipped": "skipped",
}
RUN_STATES: Mapping[str, str] = {
    "running": "running", "waiting_approval": "waiting for approval", "done": "done", "failed": "failed",
}
ROLES: Mapping[str, str] = {
    "admin": "administrator", "analyst": "analyst", "agency_reporter": "agency reporter", "sensor": "sensor",
    "national_coordinator": "national coordinator", "auditor": "auditor",
}
SORTS: Mapping[str, str] = {
    "newest": "last seen, newest first", "oldest": "last seen, oldest first",
    "severity": "severity, highest first", "deadline": "deadline, least time left first",
}
PERIODS: Mapping[str, str] = {"": "any time", "24h": "last 24 hours", "7d": "last 7 days", "30d": "last 30 days"}


def all_msgids() -> set[str]:
    """Every msgid named here (for the catalogue completeness test)."""
    found: set[str] = set()
    for table in (STATES, SEVERITIES, SENSOR_STATES, DEADLINE_STATUSES, STEP_STATES, RUN_STATES, ROLES, SORTS,
                  PERIODS):
        found.update(table.values())
    return found
