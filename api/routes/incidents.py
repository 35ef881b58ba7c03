"""Incidents and alerts, read and worked within the caller's tenant subtree.

- A sibling tenant's incident answers 404, exactly as one that does not exist.
- Changes (transition, assign, comment, a regulatory clock met) need the role analyst, admin or
  national_coordinator; any other role (auditor, agency_reporter, sensor) answers 403 before the
  incident is looked up, so a 403 says nothing about whether it exists.
- A transition the lifecycle refuses answers 409 with the allowed states; nothing is stored.
- Every change is audited by `IncidentLifecycle` with the values before and after.
- Suppressions (time-window exceptions) are made by the same roles, for the caller's tenant or one
  below it; `preview: true` answers how many of the last 30 days' alerts (at most `MAX_LIMIT`
  examined) one would have hidden, without saving it.
- The deadlines shown count down from the request's time; the settings come from
  `app.state.incident_settings` (the defaults when the app was built without them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status

from api.auth import EDITORS, READERS, CurrentPrincipal, Principal, require_roles
from api.schemas import (
    AlertPublic,
    AlertsPublic,
    AuditPublic,
    CommentCreate,
    CommentPublic,
    DeadlinePublic,
    IncidentAssign,
    IncidentDetailPublic,
    IncidentPublic,
    IncidentsPublic,
    IncidentTransition,
    Instant,
    StateChangePublic,
    SuppressionCreate,
    SuppressionPublic,
    SuppressionResult,
    SuppressionsPublic,
)
from config.settings import IncidentSettings
from config.tenants import TenantScope, TenantTree
from detections.incidents.clocks import incident_deadlines
from detections.incidents.lifecycle import IncidentLifecycle, IncidentNotFound, LifecycleError, UnknownClock
from detections.incidents.noise import preview_suppression, suppression_id
from pipeline.records import IncidentState, Severity, Suppression
from pipeline.store.base import MAX_LIMIT, AlertQuery, IncidentQuery, IncidentSort, IncidentStore

router = APIRouter(prefix="/api/v1", tags=["incidents"], dependencies=[Depends(require_roles(*READERS))])

Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=MAX_LIMIT * 100)]


def _store(request: Request) -> IncidentStore:
    store: IncidentStore = request.app.state.incidents
    return store


def _settings(request: Request) -> IncidentSettings:
    settings = getattr(request.app.state, "incident_settings", None)
    return settings if isinstance(settings, IncidentSettings) else IncidentSettings()


Editor = Annotated[Principal, Depends(require_roles(*EDITORS))]


@contextmanager
def _http_errors() -> Iterator[None]:
    """Lifecycle errors as HTTP answers: an unknown (or out of scope) incident or clock 404, refused 409."""
    try:
        yield
    except IncidentNotFound as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "incident not found") from e
    except UnknownClock as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(e)) from e
    except LifecycleError as e:
        raise HTTPException(status.HTTP_409_CONFLICT, str(e)) from e


def _lifecycle(request: Request) -> IncidentLifecycle:
    return IncidentLifecycle(_store(request), _settings(request))


@router.get("/incidents", response_model=IncidentsPublic)
def list_incidents(
    request: Request, principal: CurrentPrincipal,
    state: Annotated[list[IncidentState] | None, Query()] = None,
    min_severity: Annotated[str | None, Query(pattern="^(informational|low|medium|high|critical)$")] = None,
    rule_id: Annotated[str | None, Query(max_length=200)] = None,
    assignee: Annotated[str | None, Query(max_length=100, description="'' for incidents nobody owns")] = None,
    tenant: Annotated[str | None, Query(max_length=100, description="only this tenant and below")] = None,
    since: Instant | None = None, until: Instant | None = None,
    sort: IncidentSort = IncidentSort.LAST_SEEN, limit: Limit = 100, offset: Offset = 0,
) -> IncidentsPublic:
    store = _store(request)
    tree: TenantTree = request.app.state.tree
    query = IncidentQuery(
        states=state, min_severity=Severity.from_label(min_severity) if min_severity else None,
        rule_id=rule_id, assignee=assignee, since=since, until=until, sort=sort, limit=limit, offset=offset,
        # a tenant outside the caller's scope (or unknown) selects nothing, and says nothing about it
        within=(tree.scope(tenant) if tenant in tree else TenantScope(root=tenant, tenant_ids=frozenset()))
        if tenant is not None else None,
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
    now = datetime.now(UTC)
    return IncidentDetailPublic(
        **IncidentPublic.of(incident).model_dump(),
        alerts=[AlertPublic.of(a) for a in alerts], audit=[AuditPublic.of(r) for r in audit],
        comments=[CommentPublic.of(c) for c in store.comments(principal.scope, incident_id, limit=1000)],
        state_history=[StateChangePublic.of(c) for c in store.state_history(principal.scope, incident_id)],
        deadlines=[DeadlinePublic.of(d, now) for d in incident_deadlines(incident, _settings(request))],
    )


@router.post("/incidents/{incident_id}/transition", response_model=IncidentPublic)
def transition_incident(request: Request, principal: Editor, incident_id: str,
                        body: IncidentTransition) -> IncidentPublic:
    """Move the incident to another state (409 if the lifecycle does not allow it)."""
    with _http_errors():
        incident = _lifecycle(request).transition(principal.scope, incident_id, body.to, actor=principal.name,
                                                  now=datetime.now(UTC), reason=body.reason)
    return IncidentPublic.of(incident)


@router.post("/incidents/{incident_id}/assign", response_model=IncidentPublic)
def assign_incident(request: Request, principal: Editor, incident_id: str, body: IncidentAssign) -> IncidentPublic:
    with _http_errors():
        incident = _lifecycle(request).assign(principal.scope, incident_id, body.assignee, actor=principal.name,
                                              now=datetime.now(UTC))
    return IncidentPublic.of(incident)


@router.post("/incidents/{incident_id}/comments", response_model=CommentPublic, status_code=status.HTTP_201_CREATED)
def comment_incident(request: Request, principal: Editor, incident_id: str, body: CommentCreate) -> CommentPublic:
    with _http_errors():
        comment = _lifecycle(request).comment(principal.scope, incident_id, body.text, actor=principal.name,
                                              now=datetime.now(UTC))
    return CommentPublic.of(comment)


@router.post("/incidents/{incident_id}/clocks/{clock_id}/met", response_model=IncidentPublic)
def mark_clock_met(request: Request, principal: Editor, incident_id: str, clock_id: str) -> IncidentPublic:
    """Record that a regulatory deadline was met now (the report was sent, the receipt acknowledged)."""
    with _http_errors():
        incident = _lifecycle(request).mark_clock_met(principal.scope, incident_id, clock_id,
                                                      actor=principal.name, now=datetime.now(UTC))
    return IncidentPublic.of(incident)


@router.get("/alerts", response_model=AlertsPublic)
def list_alerts(
    request: Request, principal: CurrentPrincipal, rule_id: str | None = None,
    limit: Limit = 100, offset: Offset = 0,
) -> AlertsPublic:
    store = _store(request)
    query = AlertQuery(rule_id=rule_id, limit=limit, offset=offset)
    return AlertsPublic(alerts=[AlertPublic.of(a) for a in store.alerts(principal.scope, query)],
                        total=store.count_alerts(principal.scope, query))


PREVIEW_WINDOW = timedelta(days=30)


@router.get("/suppressions", response_model=SuppressionsPublic)
def list_suppressions(request: Request, principal: CurrentPrincipal, active: bool = True) -> SuppressionsPublic:
    """Suppressions of the caller's tenants, newest first; only unexpired ones unless `active=false`."""
    found = _store(request).suppressions(principal.scope, active_at=datetime.now(UTC) if active else None)
    return SuppressionsPublic(suppressions=[SuppressionPublic.of(s) for s in found])


@router.post("/suppressions", response_model=SuppressionResult)
def create_suppression(request: Request, principal: Editor, body: SuppressionCreate,
                       response: Response) -> SuppressionResult:
    """Preview or save a suppression; 201 when saved, 200 for a preview. Saving is audited."""
    tree: TenantTree = request.app.state.tree
    tenant = body.tenant or principal.tenant
    if tenant not in tree or tenant not in principal.scope:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"tenant {tenant!r} not found")
    now, store = datetime.now(UTC), _store(request)
    draft = Suppression(id="", tenant=tenant, reason=body.reason, created_by=principal.name, created=now,
                        expires=body.expires, rule_id=body.rule_id, entity=dict(body.entity))
    suppression = dataclasses.replace(draft, id=suppression_id(draft))
    recent = store.alerts(tree.scope(tenant), AlertQuery(start=now - PREVIEW_WINDOW, rule_id=body.rule_id,
                                                         limit=MAX_LIMIT))
    preview = dataclasses.replace(suppression, expires=None)  # would it have hidden them, had it existed then
    result = SuppressionResult(suppression=SuppressionPublic.of(suppression), examined=len(recent),
                               would_hide=preview_suppression(preview, recent, tree), saved=not body.preview)
    if not body.preview:
        store.save_suppression(suppression)
        store.append_audit(actor=principal.name, tenant=tenant, action="suppression.created",
                           object_type="suppression", object_id=suppression.id,
                           details={"before": None, "after": result.suppression.model_dump(mode="json"),
                                    "would_hide": result.would_hide})
        response.status_code = status.HTTP_201_CREATED
    return result
