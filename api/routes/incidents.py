"""Incidents and alerts, read within the caller's tenant subtree.

A sibling tenant's incident answers 404, exactly as one that does not exist.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request

from api.auth import CurrentPrincipal
from api.schemas import (
    AlertPublic,
    AlertsPublic,
    AuditPublic,
    IncidentDetailPublic,
    IncidentPublic,
    IncidentsPublic,
)
from pipeline.records import IncidentState, Severity
from pipeline.store.base import MAX_LIMIT, AlertQuery, IncidentQuery, IncidentStore

router = APIRouter(prefix="/api/v1", tags=["incidents"])

Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=MAX_LIMIT * 100)]


def _store(request: Request) -> IncidentStore:
    store: IncidentStore = request.app.state.incidents
    return store


@router.get("/incidents", response_model=IncidentsPublic)
def list_incidents(
    request: Request, principal: CurrentPrincipal,
    state: Annotated[list[IncidentState] | None, Query()] = None,
    min_severity: Annotated[str | None, Query(pattern="^(informational|low|medium|high|critical)$")] = None,
    rule_id: str | None = None, limit: Limit = 100, offset: Offset = 0,
) -> IncidentsPublic:
    store = _store(request)
    query = IncidentQuery(
        states=state, min_severity=Severity.from_label(min_severity) if min_severity else None,
        rule_id=rule_id, limit=limit, offset=offset,
    )
    incidents = store.incidents(principal.scope, query)
    return IncidentsPublic(incidents=[IncidentPublic.of(i) for i in incidents],
                           total=store.count_incidents(principal.scope, query))


@router.get("/incidents/{incident_id}", response_model=IncidentDetailPublic)
def get_incident(request: Request, principal: CurrentPrincipal, incident_id: str) -> IncidentDetailPublic:
    store = _store(request)
    incident = store.incident(principal.scope, incident_id)
    if incident is None:
        raise HTTPException(404, "incident not found")
    alerts = store.alerts(principal.scope, AlertQuery(incident_id=incident_id, limit=1000))
    audit = store.audit_trail(principal.scope, object_id=incident_id, limit=1000)
    return IncidentDetailPublic(
        **IncidentPublic.of(incident).model_dump(),
        alerts=[AlertPublic.of(a) for a in alerts], audit=[AuditPublic.of(r) for r in audit],
    )


@router.get("/alerts", response_model=AlertsPublic)
def list_alerts(
    request: Request, principal: CurrentPrincipal, rule_id: str | None = None,
    limit: Limit = 100, offset: Offset = 0,
) -> AlertsPublic:
    store = _store(request)
    query = AlertQuery(rule_id=rule_id, limit=limit, offset=offset)
    return AlertsPublic(alerts=[AlertPublic.of(a) for a in store.alerts(principal.scope, query)],
                        total=store.count_alerts(principal.scope, query))
