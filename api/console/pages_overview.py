"""Console pages that read without changing: event search, dashboard, sensors, rules.

- `GET /events`: time range (in the user's zone), `field=<ecs.name>:<value>` filters (as the API
  takes them), free text, paging; every shown value links to a new search on that value (pivot).
  A query the store refuses (bad full-text syntax) shows its reason instead of failing the page.
- `GET /dashboard`: `api.console.overview.load_dashboard` for the caller's scope.
- `GET /sensors`: the fleet of the caller's tenants with each sensor's health.
- `GET /rules`: the loaded Sigma rules with their hits in scope and the active exceptions
  (suppressions). Enabling or disabling a rule has no API yet, so the page shows rules read-only.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.console.evidence import event_view
from api.console.i18n import Formatter
from api.console.overview import load_dashboard, rule_rows
from api.console.render import renderer
from api.console.services import load_services
from api.console.session import PagePrincipal
from config.errors import GovsocError
from config.settings import Role, SensorWatchSettings
from config.tenants import TenantTree
from config.watch import ServiceWatchSettings
from detections.sensor_watch import sensor_statuses
from detections.sigma.manage import RuleService, UnknownRule
from pipeline.records import utc_now
from pipeline.store.base import MAX_LIMIT, EventQuery, EventStore, IncidentStore, SensorStore

router = APIRouter(include_in_schema=False)

EVENTS_PAGE = 50
MAX_FIELD_FILTERS = 20


def _field_filters(pairs: list[str]) -> tuple[dict[str, str], list[str]]:
    """`name:value` pairs as a dict, and the pairs that were kept (malformed ones are dropped)."""
    fields: dict[str, str] = {}
    for pair in pairs[:MAX_FIELD_FILTERS]:
        name, sep, value = pair.partition(":")
        if sep and name.strip():
            fields[name.strip()] = value
    return fields, [f"{k}:{v}" for k, v in fields.items()]


def _page_number(text: str) -> int:
    try:
        return max(1, min(int(text), MAX_LIMIT * 100 // EVENTS_PAGE))
    except ValueError:
        return 1


@router.get("/events", response_class=HTMLResponse)
def events_page(request: Request, principal: PagePrincipal) -> Response:
    params = request.query_params
    fmt = Formatter(principal.language, principal.timezone)
    pairs = params.getlist("field")
    if params.get("add_name", "").strip():
        pairs.append(f"{params['add_name'].strip()}:{params.get('add_value', '')}")
    fields, kept = _field_filters(pairs)
    text = params.get("q", "").strip()[:500] or None
    start, end = fmt.parse_local(params.get("start", "")), fmt.parse_local(params.get("end", ""))
    page = _page_number(params.get("page", "1"))
    query = EventQuery(start=start, end=end, fields=fields, text=text, limit=EVENTS_PAGE,
                       offset=(page - 1) * EVENTS_PAGE)
    store: EventStore = request.app.state.events
    error, views, total = "", [], 0
    try:
        views = [event_view(e) for e in store.search(principal.scope, query)]
        total = store.count(principal.scope, query)
    except GovsocError as e:
        error = str(e)
    base = {"q": text or "", "start": params.get("start", ""), "end": params.get("end", "")}
    base_query = urlencode([*((k, v) for k, v in base.items() if v), *(("field", p) for p in kept)])
    return renderer(request).page(request, "events.html", {
        "views": views, "total": total, "page": page, "pages": max(1, -(-total // EVENTS_PAGE)), "error": error,
        "q": text or "", "start": params.get("start", ""), "end": params.get("end", ""), "filters": kept,
        "base_query": base_query, "pivot": lambda name, value: "/events?" + urlencode({"field": f"{name}:{value}"}),
        "without": lambda pair: urlencode([*((k, v) for k, v in base.items() if v),
                                           *(("field", p) for p in kept if p != pair)]),
    }, principal=principal)


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard_page(request: Request, principal: PagePrincipal) -> Response:
    store: IncidentStore = request.app.state.incidents
    now = utc_now()
    board = load_dashboard(store, request.app.state.tree, principal.scope, now, principal.timezone)
    watch = getattr(request.app.state, "service_watch", None) or ServiceWatchSettings()
    services = load_services(request.app.state.events, store, principal.scope, watch, now)
    return renderer(request).page(request, "dashboard.html", {"board": board, "services": services},
                                  principal=principal)


@router.get("/sensors", response_class=HTMLResponse)
def sensors_page(request: Request, principal: PagePrincipal) -> Response:
    tree: TenantTree = request.app.state.tree
    store: SensorStore | None = getattr(request.app.state, "sensors", None)
    watch: SensorWatchSettings = getattr(request.app.state, "sensor_watch", None) or SensorWatchSettings()
    tenants = [t.id for t in tree if t.id in principal.scope]
    beats = store.latest_heartbeats(principal.scope) if store is not None else []
    statuses = sensor_statuses(tree, tenants, beats, utc_now(), timedelta(seconds=watch.silent_after_s))
    return renderer(request).page(request, "sensors.html", {"sensors": statuses, "has_store": store is not None},
                                  principal=principal)


@router.get("/rules", response_class=HTMLResponse)
def rules_page(request: Request, principal: PagePrincipal) -> Response:
    store: IncidentStore = request.app.state.incidents
    rows = rule_rows(store, principal.scope, request.app.state)
    exceptions = store.suppressions(principal.scope, active_at=utc_now())
    service: RuleService | None = getattr(request.app.state, "rules", None)
    summaries = {s.info.rule_id: s for s in service.summaries()} if service is not None else {}
    rule_exceptions = [e for s in summaries for e in service.exceptions(s, principal.scope)] if service else []
    can_manage = (service is not None and principal.role is Role.ADMIN
                  and principal.tenant == request.app.state.tree.root)
    return renderer(request).page(request, "rules.html", {
        "rules": rows, "exceptions": exceptions, "enabled": {k: s.enabled for k, s in summaries.items()},
        "rule_exceptions": rule_exceptions, "can_manage": can_manage}, principal=principal)


@router.post("/rules/{rule_id}/{action}")
async def change_rule(request: Request, principal: PagePrincipal, rule_id: str, action: str) -> Response:
    """Enable or disable a rule for the whole network: the root's admins only (as the API)."""
    service: RuleService | None = getattr(request.app.state, "rules", None)
    if action not in ("enable", "disable") or service is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown action")
    if principal.role is not Role.ADMIN or principal.tenant != request.app.state.tree.root:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only the national centre's admins change rules")
    try:
        service.set_enabled(rule_id, action == "enable", actor=principal.name, tenant=principal.tenant)
    except UnknownRule as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no rule {rule_id!r}") from e
    return RedirectResponse("/rules", status_code=status.HTTP_303_SEE_OTHER)
