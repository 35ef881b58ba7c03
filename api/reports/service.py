"""The agency report service: file an initial report, its follow-ups and the final report, and
escalate a report upward; every step audited.

In: a validated form (`api.reports.form`) and the caller (`api.auth.Principal`). Out: a
`ReportAck` given at once with the reference number, the stored versions, the incident the
report created or was linked to, and one audit entry per step.

Contract:
- Choice codes are checked against the configured lists before anything is stored; every
  unknown code is reported in one `ReportInvalid`, each with its field path.
- An initial report creates an incident of the caller's tenant (rule `agency-report`, state new,
  `reported` = now, the acknowledgement clock met), or, with `incident_id`, links an incident the
  caller already sees (its `reported` time and acknowledgement clock are set if not yet set, by
  compare-and-set). An incident outside the caller's scope is refused as if it did not exist.
- Follow-ups and the final report go on the same reference, in the caller's scope; a reference
  outside it is `ReportNotFound`, exactly like one that does not exist. After the final report
  the reference is closed (`ReportRefused`).
- Audit entries: `report.initial_filed`, `report.follow_up_filed`, `report.final_filed`,
  `report.forwarded` on the report's reference, and `incident.created_from_report` or
  `incident.report_linked` on the incident; each is written after what it records is stored.
- No wall clock but `clock`, so tests and the demo pass their time in.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from api.auth import Principal
from api.reports.form import (
    FinalReport,
    FollowUpReport,
    FormModel,
    InitialReport,
    ReportAck,
    ReportKind,
    choice_issues,
    dump,
)
from api.reports.forward import Forwarder, ForwardOutcome
from api.reports.store import Delivery, ReportRecord, ReportSummary, ReportVersion, SqliteReportStore
from config.errors import GovsocError
from config.reports import ReportSettings
from config.tenants import TenantScope, TenantTree
from pipeline.records import Incident, IncidentState, Severity, utc_now
from pipeline.store.base import IncidentConflict, IncidentStore

AGENCY_REPORT_RULE = "agency-report"
CONFLICT_ATTEMPTS = 5
KIND_LABELS = {"initial": ("báo cáo ban đầu sự cố", "initial incident report"),
               "follow_up": ("báo cáo bổ sung", "follow-up report"),
               "final": ("báo cáo kết thúc ứng cứu sự cố", "final incident response report")}


class ReportError(GovsocError):
    """A report that cannot be filed or read as asked."""


class ReportNotFound(ReportError):
    """No report (or incident) of that id within the caller's scope."""


class ReportInvalid(ReportError):
    """The form is well-formed but names something that does not exist; `issues` = (field, reason)."""

    def __init__(self, issues: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in issues))
        self.issues = issues


class ReportRefused(ReportError):
    """The report cannot take this version (already final)."""


def report_severity(security_level: int) -> Severity:
    """A reported incident's severity from the system's security level: a person judged it worth
    reporting, so never below medium; levels 4-5 (systems of national importance) are critical."""
    if security_level >= 4:
        return Severity.CRITICAL
    return Severity.HIGH if security_level == 3 else Severity.MEDIUM


class ReportService:
    def __init__(self, store: SqliteReportStore, incidents: IncidentStore, tree: TenantTree,
                 settings: ReportSettings, *, forwarder: Forwarder | None = None,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.store = store
        self.incidents = incidents
        self.tree = tree
        self.settings = settings
        self.forwarder = forwarder or Forwarder(settings, store, tree)
        self._clock = clock
        self._zone = ZoneInfo(settings.timezone)

    # -- filing -----------------------------------------------------------------------------------

    def file_initial(self, principal: Principal, form: InitialReport) -> ReportAck:
        self._check_choices(form)
        now = self._clock()
        linked = self._linked_incident(principal.scope, form.incident_id)
        incident_id = linked.id if linked else uuid.uuid4().hex
        draft = ReportVersion("", 1, principal.tenant, "initial", now, principal.name, dump(form))
        version = self.store.create(draft, prefix=self.settings.reference_prefix,
                                    year=now.astimezone(self._zone).year, incident_id=incident_id,
                                    title=form.incident.title)
        self._audit(principal, version, incident_id)
        if linked is None:
            self._create_incident(principal, form, version.reference, incident_id, now)
        else:
            self._mark_reported(principal, linked, version.reference, now)
        return self._ack(version, incident_id, now)

    def file_follow_up(self, principal: Principal, reference: str, form: FollowUpReport) -> ReportAck:
        self._check_choices(form)
        return self._append(principal, reference, "follow_up", form)

    def file_final(self, principal: Principal, reference: str, form: FinalReport) -> ReportAck:
        record = self.report(principal.scope, reference)
        issues = []
        if form.initial_reference != reference:
            issues.append(("initial_reference", f"{form.initial_reference} is not this report's reference "
                                                f"({reference})"))
        if form.initial_date not in self._initial_dates(record):
            issues.append(("initial_date", f"{form.initial_date.isoformat()} is not the date of the initial "
                                           f"report {reference}"))
        if issues:
            raise ReportInvalid(issues)
        return self._append(principal, reference, "final", form)

    def forward(self, principal: Principal, reference: str, recipient: str) -> ForwardOutcome:
        """Escalate the report to a configured recipient; audited with every attempt's outcome."""
        record = self.report(principal.scope, reference)
        outcome = self.forwarder.forward(record, recipient)
        self.incidents.append_audit(
            actor=principal.name, tenant=record.summary.tenant, action="report.forwarded", object_type="report",
            object_id=reference, details={"recipient": recipient, "channel": outcome.channel,
                                          "delivered": outcome.delivered, "attempts": len(outcome.attempts)})
        return outcome

    # -- reading ----------------------------------------------------------------------------------

    def report(self, scope: TenantScope, reference: str) -> ReportRecord:
        record = self.store.report(scope, reference)
        if record is None:
            raise ReportNotFound(f"report {reference}: not found")
        return record

    def reports(self, scope: TenantScope, limit: int = 100, offset: int = 0) -> tuple[list[ReportSummary], int]:
        return self.store.reports(scope, limit, offset), self.store.count_reports(scope)

    def deliveries(self, scope: TenantScope, reference: str) -> list[Delivery]:
        return self.store.deliveries(scope, reference)

    # -- steps ------------------------------------------------------------------------------------

    def _check_choices(self, form: FormModel) -> None:
        issues = choice_issues(form, self.settings.choices)
        if issues:
            raise ReportInvalid(issues)

    def _initial_dates(self, record: ReportRecord) -> set[date]:
        initial = InitialReport.model_validate(record.initial.body)
        return {record.initial.filed_at.astimezone(self._zone).date(),
                initial.reported_at.astimezone(self._zone).date()}

    def _linked_incident(self, scope: TenantScope, incident_id: str | None) -> Incident | None:
        if incident_id is None:
            return None
        incident = self.incidents.incident(scope, incident_id)
        if incident is None:
            raise ReportInvalid([("incident_id", f"no incident {incident_id} in your tenants")])
        return incident

    def _append(self, principal: Principal, reference: str, kind: ReportKind, form: FormModel) -> ReportAck:
        record = self.report(principal.scope, reference)
        if record.summary.is_final:
            raise ReportRefused(f"report {reference}: the final report was filed; it takes no more versions")
        now = self._clock()
        draft = ReportVersion(reference, 0, record.summary.tenant, kind, now, principal.name, dump(form))
        version = self.store.append(principal.scope, draft)
        self._audit(principal, version, record.summary.incident_id)
        return self._ack(version, record.summary.incident_id, now)

    def _audit(self, principal: Principal, version: ReportVersion, incident_id: str) -> None:
        self.incidents.append_audit(
            actor=principal.name, tenant=version.tenant, action=f"report.{version.kind}_filed", object_type="report",
            object_id=version.reference, details={"version": version.version, "kind": version.kind,
                                                  "incident_id": incident_id, "role": principal.role.value})

    def _create_incident(self, principal: Principal, form: InitialReport, reference: str, incident_id: str,
                         now: datetime) -> None:
        facts = form.incident
        clock = self.settings.acknowledge_clock
        incident = Incident(
            id=incident_id, tenant=principal.tenant, title=f"{facts.title} ({reference})",
            severity=report_severity(form.system.security_level), state=IncidentState.NEW,
            rule_id=AGENCY_REPORT_RULE, entity={"report.reference": reference}, first_seen=facts.detected_at,
            last_seen=facts.detected_at, alert_count=0, created=now, updated=now,
            tags=(AGENCY_REPORT_RULE, f"incident_kind:{facts.kind}"), reported=now,
            clocks_met={clock: now} if clock else {})
        self.incidents.save_incident(incident, [])
        self.incidents.append_audit(
            actor=principal.name, tenant=principal.tenant, action="incident.created_from_report",
            object_type="incident", object_id=incident_id,
            details={"reference": reference, "severity": incident.severity.label, "title": incident.title})

    def _mark_reported(self, principal: Principal, incident: Incident, reference: str, now: datetime) -> None:
        """Set `reported` and the acknowledgement clock on a linked incident, if not yet set (CAS, retried)."""
        clock = self.settings.acknowledge_clock
        for _ in range(CONFLICT_ATTEMPTS):
            met = dict(incident.clocks_met)
            if clock and clock not in met:
                met[clock] = now
            changed = dataclasses.replace(incident, reported=incident.reported or now, clocks_met=met, updated=now)
            try:
                self.incidents.save_incident(changed, [], expected_updated=incident.updated)
                break
            except IncidentConflict:
                fresh = self.incidents.incident(principal.scope, incident.id)
                if fresh is None:
                    raise ReportNotFound(f"incident {incident.id}: not found") from None
                incident = fresh
        else:
            raise ReportError(f"incident {incident.id}: changed {CONFLICT_ATTEMPTS} times while linking {reference}")
        self.incidents.append_audit(
            actor=principal.name, tenant=incident.tenant, action="incident.report_linked", object_type="incident",
            object_id=incident.id, details={"reference": reference})

    def _ack(self, version: ReportVersion, incident_id: str, now: datetime) -> ReportAck:
        coordinator = self.settings.national_coordinator
        by = self.tree.get(coordinator).name if coordinator in self.tree else self.settings.authority_vi
        vi, en = KIND_LABELS[version.kind]
        return ReportAck(
            reference=version.reference, version=version.version, kind=version.kind,  # type: ignore[arg-type]
            tenant=version.tenant, incident_id=incident_id, acknowledged_at=now, acknowledged_by=by,
            message_vi=f"{by} đã nhận {vi}, số hiệu {version.reference} (phiên bản {version.version}).",
            message_en=f"{by} received the {en}, reference {version.reference} (version {version.version}).")
