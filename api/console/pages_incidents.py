"""Console pages for incidents: the queue, one incident, and the changes analysts make from them.

- `GET /incidents`: the queue (`api.console.queue`); `POST /incidents/bulk`: assign, close or mark
  false positive several incidents with one reason; each goes through `IncidentLifecycle`, so
  every change is checked and audited like one made through the API.
- `GET /incidents/{id}`: the incident page (`api.console.evidence`); another tenant's incident
  answers 404 like a missing one.
- `POST /incidents/{id}/transition|assign|comment` and
  `POST /incidents/{id}/runs/{run}/steps/{step}/approve|reject`: one change each, then 303 back
  to the page with a message code (Post/Redirect/Get, so a reload never repeats a change).
- Changes need the roles the API asks for (`api.routes.incidents.EDITORS`,
  `api.auth.EDITORS`); any other role answers 403 before the incident is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.auth import EDITORS, Principal
from api.console.evidence import is_decidable, load_incident
from api.console.queue import PAGE_SIZE, SORTS, QueueFilters, load_queue, queue_scope
from api.console.render import renderer
from api.console.session import PagePrincipal, read_form
from config.errors import GovsocError
from config.settings import IncidentSettings
from config.tenants import TenantTree
from detections.incidents.lifecycle import IncidentLifecycle, IncidentNotFound, LifecycleError
from pipeline.records import IncidentState, Severity, utc_now
from pipeline.store.base import IncidentStore
from playbooks.runner import PlaybookRunner

router = APIRouter(include_in_schema=False)

S = IncidentState
CLOSE_PATH: Mapping[IncidentState, tuple[IncidentState, ...]] = {
    S.NEW: (S.IN_PROGRESS, S.RESOLVED, S.CLOSED), S.TRIAGE: (S.IN_PROGRESS, S.RESOLVED, S.CLOSED),
    S.IN_PROGRESS: (S.RESOLVED, S.CLOSED), S.CONTAINED: (S.RESOLVED, S.CLOSED), S.RESOLVED: (S.CLOSED,),
}
MAX_BULK = 200


def _settings(request: Request) -> IncidentSettings:
    settings = getattr(request.app.state, "incident_settings", None)
    return settings if isinstance(settings, IncidentSettings) else IncidentSettings()


def _lifecycle(request: Request) -> IncidentLifecycle:
    return IncidentLifecycle(request.app.state.incidents, _settings(request))


def _require(principal: Principal, roles: frozenset[object]) -> None:
    if principal.role not in roles:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"the role {principal.role.value} may not do this")


def _back(path: str, **message: str | int) -> RedirectResponse:
    query = urlencode({k: v for k, v in message.items() if v != ""})
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=status.HTTP_303_SEE_OTHER)


@router.get("/incidents", response_class=HTMLResponse)
def queue_page(request: Request, principal: PagePrincipal) -> Response:
    tree: TenantTree = request.app.state.tree
    params = dict(request.query_params)
    filters = QueueFilters.from_query(params, request.query_params.getlist("state"))
    store: IncidentStore = request.app.state.incidents
    scope = queue_scope(tree, principal.scope, filters.tenant)
    page = load_queue(store, scope, filters, _settings(request), datetime.now(UTC))
    tenants = [t for t in tree if t.id in principal.scope]
    base = [(k, v) for k, v in request.query_params.multi_items() if k not in ("page", "msg", "ok", "refused")]
    return renderer(request).page(request, "queue.html", {
        "page": page, "filters": filters, "tenants": tenants, "states": list(IncidentState),
        "severities": [s.label for s in Severity], "sorts": SORTS, "page_size": PAGE_SIZE,
        "base_query": urlencode(base), "now": datetime.now(UTC), "can_edit": principal.role in EDITORS,
        "message": params.get("msg", ""), "ok": params.get("ok", ""), "refused": params.get("refused", ""),
    }, principal=principal)


def _close(store: IncidentStore, lifecycle: IncidentLifecycle, principal: Principal, incident_id: str,
           reason: str) -> None:
    """Walk the lifecycle to closed (through in progress and resolved), each step with `reason`."""
    incident = store.incident(principal.scope, incident_id)
    if incident is None:
        raise IncidentNotFound(incident_id)
    path = CLOSE_PATH.get(incident.state)
    if path is None:
        raise LifecycleError(f"incident {incident_id!r} is {incident.state.value}: nothing to close")
    for to in path:
        lifecycle.transition(principal.scope, incident_id, to, actor=principal.name, now=utc_now(), reason=reason)


@router.post("/incidents/bulk")
async def bulk_action(request: Request, principal: PagePrincipal) -> Response:
    _require(principal, EDITORS)
    form = await read_form(request)
    ids, action = form.all("incident")[:MAX_BULK], form.get("action")
    reason, assignee = form.get("reason").strip()[:4000], form.get("assignee").strip()[:200]
    back = form.get("back") if form.get("back").startswith("/incidents") else "/incidents"
    back = back.split("?")[0]
    if not ids or action not in ("assign", "close", "false_positive"):
        return _back(back, msg="bulk_nothing")
    if not reason or (action == "assign" and not assignee):
        return _back(back, msg="bulk_reason")
    lifecycle, done, refused = _lifecycle(request), 0, 0
    for incident_id in ids:
        try:
            if action == "assign":
                lifecycle.assign(principal.scope, incident_id, assignee, actor=principal.name, now=utc_now())
                lifecycle.comment(principal.scope, incident_id, reason, actor=principal.name, now=utc_now())
            elif action == "close":
                _close(request.app.state.incidents, lifecycle, principal, incident_id, reason)
            else:
                lifecycle.transition(principal.scope, incident_id, S.FALSE_POSITIVE, actor=principal.name,
                                     now=utc_now(), reason=reason)
            done += 1
        except LifecycleError:
            refused += 1
    return _back(back, msg="bulk_done", ok=done, refused=refused)


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
def incident_page(request: Request, principal: PagePrincipal, incident_id: str) -> Response:
    runner: PlaybookRunner | None = getattr(request.app.state, "playbook_runner", None)
    view = load_incident(request.app.state.incidents, request.app.state.events, runner, _settings(request),
                         principal, incident_id)
    if view is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "incident not found")
    params = request.query_params
    return renderer(request).page(request, "incident.html", {
        "view": view, "i": view.incident, "now": datetime.now(UTC), "is_decidable": is_decidable,
        "can_edit": principal.role in EDITORS, "can_decide": principal.role in EDITORS,
        "message": params.get("msg", ""), "error": params.get("err", "")[:300],
    }, principal=principal)


@router.post("/incidents/{incident_id}/{action}")
async def change_incident(request: Request, principal: PagePrincipal, incident_id: str, action: str) -> Response:
    if action not in ("transition", "assign", "comment"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown action")
    _require(principal, EDITORS)
    form, lifecycle, page = await read_form(request), _lifecycle(request), f"/incidents/{incident_id}"
    try:
        if action == "comment":
            lifecycle.comment(principal.scope, incident_id, form.get("text")[:20_000], actor=principal.name,
                              now=utc_now())
        elif action == "assign":
            lifecycle.assign(principal.scope, incident_id, form.get("assignee").strip()[:200] or None,
                             actor=principal.name, now=utc_now())
        else:
            to = form.get("to")
            if to not in IncidentState.__members__.values():
                return _back(page, msg="refused")
            lifecycle.transition(principal.scope, incident_id, IncidentState(to), actor=principal.name,
                                 now=utc_now(), reason=form.get("reason").strip()[:4000])
    except IncidentNotFound as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "incident not found") from e
    except LifecycleError as e:
        return _back(page, msg="refused", err=str(e))
    return _back(page, msg=f"{action}_done")


@router.post("/incidents/{incident_id}/runs/{run_id}/steps/{step_id}/{verdict}")
async def decide_step(request: Request, principal: PagePrincipal, incident_id: str, run_id: str, step_id: str,
                      verdict: str) -> Response:
    if verdict not in ("approve", "reject"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown action: use approve or reject")
    runner: PlaybookRunner | None = getattr(request.app.state, "playbook_runner", None)
    run = runner.runs.run(run_id) if runner else None
    if runner is None or run is None or run.tenant not in principal.scope or run.incident_id != incident_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "run not found")
    _require(principal, EDITORS)
    form, page = await read_form(request), f"/incidents/{incident_id}"
    try:
        if verdict == "approve":
            runner.approve(run_id, step_id, principal.name, principal.role.value, utc_now(), tenant=principal.tenant)
        else:
            runner.reject(run_id, step_id, principal.name, principal.role.value, utc_now(),
                          form.get("reason").strip()[:4000])
    except GovsocError as e:
        return _back(page, msg="refused", err=str(e))
    return _back(page, msg=f"{verdict}_done")
