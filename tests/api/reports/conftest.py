"""An API with the reports router over real SQLite stores, and tokens for agencies and the centre.

Tenants: the national centre; Bộ Y tế (`byt`) and Bộ Tài chính (`btc`), siblings; Hà Nội with a
commune. The report service is the real one; only its sleep between delivery retries is recorded
instead of slept, so retry tests take no wall time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import token_sha256
from api.reports import Forwarder, ReportService, SqliteReportStore
from api.routes import reports as report_routes
from config.reports import ReportSettings
from config.settings import ApiToken, AssetConfig, Role, SensorConfig, TenantConfig, TenantKind
from config.tenants import TenantTree
from pipeline.store.base import EventStore, IncidentStore
from pipeline.store.registry import open_event_store, open_incident_store

NOW = datetime(2026, 11, 23, 3, 30, tzinfo=UTC)  # 10:30 in Hà Nội

TREE = TenantTree.from_config([
    TenantConfig(id="national", name="Trung tâm giám sát quốc gia", name_en="National Monitoring Centre",
                 kind=TenantKind.NATIONAL),
    TenantConfig(id="byt", name="Bộ Y tế", name_en="Ministry of Health", kind=TenantKind.MINISTRY, parent="national",
                 assets=(AssetConfig(id="byt-mail", name="Máy chủ thư điện tử", kind="mail",
                                     hostnames=("mail.moh.example",), addresses=("192.0.2.31",),
                                     security_level=3),),
                 sensors=(SensorConfig(id="byt-s1"),)),
    TenantConfig(id="btc", name="Bộ Tài chính", name_en="Ministry of Finance", kind=TenantKind.MINISTRY,
                 parent="national"),
    TenantConfig(id="hanoi", name="Thành phố Hà Nội", kind=TenantKind.PROVINCE, parent="national"),
    TenantConfig(id="hanoi-bavi", name="Xã Ba Vì", kind=TenantKind.COMMUNE, parent="hanoi"),
])

USERS: dict[str, tuple[str, Role]] = {
    "reporter-byt": ("byt", Role.AGENCY_REPORTER),
    "reporter-btc": ("btc", Role.AGENCY_REPORTER),
    "analyst-byt": ("byt", Role.ANALYST),
    "coordinator": ("national", Role.NATIONAL_COORDINATOR),
    "auditor": ("national", Role.AUDITOR),
    "sensor-byt": ("byt", Role.SENSOR),
}


@dataclass
class ReportsApi:
    client: TestClient
    service: ReportService
    incidents: IncidentStore
    events: EventStore
    sleeps: list[float] = field(default_factory=list)

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer token-of-{user}"}

    def post(self, url: str, user: str, body: Any) -> httpx.Response:
        answer: httpx.Response = self.client.post(url, json=body, headers=self.headers(user))
        return answer

    def get(self, url: str, user: str, **params: Any) -> httpx.Response:
        answer: httpx.Response = self.client.get(url, headers=self.headers(user), params=params)
        return answer


MakeApi = Callable[..., ReportsApi]


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[MakeApi]:
    """Build the app with the given `ReportSettings` (defaults if none); closed after the test."""
    opened: list[tuple[TestClient, EventStore, IncidentStore, SqliteReportStore]] = []

    def make(settings: ReportSettings | None = None) -> ReportsApi:
        url = f"sqlite:///{tmp_path / f'govsoc-{len(opened)}.db'}"
        events, incidents = open_event_store(url), open_incident_store(url)
        store = SqliteReportStore.from_url(url)
        tokens = tuple(ApiToken(name=user, tenant=tenant, role=role, sha256=token_sha256(f"token-of-{user}"))
                       for user, (tenant, role) in USERS.items())
        app = create_app(tree=TREE, tokens=tokens, events_store=events, incidents_store=incidents)
        settings = settings or ReportSettings()
        sleeps: list[float] = []
        forwarder = Forwarder(settings, store, TREE, sleep=sleeps.append)
        service = ReportService(store, incidents, TREE, settings, forwarder=forwarder, clock=lambda: NOW)
        app.state.reports = service
        app.include_router(report_routes.router)
        client = TestClient(app)
        opened.append((client, events, incidents, store))
        return ReportsApi(client, service, incidents, events, sleeps)

    yield make
    for client, events, incidents, store in opened:
        client.close()
        store.close()
        incidents.close()
        events.close()


@pytest.fixture
def api(make_api: MakeApi) -> ReportsApi:
    return make_api()
