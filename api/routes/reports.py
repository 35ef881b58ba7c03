"""Agency incident reports: file (initial, follow-ups, final), read, escalate, and print as documents.

- Filing needs the role agency_reporter, analyst, admin or national_coordinator; other roles answer
  403 before anything is looked up. Reading needs any role but sensor.
- Bodies are strict (unknown fields 422, naming the field); a choice code the configured lists do
  not hold, or a final report whose initial reference or date does not match, also answers 422
  with the field in `loc`. A final report closes its reference: a later version answers 409.
- A report (or incident) of a tenant outside the caller's subtree answers 404, exactly as one that
  does not exist; lists hold only the caller's subtree.
- Filing answers 201 with the acknowledgement (the reference number) at once; every step is
  audited by the service (`request.app.state.reports`, an `api.reports.ReportService`).
- Documents: `GET /incidents/{id}/report` prints the incident's initial report (or its final
  report, `kind=final`), prefilled from the incident when no agency reported it;
  `GET /reports/period` prints the statistics of a tenant's subtree for [from, to] (whole days in
  the deployment's zone, `to` included; by default the current half-year up to today).
  `format=html|pdf`, `lang=vi|en`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel

from api.auth import Principal, require_roles
from api.reports.form import (
    DeliveryPublic,
    FinalReport,
    FollowUpReport,
    ForwardRequest,
    InitialReport,
    ReportAck,
    ReportPublic,
    ReportsPublic,
    ReportSummaryPublic,
    ReportVersionPublic,
)
from api.reports.forward import ForwardError
from api.reports.render import ReportRenderer, current_initial, period_stats, to_pdf
from api.reports.service import ReportInvalid, ReportNotFound, ReportRefused, ReportService
from api.reports.store import Delivery, ReportRecord, ReportSummary
from config.settings import Role
from pipeline.records import utc_now
from pipeline.store.base import IncidentStore, SensorStore

FILERS = frozenset({Role.AGENCY_REPORTER, Role.ANALYST, Role.ADMIN, Role.NATIONAL_COORDINATOR})
READERS = frozenset(Role) - {Role.SENSOR}
Lang = Literal["vi", "en"]
Format = Literal["html", "pdf"]
EARLIEST, LATEST = date(1970, 1, 1), date(2999, 12, 31)
DOCUMENT_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"text/html": {}, "application/pdf": {}}, "description": "The document."}}

router = APIRouter(prefix="/api/v1", tags=["reports"])


Filer = Annotated[Principal, Depends(require_roles(*sorted(FILERS)))]
Reader = Annotated[Principal, Depends(require_roles(*sorted(READERS)))]


class ForwardPublic(BaseModel):
    recipient: str
    channel: str
    delivered: bool
    attempts: list[DeliveryPublic]


def _service(request: Request) -> ReportService:
    service: ReportService = request.app.state.reports
    return service


def _renderer(request: Request) -> ReportRenderer:
    """One renderer per app (its Jinja environment caches the compiled templates)."""
    renderer = getattr(request.app.state, "report_renderer", None)
    if not isinstance(renderer, ReportRenderer):
        service = _service(request)
        renderer = ReportRenderer(service.settings, service.tree)
        request.app.state.report_renderer = renderer
    return renderer


@contextmanager
def _http_errors() -> Iterator[None]:
    try:
        yield
    except ReportNotFound as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "report not found") from e
    except ReportInvalid as e:
        detail = [{"loc": ["body", *field.split(".")], "msg": reason, "type": "value_error"}
                  for field, reason in e.issues]
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from e
    except ReportRefused as e:
        raise HTTPException(status.HTTP_409_CONFLICT, str(e)) from e
    except ForwardError as e:
        detail = [{"loc": ["body", "recipient"], "msg": str(e), "type": "value_error"}]
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from e


def _delivery(d: Delivery) -> DeliveryPublic:
    return DeliveryPublic(recipient=d.recipient, channel=d.channel, attempt=d.attempt, at=d.at, ok=d.ok,
                          detail=d.detail)


def _summary(s: ReportSummary) -> ReportSummaryPublic:
    return ReportSummaryPublic(reference=s.reference, tenant=s.tenant, incident_id=s.incident_id, title=s.title,
                               created=s.created, updated=s.updated, versions=s.versions, is_final=s.is_final)


def _public(record: ReportRecord, deliveries: list[Delivery]) -> ReportPublic:
    history = [ReportVersionPublic.model_validate({"version": v.version, "kind": v.kind, "filed_at": v.filed_at,
                                                   "actor": v.actor, "body": v.body}) for v in record.versions]
    return ReportPublic(**_summary(record.summary).model_dump(), history=history,
                        deliveries=[_delivery(d) for d in deliveries])


@router.post("/reports", response_model=ReportAck, status_code=status.HTTP_201_CREATED)
def file_initial_report(request: Request, principal: Filer, body: InitialReport) -> ReportAck:
    """File an initial incident report (form 03); answers at once with the reference number."""
    with _http_errors():
        return _service(request).file_initial(principal, body)


@router.post("/reports/{reference}/follow-ups", response_model=ReportAck, status_code=status.HTTP_201_CREATED)
def file_follow_up(request: Request, principal: Filer, reference: str, body: FollowUpReport) -> ReportAck:
    with _http_errors():
        return _service(request).file_follow_up(principal, reference, body)


@router.post("/reports/{reference}/final", response_model=ReportAck, status_code=status.HTTP_201_CREATED)
def file_final_report(request: Request, principal: Filer, reference: str, body: FinalReport) -> ReportAck:
    """File the final report; the reference takes no more versions after it."""
    with _http_errors():
        return _service(request).file_final(principal, reference, body)


@router.post("/reports/{reference}/forward", response_model=ForwardPublic)
def forward_report(request: Request, principal: Filer, reference: str, body: ForwardRequest) -> ForwardPublic:
    """Escalate the report to a configured recipient; every delivery attempt is recorded."""
    with _http_errors():
        outcome = _service(request).forward(principal, reference, body.recipient)
    return ForwardPublic(recipient=outcome.recipient, channel=outcome.channel, delivered=outcome.delivered,
                         attempts=[_delivery(d) for d in outcome.attempts])


@router.get("/reports", response_model=ReportsPublic)
def list_reports(request: Request, principal: Reader, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                 offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> ReportsPublic:
    """Reports of the caller's tenant and those below it, most recently updated first."""
    found, total = _service(request).reports(principal.scope, limit, offset)
    return ReportsPublic(reports=[_summary(s) for s in found], total=total)


def _document(html: str, fmt: Format, filename: str) -> Response:
    if fmt == "html":
        return Response(html, media_type="text/html; charset=utf-8")
    return Response(to_pdf(html), media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{filename}.pdf"'})


@router.get("/reports/period", response_class=Response, responses=DOCUMENT_RESPONSES)
def period_report(
    request: Request, principal: Reader, start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None, tenant: str | None = None, format: Format = "html",
    lang: Lang = "vi",
) -> Response:
    """Six-monthly or annual statistics of a tenant's subtree (the caller's tenant by default);
    without `from`/`to`, the current half-year up to today."""
    service = _service(request)
    zone = ZoneInfo(service.settings.timezone)
    today = utc_now().astimezone(zone).date()
    end = end or today
    start = start or date(end.year, 1 if end.month <= 6 else 7, 1)
    tenant = tenant or principal.tenant
    if tenant not in service.tree or tenant not in principal.scope:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"tenant {tenant!r} not found")
    if end < start or start < EARLIEST or end > LATEST:
        reason = f"from and to are days from {EARLIEST} to {LATEST}, to not before from"
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            [{"loc": ["query", "to"], "msg": reason, "type": "value_error"}])
    since = datetime.combine(start, time(), zone)
    until = datetime.combine(end + timedelta(days=1), time(), zone)
    sensors: SensorStore | None = getattr(request.app.state, "sensors", None)
    stats = period_stats(service.incidents, service.tree, tenant, since, until, sensors=sensors, now=utc_now())
    html = _renderer(request).period_html(stats, lang)
    return _document(html, format, f"period-{tenant}-{start.isoformat()}-{end.isoformat()}")


@router.get("/reports/{reference}", response_model=ReportPublic)
def get_report(request: Request, principal: Reader, reference: str) -> ReportPublic:
    """The report with every version and delivery; 404 outside the caller's subtree."""
    service = _service(request)
    with _http_errors():
        record = service.report(principal.scope, reference)
    return _public(record, service.deliveries(principal.scope, reference))


@router.get("/incidents/{incident_id}/report", response_class=Response, responses=DOCUMENT_RESPONSES)
def incident_report(request: Request, principal: Reader, incident_id: str, format: Format = "html",
                    lang: Lang = "vi", kind: Literal["initial", "final"] = "initial") -> Response:
    """The incident's initial (or final) report as a document; prefilled when nobody reported it."""
    incidents: IncidentStore = request.app.state.incidents
    incident = incidents.incident(principal.scope, incident_id)
    if incident is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "incident not found")
    record = _service(request).store.report_of_incident(principal.scope, incident_id)
    renderer = _renderer(request)
    if kind == "final":
        if record is None or record.final is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no final report for this incident")
        return _document(renderer.final_html(record, lang), format, f"{record.summary.reference}-final")
    if record is None:
        form, reference, filed = renderer.prefilled_initial(incident, utc_now()), None, None
    else:
        form, reference, filed = current_initial(record), record.summary.reference, record.initial.filed_at
    html = renderer.initial_html(form, lang, reference=reference, tenant=incident.tenant, filed_at=filed,
                                 incident_id=incident.id)
    return _document(html, format, reference or f"incident-{incident.id}")
