"""Routes: authentication on everything but /healthz, and reads scoped to the token's subtree."""

from __future__ import annotations

from typing import Any

import pytest

from config.settings import IncidentSettings
from detections.incidents import IncidentService
from tests.api.conftest import TREE, Api
from tests.factories import make_alert, make_event


def seed(api: Api) -> dict[str, str]:
    IncidentService(api.incidents, TREE, IncidentSettings()).ingest(
        [make_alert("hanoi-bavi", n=1), make_alert("danang", n=2)])
    api.events.write([make_event("hanoi-bavi", 1, message="Failed password for root", source__ip="203.0.113.77"),
                      make_event("danang", 2, message="Failed password for admin", source__ip="203.0.113.77")])
    ids = {}
    for tenant in ("hanoi-bavi", "danang"):
        body: Any = api.get("/api/v1/incidents", tenant).json()  # type: ignore[attr-defined]
        ids[tenant] = body["incidents"][0]["id"]
    return ids


def test_healthz_needs_no_token(api: Api) -> None:
    assert api.get("/healthz", None).status_code == 200  # type: ignore[attr-defined]


@pytest.mark.parametrize("url", ["/api/v1/incidents", "/api/v1/incidents/x", "/api/v1/events", "/api/v1/alerts"])
def test_every_other_route_needs_a_valid_token(api: Api, url: str) -> None:
    response: Any = api.get(url, None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    bad: Any = api.client.get(url, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401


def test_openapi_routes_all_declare_a_dependency_or_are_health(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    assert "/healthz" in paths and "/api/v1/incidents/{incident_id}" in paths


def test_a_parent_sees_its_descendants_incidents(api: Api) -> None:
    ids = seed(api)
    body: Any = api.get("/api/v1/incidents", "hanoi").json()  # type: ignore[attr-defined]
    assert [i["id"] for i in body["incidents"]] == [ids["hanoi-bavi"]]
    national: Any = api.get("/api/v1/incidents", "national").json()  # type: ignore[attr-defined]
    assert national["total"] == 2


def test_a_siblings_incident_answers_404(api: Api) -> None:
    ids = seed(api)
    own: Any = api.get(f"/api/v1/incidents/{ids['danang']}", "danang")
    assert own.status_code == 200
    assert own.json()["alerts"][0]["tenant"] == "danang"
    assert [r["action"] for r in own.json()["audit"]] == ["incident.created"]
    sibling: Any = api.get(f"/api/v1/incidents/{ids['danang']}", "hanoi")
    assert sibling.status_code == 404
    assert api.get("/api/v1/incidents/doesnotexist", "hanoi").status_code == 404  # type: ignore[attr-defined]


def test_events_are_scoped_and_searchable(api: Api) -> None:
    seed(api)
    body: Any = api.get("/api/v1/events", "hanoi", q="password").json()  # type: ignore[attr-defined]
    assert [e["organization"]["id"] for e in body["events"]] == ["hanoi-bavi"]
    by_field: Any = api.get("/api/v1/events", "national", field="source.ip:203.0.113.77").json()  # type: ignore[attr-defined]
    assert by_field["total"] == 2


def test_bad_event_queries_are_422_with_a_reason(api: Api) -> None:
    response: Any = api.get("/api/v1/events", "hanoi", field="no-colon")
    assert response.status_code == 422 and "no-colon" in response.text
    naive: Any = api.get("/api/v1/events", "hanoi", start="2026-11-23T10:00:00")
    assert naive.status_code == 422 and "time zone" in response.text + naive.text
