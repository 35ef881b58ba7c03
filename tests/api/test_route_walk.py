"""Every route in the OpenAPI document, walked: 401 without credentials, 403 for a role that may not,
404 for a sibling tenant's object, and lists empty of the sibling's data.

The walk reads the routes from the app itself, so a route added later is walked too; a path
parameter the walk has no sample for fails the test rather than being skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute

from api.demo.reports import demo_report_body
from config.settings import Role
from pipeline.records import utc_now
from tests.api.door import Door, open_door

# Sigma rules are the network's, not a tenant's: every tenant reads them, only the root's admins change
# them (403 for others, checked by the role walk), and exceptions are per tenant (a list in scope).
SHARED = ("/api/v1/rules/",)
# health, and the sign-in routes: a password, or an identity provider's redirect, is the credential
PUBLIC = {("GET", "/healthz"), ("POST", "/api/v1/auth/login"), ("GET", "/api/v1/auth/oidc/{provider_id}/login"),
          ("GET", "/api/v1/auth/oidc/{provider_id}/callback")}


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Door]:
    with open_door(tmp_path_factory.mktemp("door")) as door:
        yield door


def routes(door: Door) -> list[tuple[str, str, APIRoute]]:
    """(method, path, route) of every operation, checked against the OpenAPI document."""
    found: list[tuple[str, str, APIRoute]] = []
    pending = list(door.client.app.routes)  # type: ignore[attr-defined]
    while pending:
        route = pending.pop(0)
        if isinstance(route, APIRoute) and route.include_in_schema:
            found.extend((method, route.path, route) for method in sorted(route.methods or ()))
        elif hasattr(route, "original_router"):  # FastAPI >= 0.165 wraps included routers
            pending.extend(route.original_router.routes)
    documented = {(m.upper(), p) for p, item in door.client.app.openapi()["paths"].items()  # type: ignore[attr-defined]
                  for m in item}
    assert {(m, p) for m, p, _ in found} == documented
    return found


def allowed_roles(route: APIRoute) -> frozenset[Role] | None:
    """The roles the route's guard lets through; None when it has no guard (any role may call)."""
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        roles = getattr(dependency.call, "allowed_roles", None)
        if roles is not None:
            return frozenset(roles)
        pending.extend(dependency.dependencies)
    return None


def sibling_samples(door: Door) -> dict[str, str]:
    """A value of Đà Nẵng's (the sibling's) for every path parameter the API has."""
    run_id, step_id = door.runs["danang"]
    return {"incident_id": door.incidents["danang"], "run_id": run_id, "step_id": step_id, "verdict": "approve",
            "clock_id": "initial-report", "key_id": door.key_ids["danang"], "reference": door.reports["danang"],
            "indicator_id": door.indicators["danang"], "provider_id": "agency",
            "rule_id": "e8048fae-d72c-423a-81f4-cd4906a1bbcf",
            "sensor": "danang-s1"}  # a sensor name (the door's tree configures none: 404 for a sibling, as for all)


def url_for(door: Door, path: str) -> str:
    samples = sibling_samples(door)
    for name in [p.split("}")[0] for p in path.split("{")[1:]]:
        assert name in samples, f"{path}: the route walk has no sample for the path parameter {name!r}"
        path = path.replace("{" + name + "}", samples[name])
    return path


def call(door: Door, method: str, url: str, headers: dict[str, str], body: Any = None) -> Any:
    return door.client.request(method, url, headers=headers, json=body if method != "GET" else None)


def test_every_route_but_health_and_sign_in_answers_401_without_credentials(door: Door) -> None:
    walked = 0
    for method, path, _ in routes(door):
        if (method, path) in PUBLIC:
            continue
        answer = call(door, method, url_for(door, path), {}, {})
        assert answer.status_code == 401, f"{method} {path}: {answer.status_code} {answer.text}"
        assert "WWW-Authenticate" in answer.headers
        walked += 1
    assert walked >= 20


def test_a_key_of_a_role_that_may_not_answers_403(door: Door) -> None:
    checked = 0
    for method, path, route in routes(door):
        allowed = allowed_roles(route)
        if allowed is None:
            continue
        for role in set(Role) - allowed:
            answer = call(door, method, url_for(door, path), door.headers("hanoi", role), {})
            assert answer.status_code == 403, f"{method} {path} as {role.value}: {answer.status_code} {answer.text}"
            checked += 1
    assert checked >= 30


def test_a_sibling_tenant_gets_404_for_every_object_of_the_other(door: Door) -> None:
    checked = 0
    for method, path, route in routes(door):
        if "{" not in path or (method, path) in PUBLIC or path.startswith(SHARED):
            continue
        allowed = allowed_roles(route) or frozenset(Role)
        role = Role.ANALYST if Role.ANALYST in allowed else sorted(allowed)[0]
        answer = call(door, method, url_for(door, path), door.headers("hanoi", role), sample_body(path))
        assert answer.status_code == 404, f"{method} {path} as hanoi {role.value}: {answer.status_code} {answer.text}"
        checked += 1
    assert checked >= 8


def test_every_list_is_empty_of_the_sibling_and_full_for_the_national_centre(door: Door) -> None:
    danang_marks = ("danang", door.incidents["danang"], door.runs["danang"][0])
    for method, path, route in routes(door):
        if method != "GET" or "{" in path or (method, path) in PUBLIC:
            continue
        allowed = allowed_roles(route) or frozenset(Role)
        role = Role.ANALYST if Role.ANALYST in allowed else sorted(allowed)[0]
        answer = call(door, method, path, door.headers("hanoi", role))
        assert answer.status_code == 200, f"GET {path}: {answer.status_code} {answer.text}"
        assert not any(mark in answer.text for mark in danang_marks), f"GET {path} shows Đà Nẵng's data to Hà Nội"
    national = call(door, "GET", "/api/v1/incidents", door.headers("national", Role.ANALYST)).json()
    assert {i["tenant"] for i in national["incidents"]} == {"hanoi", "danang"}


def sample_body(path: str) -> dict[str, Any]:
    """A valid body for each write on an object, so the answer is about the object, not the body."""
    if path.endswith("/transition"):
        return {"to": "triage"}
    if path.endswith("/assign"):
        return {"assignee": "someone"}
    if path.endswith("/comments"):
        return {"text": "xem"}
    if path.startswith("/api/v1/runs/"):
        return {"reason": "test"}
    if path.endswith("/follow-ups"):
        return {"reported_at": utc_now().isoformat(), "current_status": "in_progress", "update": "cập nhật"}
    if path.endswith("/final"):
        body = demo_report_body(utc_now())
        return {"initial_reference": "BC-2026-000001", "initial_date": "2026-11-23", "reporter": body["reporter"],
                "handling": "x", "resolution": "y", "resolved_at": utc_now().isoformat(),
                "reported_at": utc_now().isoformat()}
    if path.endswith("/forward"):
        return {"recipient": "national"}
    return {}


@pytest.mark.parametrize(("path", "body"), [
    ("/api/v1/users", {"name": "intruder", "tenant": "danang", "role": "analyst", "password": "x" * 16}),
    ("/api/v1/keys", {"name": "intruder", "tenant": "danang", "role": "analyst"}),
    ("/api/v1/sensors/enrollments", {"sensor": "danang-s9", "tenant": "danang"}),
])
def test_an_admin_cannot_create_in_a_sibling_tenant(door: Door, path: str, body: dict[str, Any]) -> None:
    answer = door.client.post(path, json=body, headers=door.headers("hanoi", Role.ADMIN))
    assert answer.status_code == 404, answer.text


def test_a_sibling_suppression_is_refused(door: Door) -> None:
    body = {"tenant": "danang", "rule_id": "govsoc.linux.ssh_brute_force", "reason": "noise",
            "expires_in_s": 3600}
    answer = door.client.post("/api/v1/suppressions", json=body, headers=door.headers("hanoi", Role.ANALYST))
    assert answer.status_code in (404, 422), answer.text
    assert "danang" not in door.client.get("/api/v1/suppressions", headers=door.headers("hanoi", Role.ANALYST)).text


def test_door_tmp_is_real(tmp_path: Path) -> None:
    with open_door(tmp_path) as door:
        assert (tmp_path / "identity.db").exists() and door.incidents.keys() == {"hanoi", "danang"}
