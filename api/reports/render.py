"""Reports as documents: the initial and final incident reports and the period statistics, rendered
from Jinja2 templates to HTML and to PDF (WeasyPrint), in Vietnamese or English.

In: a stored report (or, for an incident nobody reported, the incident and the tenant's asset
configuration, which prefill the form), or the incidents of a subtree over a period. Out: HTML
text or PDF bytes.

Contract:
- Autoescape is on for every template; values are data, never markup.
- Every field of the form is printed, empty ones as a dash, and every choice list with its boxes
  ticked (☒) or not (☐), as the paper form has them; labels and choices come from the templates
  and `config.reports.FormChoices`, so a new form is configuration.
- Times print as dd/mm/yyyy HH:MM in the configured zone (Asia/Ho_Chi_Minh by default).
- The PDF embeds DejaVu fonts (Debian's fonts-dejavu-core) so Vietnamese diacritics render.
- Period statistics count incidents first seen in [start, end) within the scope of `tenant`,
  reading at most `MAX_PERIOD_INCIDENTS` of them.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import jinja2

from api.reports.form import FollowUpReport
from api.reports.service import AGENCY_REPORT_RULE
from api.reports.store import ReportRecord
from config.reports import ReportSettings
from config.tenants import TenantTree
from pipeline.records import Incident, IncidentState, Severity
from pipeline.store.base import AlertQuery, IncidentQuery, IncidentStore, SensorStore

Lang = Literal["vi", "en"]
Format = Literal["html", "pdf"]
MAX_PERIOD_INCIDENTS = 100_000
_PAGE = 1000

_STATUS_OF_STATE = {IncidentState.NEW: "not_handled", IncidentState.TRIAGE: "not_handled",
                    IncidentState.RESOLVED: "resolved", IncidentState.CLOSED: "resolved",
                    IncidentState.FALSE_POSITIVE: "resolved"}


class ReportRenderer:
    """The configured templates, filled and turned into HTML or PDF."""

    def __init__(self, settings: ReportSettings, tree: TenantTree) -> None:
        self.settings = settings
        self.tree = tree
        self._zone = ZoneInfo(settings.timezone)
        directory = settings.templates.directory or Path(str(resources.files("api.reports") / "templates"))
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(directory), autoescape=True, undefined=jinja2.ChainableUndefined,
            trim_blocks=True, lstrip_blocks=True)
        self._env.filters["when"] = self._when
        self._env.filters["day"] = self._day
        self._env.filters["dash"] = lambda value: "—" if value in (None, "", [], ()) else value

    def _when(self, value: Any) -> str:
        if isinstance(value, str) and value:
            value = datetime.fromisoformat(value)
        if isinstance(value, datetime):
            return value.astimezone(self._zone).strftime("%d/%m/%Y %H:%M")
        return "—"

    def _day(self, value: Any) -> str:
        if isinstance(value, str) and value:
            value = datetime.fromisoformat(value)
        return value.strftime("%d/%m/%Y") if hasattr(value, "strftime") else "—"

    def _render(self, template: str, lang: Lang, **context: Any) -> str:
        return self._env.get_template(template).render(
            lang=lang, choices=self.settings.choices, settings=self.settings, **context)

    def initial_html(self, form: Mapping[str, Any], lang: Lang, *, reference: str | None, tenant: str,
                     filed_at: datetime | None, incident_id: str | None) -> str:
        """Form 03 filled with `form` (an `InitialReport` as JSON, possibly partial)."""
        return self._render(self.settings.templates.initial, lang, f=form, reference=reference,
                            tenant_name=self._tenant_name(tenant, lang), filed_at=filed_at, incident_id=incident_id)

    def final_html(self, record: ReportRecord, lang: Lang) -> str:
        final = record.final
        if final is None:
            raise ValueError(f"report {record.summary.reference}: no final report yet")
        follow_ups = [(v, FollowUpReport.model_validate(v.body)) for v in record.versions if v.kind == "follow_up"]
        return self._render(self.settings.templates.final, lang, f=final.body, record=record,
                            initial=record.initial.body, follow_ups=follow_ups, filed_at=final.filed_at,
                            tenant_name=self._tenant_name(record.summary.tenant, lang))

    def report_html(self, record: ReportRecord, lang: Lang) -> str:
        """The final report once filed, else the initial report as last updated by its follow-ups."""
        if record.final is not None:
            return self.final_html(record, lang)
        return self.initial_html(current_initial(record), lang, reference=record.summary.reference,
                                 tenant=record.summary.tenant, filed_at=record.initial.filed_at,
                                 incident_id=record.summary.incident_id)

    def period_html(self, stats: PeriodStats, lang: Lang) -> str:
        return self._render(self.settings.templates.period, lang, s=stats,
                            tenant_name=self._tenant_name(stats.tenant, lang))

    def _tenant_name(self, tenant: str, lang: Lang) -> str:
        if tenant not in self.tree:
            return tenant
        config = self.tree.get(tenant)
        return config.name_en or config.name if lang == "en" else config.name

    def prefilled_initial(self, incident: Incident, now: datetime) -> dict[str, Any]:
        """Form 03 as far as govsoc knows it for an incident its sensors found (no agency report)."""
        tenant = self.tree.get(incident.tenant) if incident.tenant in self.tree else None
        parents = self.tree.ancestors(incident.tenant) if tenant else []
        asset = next((a for a in tenant.assets if a.id == incident.asset_id), None) if tenant else None
        name = tenant.name if tenant else incident.tenant
        system: dict[str, Any] = {"name": asset.name if asset else "", "purpose": ""}
        if asset is not None:
            system.update(domains=list(asset.hostnames), security_level=asset.security_level,
                          public_addresses=[a for a in asset.addresses if "/" not in a])
        return {
            "reporter": {"name": name}, "operating_unit": {
                "name": name, "owner_agency": self.tree.get(parents[0]).name if parents else name},
            "system": system,
            "incident": {"title": incident.title, "kind": "other", "description": incident.title,
                         "detected_at": incident.first_seen.isoformat(),
                         "current_status": _STATUS_OF_STATE.get(incident.state, "in_progress"),
                         "detection_method": "monitoring", "reported_to": []},
            "is_confidential": False, "help_requested": [], "reported_at": now.isoformat(),
        }


def current_initial(record: ReportRecord) -> dict[str, Any]:
    """The initial form with the newest follow-up's status and help requested applied."""
    form = dict(record.initial.body)
    for version in record.versions[1:]:
        if version.kind != "follow_up":
            continue
        form["incident"] = {**form["incident"], "current_status": version.body["current_status"]}
        if version.body.get("help_requested"):
            form["help_requested"] = version.body["help_requested"]
    return form


def to_pdf(html: str, base_url: str | None = None) -> bytes:
    """The HTML as PDF; WeasyPrint is imported here, so HTML rendering works without it."""
    from weasyprint import HTML  # heavy (Pango): loaded on the first PDF

    pdf: bytes = HTML(string=html, base_url=base_url).write_pdf()
    return pdf


# -- period statistics ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counted:
    key: str
    count: int
    label: str = ""


@dataclass(frozen=True, slots=True)
class TenantRow:
    tenant: str
    name: str
    incidents: int
    open: int
    critical_or_high: int
    sensors: int
    sensors_reporting: int


@dataclass(frozen=True, slots=True)
class PeriodStats:
    """Báo cáo định kỳ: the incidents of `tenant`'s subtree first seen in [start, end)."""

    tenant: str
    start: datetime
    end: datetime
    generated: datetime
    period_kind: Literal["six_monthly", "annual", "custom"]
    total: int
    by_kind: list[Counted]
    by_severity: list[Counted]
    by_state: list[Counted]
    resolved: int
    mean_hours_to_resolve: float | None
    median_hours_to_resolve: float | None
    top_rules: list[Counted]
    tenants: list[TenantRow] = field(default_factory=list)
    sensors: int = 0
    sensors_reporting: int = 0
    truncated: bool = False

    @property
    def last_day(self) -> date:
        """The period's last day, included (`end` is the midnight after it)."""
        return (self.end - timedelta(microseconds=1)).date()


def period_kind(start: datetime, end: datetime) -> Literal["six_monthly", "annual", "custom"]:
    days = (end - start) / timedelta(days=1)
    if 178 <= days <= 186:
        return "six_monthly"
    return "annual" if 364 <= days <= 367 else "custom"


def _incidents_in(store: IncidentStore, tree: TenantTree, tenant: str, start: datetime,
                  end: datetime) -> tuple[list[Incident], bool]:
    """The subtree's incidents first seen in [start, end), and whether the read stopped at the bound."""
    scope, found = tree.scope(tenant), list[Incident]()
    for offset in range(0, MAX_PERIOD_INCIDENTS, _PAGE):
        batch = store.incidents(scope, IncidentQuery(limit=_PAGE, offset=offset))
        found.extend(i for i in batch if start <= i.first_seen < end)
        if len(batch) < _PAGE:
            return found, False
    return found, True


def _kind_and_rule(store: IncidentStore, tree: TenantTree, incident: Incident) -> tuple[str, str]:
    """(detection kind, rule title) of an incident: `agency_report` for reported ones."""
    if incident.rule_id == AGENCY_REPORT_RULE:
        return "agency_report", "Báo cáo của cơ quan, đơn vị / Agency report"
    alerts = store.alerts(tree.scope(incident.tenant), AlertQuery(incident_id=incident.id, limit=1))
    return (alerts[0].kind.value, alerts[0].rule_title) if alerts else ("other", incident.title)


def _sensor_rows(tree: TenantTree, tenant: str, sensors: SensorStore | None,
                 start: datetime) -> dict[str, tuple[int, int]]:
    """tenant -> (sensors configured, sensors that reported a heartbeat since `start`)."""
    seen: Counter[str] = Counter()
    if sensors is not None:
        seen.update(b.tenant for b in sensors.latest_heartbeats(tree.scope(tenant)) if b.timestamp >= start)
    return {t: (len(tree.get(t).sensors), seen[t]) for t in tree.descendants(tenant)}


def period_stats(store: IncidentStore, tree: TenantTree, tenant: str, start: datetime, end: datetime, *,
                 sensors: SensorStore | None = None, now: datetime) -> PeriodStats:
    """Count the subtree's incidents of the period by kind, severity, state, rule and tenant."""
    incidents, truncated = _incidents_in(store, tree, tenant, start, end)
    kinds: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    for incident in incidents:
        kind, rule = _kind_and_rule(store, tree, incident)
        kinds[kind] += 1
        rules[rule] += 1
    hours = [(i.resolved - i.first_seen) / timedelta(hours=1) for i in incidents if i.resolved is not None]
    coverage = _sensor_rows(tree, tenant, sensors, start)
    rows = [TenantRow(t, tree.get(t).name, sum(1 for i in incidents if i.tenant == t),
                      sum(1 for i in incidents if i.tenant == t and i.state.is_open),
                      sum(1 for i in incidents if i.tenant == t and i.severity >= Severity.HIGH), *coverage[t])
            for t in tree.descendants(tenant)]
    severities = Counter(i.severity for i in incidents)
    states = Counter(i.state for i in incidents)
    return PeriodStats(
        tenant=tenant, start=start, end=end, generated=now, period_kind=period_kind(start, end),
        total=len(incidents), by_kind=[Counted(k, n) for k, n in kinds.most_common()],
        by_severity=[Counted(s.label, severities[s]) for s in sorted(Severity, reverse=True)],
        by_state=[Counted(s.value, states[s]) for s in IncidentState],
        resolved=len(hours), mean_hours_to_resolve=statistics.fmean(hours) if hours else None,
        median_hours_to_resolve=statistics.median(hours) if hours else None,
        top_rules=[Counted(r, n) for r, n in rules.most_common(10)], tenants=rows,
        sensors=sum(c[0] for c in coverage.values()), sensors_reporting=sum(c[1] for c in coverage.values()),
        truncated=truncated)
