"""Threat intelligence: indicators shared down the tenant tree by TLP, sightings up, exports out.

- Reads go through `IntelStore` (`request.app.state.intel`) with the caller's scope, so what a
  caller may not see (a sibling's TLP:AMBER indicator, TLP:RED not addressed to it) answers 404,
  exactly as an id that does not exist, and never appears in a list.
- Publishing an indicator or importing a bundle needs the role analyst, admin or
  national_coordinator (403 before anything is read). The publishing tenant is the caller's own
  or one below it; recipients (TLP:RED) and widened tenants (TLP:AMBER) must exist (422).
- An import (`format: auto|stix|misp`) publishes what it could read and answers the issues of
  what it skipped, each naming the object; nothing is published when nothing could be read.
- An incident's export (`stix` bundle or `misp` event) holds the indicators behind its intel
  alerts that the caller may see; an incident outside the scope answers 404.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from api.auth import READERS, CurrentPrincipal, Principal, require_roles
from api.schemas import Instant
from config.settings import Role
from config.tenants import TenantTree
from detections.intel import (
    ImportOptions,
    Indicator,
    IndicatorQuery,
    IndicatorType,
    IntelError,
    IntelStore,
    SightingSummary,
    Tlp,
    export_misp,
    export_stix,
    import_document,
    import_misp,
    import_stix,
    indicator_id_of,
)
from detections.intel.model import make_indicator
from pipeline.store.base import MAX_LIMIT, AlertQuery, IncidentStore

router = APIRouter(prefix="/api/v1/intel", tags=["intel"], dependencies=[Depends(require_roles(*READERS))])

Publisher = Annotated[Principal, Depends(require_roles(Role.ANALYST, Role.ADMIN, Role.NATIONAL_COORDINATOR))]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=MAX_LIMIT * 100)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IndicatorPublic(_Strict):
    id: str
    type: IndicatorType
    value: str
    publisher: str
    source: str
    tlp: Tlp
    confidence: int
    valid_from: datetime | None
    valid_until: datetime | None
    name: str
    description: str
    kill_chain: list[str]
    labels: list[str]
    context: list[str]
    recipients: list[str]
    shared_with: list[str]
    stix_id: str | None

    @classmethod
    def of(cls, indicator: Indicator) -> IndicatorPublic:
        return cls.model_validate(indicator.to_dict())


class IndicatorsPublic(_Strict):
    indicators: list[IndicatorPublic]
    total: int


class SightingPublic(_Strict):
    indicator_id: str
    indicator_type: IndicatorType
    indicator_value: str
    tenant: str
    first_seen: datetime
    last_seen: datetime
    count: int

    @classmethod
    def of(cls, s: SightingSummary) -> SightingPublic:
        return cls(indicator_id=s.indicator.id, indicator_type=s.indicator.type, indicator_value=s.indicator.value,
                   tenant=s.tenant, first_seen=s.first_seen, last_seen=s.last_seen, count=s.count)


class SightingsPublic(_Strict):
    sightings: list[SightingPublic]


class IndicatorDetailPublic(IndicatorPublic):
    sightings: list[SightingPublic]


class IndicatorCreate(_Strict):
    type: IndicatorType
    value: str = Field(min_length=1, max_length=4096)
    tenant: str | None = None  # the publishing tenant: the caller's by default
    source: str = Field(default="", max_length=200)
    tlp: Tlp = Tlp.AMBER
    confidence: int = Field(default=50, ge=0, le=100)
    valid_from: Instant | None = None
    valid_until: Instant | None = None
    name: str = Field(default="", max_length=500)
    description: str = Field(default="", max_length=5000)
    kill_chain: list[str] = Field(default_factory=list, max_length=50)
    labels: list[str] = Field(default_factory=list, max_length=50)
    recipients: list[str] = Field(default_factory=list, max_length=200)
    shared_with: list[str] = Field(default_factory=list, max_length=200)


class BundleImport(_Strict):
    format: Literal["auto", "stix", "misp"] = "auto"
    document: dict[str, Any]
    tenant: str | None = None
    source: str = Field(default="", max_length=200)
    tlp: Tlp = Tlp.AMBER  # for objects that carry no marking of their own
    recipients: list[str] = Field(default_factory=list, max_length=200)
    shared_with: list[str] = Field(default_factory=list, max_length=200)


class ImportOutcome(_Strict):
    published: int
    context_objects: int
    issues: list[str]


def _store(request: Request) -> IntelStore:
    store: IntelStore = request.app.state.intel
    return store


def _publisher(request: Request, principal: Principal, tenant: str | None, named: list[str]) -> str:
    """The publishing tenant (404 outside the caller's scope); named tenants must exist (422)."""
    tree: TenantTree = request.app.state.tree
    publisher = tenant or principal.tenant
    if publisher not in tree or publisher not in principal.scope:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"tenant {publisher!r} not found")
    unknown = [t for t in named if t not in tree]
    if unknown:
        raise HTTPException(422, f"unknown tenants: {', '.join(unknown)}")
    return publisher


@router.get("/indicators", response_model=IndicatorsPublic)
def list_indicators(
    request: Request, principal: CurrentPrincipal, type: IndicatorType | None = None,  # noqa: A002 - the API's word
    value: str | None = None, publisher: str | None = None, active: bool = False,
    limit: Limit = 100, offset: Offset = 0,
) -> IndicatorsPublic:
    """The indicators shared with the caller; `active=true` keeps those valid now."""
    query = IndicatorQuery(type=type, value=value, publisher=publisher,
                           active_at=datetime.now(UTC) if active else None, limit=limit, offset=offset)
    store = _store(request)
    return IndicatorsPublic(indicators=[IndicatorPublic.of(i) for i in store.indicators(principal.scope, query)],
                            total=store.count_indicators(principal.scope, query))


@router.get("/indicators/{indicator_id}", response_model=IndicatorDetailPublic)
def get_indicator(request: Request, principal: CurrentPrincipal, indicator_id: str) -> IndicatorDetailPublic:
    store = _store(request)
    found = store.indicator(principal.scope, indicator_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "indicator not found")
    sightings = store.sightings(principal.scope, indicator_id=indicator_id, limit=1000)
    return IndicatorDetailPublic(**IndicatorPublic.of(found).model_dump(),
                                 sightings=[SightingPublic.of(s) for s in sightings])


@router.post("/indicators", response_model=IndicatorPublic, status_code=status.HTTP_201_CREATED)
def publish_indicator(request: Request, principal: Publisher, body: IndicatorCreate) -> IndicatorPublic:
    """Publish one indicator at the caller's tenant (or one below it); the same one again is an update."""
    publisher = _publisher(request, principal, body.tenant, [*body.recipients, *body.shared_with])
    options = ImportOptions(publisher=publisher, source=body.source or f"govsoc:{publisher}")
    try:
        indicator = make_indicator(
            options, body.type, body.value, tlp=body.tlp, confidence=body.confidence,
            valid_from=body.valid_from, valid_until=body.valid_until, name=body.name,
            description=body.description, kill_chain=tuple(body.kill_chain), labels=tuple(body.labels),
            recipients=tuple(body.recipients), shared_with=tuple(body.shared_with))
        _store(request).publish([indicator])
    except IntelError as e:
        raise HTTPException(422, str(e)) from e
    return IndicatorPublic.of(indicator)


@router.post("/imports", response_model=ImportOutcome)
def import_bundle(request: Request, principal: Publisher, body: BundleImport) -> ImportOutcome:
    """Publish the indicators of a STIX 2.1 bundle or a MISP event; skipped objects come back as issues."""
    publisher = _publisher(request, principal, body.tenant, [*body.recipients, *body.shared_with])
    options = ImportOptions(publisher=publisher, source=body.source, default_tlp=body.tlp,
                            recipients=tuple(body.recipients), shared_with=tuple(body.shared_with), path="document")
    reader = {"auto": import_document, "stix": import_stix, "misp": import_misp}[body.format]
    result = reader(body.document, options)
    if not result.indicators and result.issues:
        raise HTTPException(422, [str(i) for i in result.issues[:100]])
    try:
        published = _store(request).publish(result.indicators)
    except IntelError as e:
        raise HTTPException(422, str(e)) from e
    return ImportOutcome(published=published, context_objects=result.context_objects,
                         issues=[str(i) for i in result.issues])


@router.get("/sightings", response_model=SightingsPublic)
def list_sightings(request: Request, principal: CurrentPrincipal, indicator_id: str | None = None,
                   limit: Limit = 100, offset: Offset = 0) -> SightingsPublic:
    """Sightings at the caller's tenants, and of indicators they published; newest first."""
    found = _store(request).sightings(principal.scope, indicator_id=indicator_id, limit=limit, offset=offset)
    return SightingsPublic(sightings=[SightingPublic.of(s) for s in found])


@router.get("/incidents/{incident_id}/export")
def export_incident(request: Request, principal: CurrentPrincipal, incident_id: str,
                    format: Literal["stix", "misp"] = "stix") -> dict[str, Any]:  # noqa: A002 - the API's word
    """The incident's indicators (those the caller may see) as a STIX 2.1 bundle or a MISP event."""
    incidents: IncidentStore = request.app.state.incidents
    incident = incidents.incident(principal.scope, incident_id)
    if incident is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "incident not found")
    alerts = incidents.alerts(principal.scope, AlertQuery(incident_id=incident_id, limit=MAX_LIMIT))
    store = _store(request)
    ids = sorted({i for i in (indicator_id_of(a) for a in alerts) if i is not None})
    indicators = [found for i in ids if (found := store.indicator(principal.scope, i)) is not None]
    if format == "misp":
        return export_misp(indicators, f"govsoc incident {incident.id}: {incident.title}")
    return export_stix(indicators)
