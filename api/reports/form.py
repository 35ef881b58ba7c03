"""The agency incident report forms as strict models: the initial report (national form 03), the
follow-up report and the final report, plus the answers the API gives about them.

In: JSON bodies from an agency's system or a person. Out: validated models the service stores
as they came (`model_dump(mode="json")`), so a stored report reads back into the same model.

Contract:
- Unknown fields are refused (`extra="forbid"`) and every text is bounded; pydantic's error
  `loc` names the field (`system.public_addresses.1`).
- Times are timezone-aware; dates print in the deployment's zone (dd/mm/yyyy HH:MM).
- Choice fields hold codes; which codes exist is configuration (`config.reports.FormChoices`),
  checked by `choice_issues` against the configured lists, each issue naming its field.
"""

from __future__ import annotations

import ipaddress
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from config.reports import FormChoices

Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300,
                                         pattern=r"^[^\x00-\x1f\x7f]*$")]  # one line: no control characters
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000)]
OptionalText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20_000)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9+() .-]{3,30}$")]
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Domain = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, max_length=253,
                                          pattern=r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")]
Code = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Reference = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9]{0,9}-[0-9]{4}-[0-9]{6}$")]
SecurityLevel = Annotated[int, Field(ge=1, le=5)]


def _plausible(value: datetime) -> datetime:
    if not 1970 <= value.year <= 2999:  # also keeps zone conversions of the documents in range
        raise ValueError("a time between 1970 and 2999")
    return value


When = Annotated[AwareDatetime, AfterValidator(_plausible)]


class FormModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ContactPerson(FormModel):
    """Người liên hệ: who the coordinator calls back."""

    name: Short
    position: Short | None = None
    phone: Phone
    email: Email


class ReporterOrganisation(FormModel):
    """Đơn vị báo cáo sự cố."""

    name: Short
    address: Short
    phone: Phone
    email: Email
    contact: ContactPerson


class OperatingUnit(FormModel):
    """Đơn vị vận hành hệ thống thông tin, and its governing agency (cơ quan chủ quản)."""

    name: Short
    address: Short | None = None
    phone: Phone | None = None
    email: Email | None = None
    owner_agency: Short


class AffectedSystem(FormModel):
    """Hệ thống thông tin bị sự cố, as form 03 describes it."""

    name: Short
    domains: list[Domain] = Field(default_factory=list, max_length=100)
    public_addresses: list[str] = Field(default_factory=list, max_length=100)
    security_level: SecurityLevel
    security_provider: Short | None = None
    connectivity_provider: Short | None = None
    operating_systems: list[Short] = Field(default_factory=list, max_length=50)
    services: list[Code] = Field(default_factory=list, max_length=50)
    services_other: Short | None = None
    security_measures: list[Code] = Field(default_factory=list, max_length=50)
    security_measures_other: Short | None = None
    purpose: Short

    @field_validator("public_addresses")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        out = []
        for index, item in enumerate(value):
            try:
                out.append(str(ipaddress.ip_address(item.strip())))
            except ValueError as e:
                raise ValueError(f"item {index}: not an IP address: {item!r}") from e
        return out


class IncidentFacts(FormModel):
    """Thông tin về sự cố: what happened, when it was found, how, and who already knows."""

    title: Short
    kind: Code
    description: Text
    detected_at: When
    current_status: Code
    detection_method: Code
    detection_method_other: Short | None = None
    reported_to: list[Code] = Field(default_factory=list, max_length=20)
    reported_to_other: Short | None = None


class InitialReport(FormModel):
    """Báo cáo ban đầu sự cố (form 03). `incident_id` links an incident the reporter already sees."""

    reporter: ReporterOrganisation
    operating_unit: OperatingUnit
    system: AffectedSystem
    incident: IncidentFacts
    is_confidential: bool = False
    help_requested: list[Code] = Field(default_factory=list, max_length=20)
    help_details: OptionalText = ""
    reported_at: When
    incident_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")] | None = None


class FollowUpReport(FormModel):
    """A follow-up on an open report: where the response stands now."""

    reported_at: When
    current_status: Code
    update: Text
    actions_taken: OptionalText = ""
    help_requested: list[Code] = Field(default_factory=list, max_length=20)
    contact: ContactPerson | None = None


class Attachment(FormModel):
    """A document attached to the final report: its logs, its response plan, anything else."""

    name: Short
    kind: Literal["logs", "response_plan", "other"]
    media_type: Annotated[str, StringConstraints(pattern=r"^[a-z]+/[a-z0-9.+-]+$")] = "text/plain"
    content: Annotated[str, StringConstraints(max_length=1_000_000)] = ""


class FinalReport(FormModel):
    """Báo cáo kết thúc ứng cứu sự cố, on the initial report's reference."""

    initial_reference: Reference
    initial_date: Annotated[date, Field(ge=date(1970, 1, 1), le=date(2999, 12, 31))]
    reporter: ReporterOrganisation
    handling: Text
    resolution: Text
    resolved_at: When
    damage: OptionalText = ""
    proposals: OptionalText = ""
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)
    reported_at: When


ReportKind = Literal["initial", "follow_up", "final"]
FORM_OF_KIND: dict[str, type[FormModel]] = {"initial": InitialReport, "follow_up": FollowUpReport, "final": FinalReport}
"""The model each stored version's body reads back into, by its kind."""


def _unknown(value: str, known: frozenset[str]) -> str:
    return f"unknown choice {value!r} (known: {', '.join(sorted(known))})"


def _checks(form: FormModel) -> list[tuple[str, str | list[str], str]]:
    """(field path, the value or list of values, the choice list it comes from) of a form."""
    if isinstance(form, InitialReport):
        facts, system = form.incident, form.system
        return [("incident.kind", facts.kind, "incident_kind"),
                ("incident.current_status", facts.current_status, "current_status"),
                ("incident.detection_method", facts.detection_method, "detection_method"),
                ("incident.reported_to", facts.reported_to, "reported_to"),
                ("system.services", system.services, "services"),
                ("system.security_measures", system.security_measures, "security_measures"),
                ("help_requested", form.help_requested, "help_requested")]
    if isinstance(form, FollowUpReport):
        return [("current_status", form.current_status, "current_status"),
                ("help_requested", form.help_requested, "help_requested")]
    return []


def choice_issues(form: FormModel, choices: FormChoices) -> list[tuple[str, str]]:
    """(field path, reason) for every choice code the configured lists do not hold; [] when all do."""
    issues: list[tuple[str, str]] = []
    for path, value, list_name in _checks(form):
        known = choices.codes(list_name)
        if isinstance(value, str):
            if value not in known:
                issues.append((path, _unknown(value, known)))
            continue
        issues.extend((f"{path}.{i}", _unknown(v, known)) for i, v in enumerate(value) if v not in known)
    return issues


class ReportAck(BaseModel):
    """Xác nhận: the coordinator's receipt of one report version, given at once."""

    reference: str
    version: int
    kind: ReportKind
    tenant: str
    incident_id: str
    acknowledged_at: datetime
    acknowledged_by: str
    message_vi: str
    message_en: str


class ReportVersionPublic(BaseModel):
    version: int
    kind: ReportKind
    filed_at: datetime
    actor: str
    body: InitialReport | FollowUpReport | FinalReport


class DeliveryPublic(BaseModel):
    recipient: str
    channel: str
    attempt: int
    at: datetime
    ok: bool
    detail: str


class ReportSummaryPublic(BaseModel):
    reference: str
    tenant: str
    incident_id: str
    title: str
    created: datetime
    updated: datetime
    versions: int
    is_final: bool


class ReportsPublic(BaseModel):
    reports: list[ReportSummaryPublic]
    total: int


class ReportPublic(ReportSummaryPublic):
    history: list[ReportVersionPublic]
    deliveries: list[DeliveryPublic]


class ForwardRequest(FormModel):
    """Escalate a report to one configured recipient (`config.reports.ReportSettings.recipients`)."""

    recipient: Code


def dump(form: FormModel) -> dict[str, Any]:
    return form.model_dump(mode="json")
