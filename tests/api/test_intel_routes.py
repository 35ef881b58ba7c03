"""The intel routes over real SQLite stores: TLP and the tree decide what each tenant sees (a sibling's
AMBER indicator and sightings answer 404 or nothing), publishing needs an editing role, exports hold
the indicators of an incident's intel alerts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import token_sha256
from api.routes import intel
from config.settings import ApiToken, IncidentSettings, Role
from detections.incidents import IncidentService
from detections.intel import IntelMatcher, IntelStore, import_misp, import_stix, sightings_of
from detections.intel.model import ImportOptions
from pipeline.records import Incident
from pipeline.store.base import IncidentStore
from pipeline.store.registry import open_event_store, open_incident_store
from tests.detections.intel.intel_factories import TENANTS, TREE
from tests.factories import make_event

DATA = Path(__file__).parents[1] / "data" / "intel"
USERS = {t: (t, Role.ANALYST) for t in TENANTS} | {"auditor-byt": ("byt", Role.AUDITOR)}


@dataclass
class IntelApi:
    client: TestClient
    store: IntelStore
    incidents: IncidentStore

    def call(self, method: str, url: str, user: str, **kwargs: Any) -> Any:
        return self.client.request(method, url, headers={"Authorization": f"Bearer token-{user}"}, **kwargs)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[IntelApi]:
    url = f"sqlite:///{tmp_path / 'govsoc.db'}"
    events, incidents = open_event_store(url), open_incident_store(url)
    store = IntelStore(tmp_path / "govsoc.db", TREE)
    tokens = tuple(ApiToken(name=user, tenant=tenant, role=role, sha256=token_sha256(f"token-{user}"))
                   for user, (tenant, role) in USERS.items())
    app = create_app(tree=TREE, tokens=tokens, events_store=events, incidents_store=incidents)
    app.state.intel = store  # the wiring app.py gets: `app.state.intel = intel_store`
    app.include_router(intel.router)
    with TestClient(app) as client:
        yield IntelApi(client, store, incidents)
    for closing in (store, events, incidents):
        closing.close()


def publish(api: IntelApi, user: str, **body: Any) -> Any:
    return api.call("POST", "/api/v1/intel/indicators", user, json=body)


def test_a_siblings_amber_indicator_is_404_and_the_national_centre_sees_all(api: IntelApi) -> None:
    made = publish(api, "btc", type="ipv4", value="203.0.113.77", tlp="amber", confidence=90)
    assert made.status_code == 201, made.text
    ind_id = made.json()["id"]
    assert api.call("GET", f"/api/v1/intel/indicators/{ind_id}", "byt").status_code == 404
    assert api.call("GET", "/api/v1/intel/indicators", "byt").json() == {"indicators": [], "total": 0}
    assert api.call("GET", f"/api/v1/intel/indicators/{ind_id}", "national").status_code == 200
    assert api.call("GET", "/api/v1/intel/indicators", "national").json()["total"] == 1
    assert api.call("GET", f"/api/v1/intel/indicators/{ind_id}", "btc").json()["value"] == "203.0.113.77"


def test_publishing_needs_an_editing_role_and_a_tenant_in_scope(api: IntelApi) -> None:
    assert publish(api, "auditor-byt", type="domain", value="evil.example").status_code == 403
    assert publish(api, "hanoi", type="domain", value="evil.example", tenant="danang").status_code == 404
    assert publish(api, "hanoi", type="domain", value="evil.example", tenant="hanoi-bavi").status_code == 201
    bad = publish(api, "hanoi", type="ipv4", value="not-an-ip")
    assert bad.status_code == 422 and "not-an-ip" in bad.text
    assert publish(api, "hanoi", type="ipv4", value="203.0.113.1", recipients=["nowhere"]).status_code == 422
    assert publish(api, "hanoi", type="ipv4", value="203.0.113.1", extra="x").status_code == 422


def test_red_reaches_only_named_recipients(api: IntelApi) -> None:
    ind_id = publish(api, "national", type="url", value="http://evil.example/x", tlp="red",
                     recipients=["danang"]).json()["id"]
    seen = {t: api.call("GET", f"/api/v1/intel/indicators/{ind_id}", t).status_code for t in TENANTS}
    assert seen == {t: 200 if t in ("national", "danang") else 404 for t in TENANTS}


def test_importing_a_stix_bundle_and_a_misp_event(api: IntelApi) -> None:
    bundle = (DATA / "stix-poisonivy-excerpt.json").read_text()
    answer = api.call("POST", "/api/v1/intel/imports", "national",
                      json={"document": json.loads(bundle), "tlp": "green"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["published"] == 20  # 37 values, 20 distinct (OR patterns repeat addresses)
    misp = json.loads((DATA / "misp-event-sednit-excerpt.json").read_text())
    assert api.call("POST", "/api/v1/intel/imports", "hanoi", json={"document": misp}).json()["published"] == 12
    refused = api.call("POST", "/api/v1/intel/imports", "hanoi", json={"document": {"nothing": 1}})
    assert refused.status_code == 422 and "neither a STIX 2.1 bundle nor a MISP event" in refused.text


def sighted(api: IntelApi, publisher: str, tenant: str, tlp: str = "amber", **extra: Any) -> tuple[str, list[Incident]]:
    ind_id = publish(api, publisher, type="ipv4", value="203.0.113.77", tlp=tlp, **extra).json()["id"]
    matcher = IntelMatcher(api.store.matchable(TREE.scope(TREE.root)), TREE)
    alerts = matcher.process([make_event(tenant, n, source__ip="203.0.113.77") for n in range(3)])
    api.store.record_sightings(sightings_of(alerts))
    return ind_id, IncidentService(api.incidents, TREE, IncidentSettings()).ingest(alerts)


def test_route_walk_a_sibling_never_sees_sightings(api: IntelApi) -> None:
    ind_id, _ = sighted(api, "hanoi", "hanoi-bavi", shared_with=[])
    visible = {t: api.call("GET", "/api/v1/intel/sightings", t).json()["sightings"] for t in TENANTS}
    assert [s["count"] for s in visible["national"]] == [3]
    assert [s["tenant"] for s in visible["hanoi"]] == ["hanoi-bavi"]
    for sibling in ("btc", "byt", "danang", "danang-haichau"):
        assert visible[sibling] == []
        assert api.call("GET", f"/api/v1/intel/indicators/{ind_id}", sibling).status_code == 404
        assert api.call("GET", "/api/v1/intel/sightings", sibling, params={"indicator_id": ind_id}).json() == {
            "sightings": []}
    detail = api.call("GET", f"/api/v1/intel/indicators/{ind_id}", "national").json()
    assert [s["tenant"] for s in detail["sightings"]] == ["hanoi-bavi"]


def test_an_incidents_indicators_export_as_stix_and_misp(api: IntelApi) -> None:
    ind_id, [incident] = sighted(api, "national", "danang", tlp="green")
    assert incident.tenant == "danang" and incident.rule_id == f"intel:{ind_id}"
    url = f"/api/v1/intel/incidents/{incident.id}/export"
    bundle = api.call("GET", url, "danang").json()
    again = import_stix(bundle, ImportOptions(publisher="national"))
    assert [(i.type.value, i.value) for i in again.indicators] == [("ipv4", "203.0.113.77")]
    event = api.call("GET", url, "national", params={"format": "misp"}).json()
    assert [i.value for i in import_misp(event, ImportOptions(publisher="national")).indicators] == ["203.0.113.77"]
    assert api.call("GET", url, "hanoi").status_code == 404
    assert api.call("GET", url, "danang", params={"format": "pdf"}).status_code == 422


@pytest.mark.parametrize("url", ["/api/v1/intel/indicators", "/api/v1/intel/sightings",
                                 "/api/v1/intel/indicators/x", "/api/v1/intel/incidents/x/export"])
def test_every_intel_route_needs_a_token(api: IntelApi, url: str) -> None:
    assert api.client.get(url).status_code == 401


def test_the_demo_shows_the_indicator_sighted_at_two_agencies(tmp_path: Path) -> None:
    """Demo step 6 over the real runtime: Hà Nội's brute force and Đà Nẵng's quiet attempts are both sighted,
    each with an intel incident; the national centre sees both, a ministry neither."""
    from api.demo.authlog import generate_auth_log
    from api.demo.intel import publish_and_sight
    from api.demo.setup import demo_auth_specs, demo_start
    from api.wiring import build_runtime
    from config.load import load_settings
    from sensors.files import FileSource

    runtime = build_runtime(load_settings(None, overrides={"data_dir": tmp_path}))
    now = datetime.now(UTC)
    spec = demo_auth_specs(demo_start(now), lines_per_host=200)[("hanoi", "hanoi-s1")]
    log = tmp_path / "hanoi-auth.log"
    log.write_text("\n".join(generate_auth_log(spec)) + "\n", encoding="utf-8")
    runtime.pipeline.replay([log], FileSource(tenant="hanoi", sensor="hanoi-s1", format="auth"))
    stats = publish_and_sight(runtime, now)
    assert stats.sightings == {"hanoi": 41, "danang": 2}
    assert publish_and_sight(runtime, now) == stats  # idempotent

    users = {"coordinator": ("national", Role.NATIONAL_COORDINATOR), "analyst-btc": ("btc", Role.ANALYST),
             "analyst-danang": ("danang", Role.ANALYST)}
    tokens = tuple(ApiToken(name=u, tenant=t, role=r, sha256=token_sha256(f"token-{u}")) for u, (t, r) in users.items())
    app = create_app(tree=runtime.tree, tokens=tokens, events_store=runtime.events, incidents_store=runtime.incidents)
    app.state.intel = IntelStore(tmp_path / "govsoc.db", runtime.tree)
    app.include_router(intel.router)
    with TestClient(app) as client:
        api = IntelApi(client, app.state.intel, runtime.incidents)
        national = api.call("GET", "/api/v1/intel/sightings", "coordinator").json()["sightings"]
        assert sorted(s["tenant"] for s in national) == ["danang", "hanoi"]
        assert api.call("GET", "/api/v1/intel/sightings", "analyst-btc").json()["sightings"] == []
        assert [s["tenant"] for s in api.call("GET", "/api/v1/intel/sightings", "analyst-danang").json()[
            "sightings"]] == ["danang"]
        rule = {"rule_id": f"intel:{stats.indicator_id}"}
        incidents = api.call("GET", "/api/v1/incidents", "coordinator", params=rule)
        assert sorted(i["tenant"] for i in incidents.json()["incidents"]) == ["danang", "hanoi"]
    app.state.intel.close()
    runtime.close()
