"""Identities through the API: sign-in, sessions and CSRF, brute-force slowing, keys and revocation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from api.auth import CSRF_HEADER, SESSION_COOKIE
from api.identity.passwords import PasswordHasher
from api.identity.service import IdentityService, LoginLocked
from api.identity.store import SqliteIdentityStore
from config.settings import Role
from config.tenants import TenantScope
from pipeline.records import utc_now
from pipeline.store.sqlite_incidents import SqliteIncidentStore
from tests.api.door import PASSWORD, Door, open_door


@pytest.fixture
def door(tmp_path: Path) -> Iterator[Door]:
    with open_door(tmp_path) as door:
        yield door


def sign_in(door: Door, name: str = "analyst-hanoi", password: str = PASSWORD) -> str:
    answer = door.client.post("/api/v1/auth/login", json={"name": name, "password": password})
    assert answer.status_code == 200, answer.text
    assert SESSION_COOKIE in answer.cookies
    return str(answer.json()["csrf_token"])


def audit_actions(door: Door) -> list[str]:
    store = door.stores[1]
    assert isinstance(store, SqliteIncidentStore)
    return [r.action for r in store.audit_trail(TenantScope.everything(), limit=1000)]


def test_a_session_reads_and_writes_with_its_csrf_token_only(door: Door) -> None:
    csrf = sign_in(door)
    me = door.client.get("/api/v1/auth/me").json()
    assert (me["name"], me["tenant"], me["via"]) == ("analyst-hanoi", "hanoi", "session")
    incident = door.incidents["hanoi"]
    url = f"/api/v1/incidents/{incident}/comments"
    assert door.client.post(url, json={"text": "không có CSRF"}).status_code == 403
    assert door.client.post(url, json={"text": "sai"}, headers={CSRF_HEADER: "wrong"}).status_code == 403
    assert door.client.post(url, json={"text": "đúng"}, headers={CSRF_HEADER: csrf}).status_code == 201
    assert door.client.post("/api/v1/auth/logout", headers={CSRF_HEADER: csrf}).status_code == 204
    assert door.client.get("/api/v1/auth/me").status_code == 401


def test_the_session_cookie_is_http_only_and_same_site_strict(door: Door) -> None:
    answer = door.client.post("/api/v1/auth/login", json={"name": "analyst-hanoi", "password": PASSWORD})
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie


def test_a_wrong_password_is_401_and_audited(door: Door) -> None:
    answer = door.client.post("/api/v1/auth/login", json={"name": "analyst-hanoi", "password": "nope"})
    assert answer.status_code == 401
    unknown = door.client.post("/api/v1/auth/login", json={"name": "nobody", "password": "nope"})
    assert unknown.status_code == 401 and unknown.json()["detail"] == answer.json()["detail"]
    assert audit_actions(door).count("auth.login_failed") == 2


def test_brute_force_on_the_login_is_slowed_and_recorded(door: Door) -> None:
    for _ in range(5):
        assert door.client.post("/api/v1/auth/login",
                                json={"name": "analyst-danang", "password": "guess"}).status_code == 401
    locked = door.client.post("/api/v1/auth/login", json={"name": "analyst-danang", "password": "guess"})
    assert locked.status_code == 401  # the sixth failure sets the first lock
    refused = door.client.post("/api/v1/auth/login", json={"name": "analyst-danang", "password": PASSWORD})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    actions = audit_actions(door)
    assert actions.count("auth.login_failed") == 6 and "auth.login_refused" in actions


def test_locks_double_and_a_success_clears_them(tmp_path: Path) -> None:
    store = SqliteIncidentStore(tmp_path / "i.db")
    identity = IdentityService(SqliteIdentityStore(tmp_path / "id.db"), store.append_audit,
                               hasher=PasswordHasher(fast=True))
    now = utc_now()
    identity.create_user(name="u", tenant="t", role=Role.ANALYST, password=PASSWORD, actor="test", now=now)
    waits = []
    at = now
    for _ in range(8):
        try:
            assert identity.sign_in("u", "bad", "192.0.2.1", at) is None
        except LoginLocked as e:
            waits.append(e.retry_after_s)
            at += timedelta(seconds=e.retry_after_s)
            assert identity.sign_in("u", "bad", "192.0.2.1", at) is None
    assert waits == sorted(waits) and waits[-1] > waits[0]
    at += timedelta(hours=1)
    assert identity.sign_in("u", PASSWORD, "192.0.2.1", at) is not None
    assert identity.store.login_failures("user:u") is None
    store.close()
    identity.store.close()


def test_a_key_is_shown_once_and_a_revoked_key_stops_at_once(door: Door) -> None:
    admin = door.headers("national", Role.ADMIN)
    created = door.client.post("/api/v1/keys", json={"name": "hanoi-ticketing", "tenant": "hanoi",
                                                     "role": "agency_reporter"}, headers=admin)
    assert created.status_code == 201
    token, key_id = created.json()["token"], created.json()["key"]["id"]
    assert token.startswith("gsoc_k_")
    listed = door.client.get("/api/v1/keys", headers=admin).text
    assert key_id in listed and token not in listed
    bearer = {"Authorization": f"Bearer {token}"}
    assert door.client.get("/api/v1/incidents", headers=bearer).status_code == 200
    assert door.client.delete(f"/api/v1/keys/{key_id}", headers=admin).status_code == 204
    assert door.client.get("/api/v1/incidents", headers=bearer).status_code == 401
    assert door.client.delete(f"/api/v1/keys/{key_id}", headers=admin).status_code == 409
    assert {"key.create", "key.revoke"} <= set(audit_actions(door))


def test_an_expired_key_stops_working(door: Door) -> None:
    now = utc_now()
    token, _ = door.identity.create_key(kind="api", name="short", tenant="hanoi", role=Role.ANALYST, actor="t",
                                        now=now - timedelta(days=2), expires=now - timedelta(seconds=1))
    assert door.client.get("/api/v1/incidents", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_an_admin_makes_a_user_who_signs_in(door: Door) -> None:
    admin = door.headers("hanoi", Role.ADMIN)
    body = {"name": "nguyen.van.a", "tenant": "hanoi-bavi", "role": "analyst", "password": "mật khẩu đủ dài"}
    assert door.client.post("/api/v1/users", json=body, headers=admin).status_code == 201
    assert door.client.post("/api/v1/users", json=body, headers=admin).status_code == 409
    short = {**body, "name": "b", "password": "short"}
    assert door.client.post("/api/v1/users", json=short, headers=admin).status_code == 422
    sign_in(door, "nguyen.van.a", "mật khẩu đủ dài")
    assert door.client.get("/api/v1/auth/me").json()["tenant"] == "hanoi-bavi"
    stored = door.identity.store.user("nguyen.van.a")
    assert stored is not None and stored.password_hash.startswith("$argon2id$")


def test_unknown_fields_are_refused(door: Door) -> None:
    body = {"name": "analyst-hanoi", "password": PASSWORD, "admin": True}
    assert door.client.post("/api/v1/auth/login", json=body).status_code == 422


def test_every_write_is_audited_with_its_route(door: Door) -> None:
    headers = door.headers("hanoi", Role.ANALYST)
    incident = door.incidents["hanoi"]
    door.client.post(f"/api/v1/incidents/{incident}/assign", json={"assignee": "x"}, headers=headers)
    door.client.post(f"/api/v1/incidents/{door.incidents['danang']}/assign", json={"assignee": "x"},
                     headers=headers)
    store = door.stores[1]
    assert isinstance(store, SqliteIncidentStore)
    writes = [r for r in store.audit_trail(TenantScope.everything(), limit=1000)
              if r.action == "api.post" and r.object_id == "/api/v1/incidents/{incident_id}/assign"]
    assert sorted(r.details["status"] for r in writes) == [200, 404]
    assert {r.actor for r in writes} == {"analyst-hanoi"}
    assert store.verify_audit().ok
