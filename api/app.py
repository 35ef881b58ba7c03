"""The FastAPI application: routes under /api/v1, authenticated, scoped to the caller's tenants.

`create_app` takes its parts ready-made (stores, tenant tree, tokens, identity service, bus) and
reads no settings file or environment itself, so tests build it over real stores in a temporary
directory. Parts it is not given switch their routes off (404), never to a weaker mode:
no identity service means bearer tokens from configuration only; no bus means no ingest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI

from api import console, security
from api.auth import Authenticator
from api.identity.oidc import OidcClient
from api.identity.service import IdentityService
from api.reports import ReportService
from api.routes import events, health, identity, incidents, ingest, intel, metrics, playbooks, reports, sensors
from api.routes import rules as rules_routes
from config.settings import ApiSettings, ApiToken, IncidentSettings, SensorWatchSettings
from config.tenants import TenantTree
from detections.intel import IntelStore
from detections.sigma.load import RuleSet
from detections.sigma.manage import RuleService
from pipeline.bus import Bus
from pipeline.store.base import EventStore, IncidentStore, SensorStore
from playbooks.runner import PlaybookRunner


@dataclass(frozen=True, slots=True)
class IngestLimits:
    max_events: int
    max_pending: int
    max_body: int


def create_app(*, tree: TenantTree, tokens: tuple[ApiToken, ...], events_store: EventStore,
               incidents_store: IncidentStore, sensors_store: SensorStore | None = None,
               incident_settings: IncidentSettings | None = None,
               sensor_watch: SensorWatchSettings | None = None,
               playbook_runner: PlaybookRunner | None = None,
               identity_service: IdentityService | None = None,
               bus: Bus | None = None, ingest_pending: Callable[[], int] | None = None,
               api_settings: ApiSettings | None = None, reports_service: ReportService | None = None,
               intel_store: IntelStore | None = None, rules: RuleSet | None = None,
               rule_service: RuleService | None = None) -> FastAPI:
    api = api_settings or ApiSettings()
    app = FastAPI(
        title="govsoc API",
        version="0.1.0",
        description="Security operations for the government network: incidents, alerts, events, "
                    "agency reports, sensors.",
    )
    app.state.auth = Authenticator(tokens, tree, identity_service)
    app.state.tree = tree
    app.state.events = events_store
    app.state.incidents = incidents_store
    app.state.incident_settings = incident_settings or IncidentSettings()
    app.state.sensors = sensors_store
    app.state.sensor_watch = sensor_watch or SensorWatchSettings()
    app.state.playbook_runner = playbook_runner
    app.state.bus = bus
    app.state.ingest_pending = ingest_pending
    app.state.ingest_limits = IngestLimits(api.ingest_max_events, api.ingest_max_pending, api.max_body_bytes)
    app.state.secure_cookies = api.cookie_secure
    app.state.limiter = security.RateLimiter(api.rate_per_s, api.rate_burst)
    app.state.oidc = {p.id: OidcClient(p, identity_service.store) for p in api.oidc} if identity_service else {}
    for router in (health.router, identity.router, incidents.router, events.router, playbooks.router,
                   ingest.router, metrics.router):
        app.include_router(router)
    if sensors_store is not None:
        app.include_router(sensors.router)
    app.state.reports = reports_service
    if reports_service is not None:
        app.include_router(reports.router)
    app.state.intel = intel_store
    app.state.ruleset = rules
    app.state.rules = rule_service
    if rule_service is not None:
        app.include_router(rules_routes.router)
    if intel_store is not None:
        app.include_router(intel.router)
    metrics.install(app)
    security.install(app, max_body_bytes=api.max_body_bytes, limiter=app.state.limiter,
                     audit=incidents_store.append_audit, secure_cookies=api.cookie_secure)
    console.install(app)  # after security.install: it wraps the JSON error handler for its HTML pages
    return app
