"""The FastAPI application: routes under /api/v1, authenticated, scoped to the caller's tenants.

`create_app` takes its parts ready-made (stores, tenant tree, tokens) and reads no settings or
environment itself, so tests build it over real stores in a temporary directory.
"""

from __future__ import annotations

from fastapi import FastAPI

from api.auth import TokenRegistry
from api.routes import events, health, incidents, playbooks, sensors
from config.settings import ApiToken, IncidentSettings, SensorWatchSettings
from config.tenants import TenantTree
from pipeline.store.base import EventStore, IncidentStore, SensorStore
from playbooks.runner import PlaybookRunner


def create_app(*, tree: TenantTree, tokens: tuple[ApiToken, ...], events_store: EventStore,
               incidents_store: IncidentStore, sensors_store: SensorStore | None = None,
               incident_settings: IncidentSettings | None = None,
               sensor_watch: SensorWatchSettings | None = None,
               playbook_runner: PlaybookRunner | None = None) -> FastAPI:
    app = FastAPI(
        title="govsoc API",
        version="0.1.0",
        description="Security operations for the government network: incidents, alerts, events.",
    )
    app.state.tokens = TokenRegistry(tokens, tree)
    app.state.tree = tree
    app.state.events = events_store
    app.state.incidents = incidents_store
    app.state.incident_settings = incident_settings or IncidentSettings()
    app.state.sensors = sensors_store
    app.state.sensor_watch = sensor_watch or SensorWatchSettings()
    app.state.playbook_runner = playbook_runner
    app.include_router(health.router)
    app.include_router(incidents.router)
    app.include_router(events.router)
    if sensors_store is not None:
        app.include_router(sensors.router)
    app.include_router(playbooks.router)
    return app
