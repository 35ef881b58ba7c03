"""An API over real SQLite stores in a temporary directory, with tokens for three tenants; and
`runtime`, the embedded back end (`build_runtime`, default settings) on a temporary data directory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import token_sha256
from api.wiring import Runtime, build_runtime
from config.load import load_settings
from config.settings import ApiToken, Role, TenantConfig
from config.tenants import TenantTree
from pipeline.store.base import EventStore, IncidentStore
from pipeline.store.registry import open_event_store, open_incident_store

TREE = TenantTree.from_config([
    TenantConfig(id="national", name="N", kind="national"),
    TenantConfig(id="hanoi", name="HN", parent="national"),
    TenantConfig(id="hanoi-bavi", name="BV", parent="hanoi"),
    TenantConfig(id="danang", name="DN", parent="national"),
])
TOKENS = {tenant: f"token-of-{tenant}" for tenant in ("national", "hanoi", "hanoi-bavi", "danang")}


@dataclass
class Api:
    client: TestClient
    events: EventStore
    incidents: IncidentStore

    def get(self, url: str, tenant: str | None, **params: object) -> object:
        headers = {"Authorization": f"Bearer {TOKENS[tenant]}"} if tenant else {}
        return self.client.get(url, headers=headers, params=params)  # type: ignore[arg-type]


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    url = f"sqlite:///{tmp_path / 'govsoc.db'}"
    events, incidents = open_event_store(url), open_incident_store(url)
    tokens = tuple(ApiToken(name=f"analyst-{t}", tenant=t, role=Role.ANALYST, sha256=token_sha256(v))
                   for t, v in TOKENS.items())
    app = create_app(tree=TREE, tokens=tokens, events_store=events, incidents_store=incidents)
    with TestClient(app) as client:
        yield Api(client, events, incidents)
    events.close()
    incidents.close()


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    opened = build_runtime(load_settings(None, overrides={"data_dir": tmp_path}))
    yield opened
    opened.close()
