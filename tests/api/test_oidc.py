"""Sign-in with an agency's OpenID Connect provider, against a real provider on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from api.identity.oidc import safe_next
from config.settings import ApiSettings, OidcProvider, OidcRule, Role
from tests.api.door import Door, open_door
from tests.api.oidc_provider import CLIENT_ID, Provider, running_provider


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Door, Provider]]:
    with running_provider() as provider:
        oidc = OidcProvider(id="agency", name="IdP Hà Nội", issuer=provider.issuer, client_id=CLIENT_ID, rules=(
            OidcRule(claim="groups", value="soc-hanoi", tenant="hanoi", role=Role.ANALYST),
            OidcRule(claim="groups", value="reporters", tenant="hanoi-bavi", role=Role.AGENCY_REPORTER)))
        api = ApiSettings(cookie_secure=False, rate_per_s=1000, rate_burst=1000, oidc=(oidc,))
        with open_door(tmp_path, api) as door:
            yield door, provider


def sign_in(door: Door, next_url: str = "/incidents") -> httpx.Response:
    """Follow the redirects by hand: our app -> the provider (real HTTP) -> our callback."""
    to_provider = door.client.get("/api/v1/auth/oidc/agency/login", params={"next": next_url},
                                  follow_redirects=False)
    assert to_provider.status_code == 302, to_provider.text
    query = parse_qs(urlsplit(to_provider.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["client_id"] == [CLIENT_ID]
    back = httpx.get(to_provider.headers["location"], follow_redirects=False)
    callback = urlsplit(back.headers["location"])
    answer: httpx.Response = door.client.get(f"{callback.path}?{callback.query}", follow_redirects=False)
    return answer


def test_a_user_of_the_agency_signs_in_with_the_tenant_and_role_its_groups_give(
        setup: tuple[Door, Provider]) -> None:
    door, provider = setup
    provider.claims = {"preferred_username": "tran.van.b", "groups": ["staff", "soc-hanoi"]}
    answer = sign_in(door)
    assert answer.status_code == 303 and answer.headers["location"] == "/incidents"
    me = door.client.get("/api/v1/auth/me").json()
    assert (me["name"], me["tenant"], me["role"], me["via"]) == ("agency:tran.van.b", "hanoi", "analyst", "session")
    user = door.identity.store.user("agency:tran.van.b")
    assert user is not None and user.password_hash.startswith("!external:")
    assert door.client.post("/api/v1/auth/login", json={"name": "agency:tran.van.b",
                                                        "password": "!external:agency"}).status_code == 401


def test_a_user_no_rule_admits_is_refused_and_audited(setup: tuple[Door, Provider]) -> None:
    door, provider = setup
    provider.claims = {"preferred_username": "khach", "groups": ["guests"]}
    answer = sign_in(door)
    assert answer.status_code == 401 and "no rule" in answer.json()["detail"]
    assert door.identity.store.user("agency:khach") is None


@pytest.mark.parametrize(("tamper", "reason"), [
    ({"aud": "someone-else"}, "aud"),
    ({"iss": "http://127.0.0.1:1"}, "iss"),
    ({"nonce": "replayed"}, "nonce"),
    ({"exp": 1_000_000_000}, "expired"),
])
def test_a_token_that_fails_a_check_is_refused(setup: tuple[Door, Provider], tamper: dict[str, object],
                                               reason: str) -> None:
    door, provider = setup
    provider.claims = {"preferred_username": "tran.van.b", "groups": ["soc-hanoi"]}
    provider.tamper = tamper
    answer = sign_in(door)
    assert answer.status_code == 401 and reason in answer.json()["detail"]


def test_a_token_signed_by_another_key_is_refused(setup: tuple[Door, Provider]) -> None:
    door, provider = setup
    provider.claims = {"preferred_username": "tran.van.b", "groups": ["soc-hanoi"]}
    provider.forger = Provider().key  # same kid, a key the JWKS does not publish
    answer = sign_in(door)
    assert answer.status_code == 401 and "id_token" in answer.json()["detail"]


def test_a_state_works_once(setup: tuple[Door, Provider]) -> None:
    door, provider = setup
    provider.claims = {"preferred_username": "tran.van.b", "groups": ["soc-hanoi"]}
    to_provider = door.client.get("/api/v1/auth/oidc/agency/login", follow_redirects=False)
    back = httpx.get(to_provider.headers["location"], follow_redirects=False)
    callback = urlsplit(back.headers["location"])
    assert door.client.get(f"{callback.path}?{callback.query}", follow_redirects=False).status_code == 303
    again = door.client.get(f"{callback.path}?{callback.query}", follow_redirects=False)
    assert again.status_code == 401 and "state" in again.json()["detail"]


def test_an_unknown_provider_is_404(setup: tuple[Door, Provider]) -> None:
    door, _ = setup
    assert door.client.get("/api/v1/auth/oidc/nobody/login", follow_redirects=False).status_code == 404


@pytest.mark.parametrize(("given", "kept"), [
    ("/incidents?state=new", "/incidents?state=new"), ("//evil.example/x", "/"), ("https://evil.example/", "/"),
    ("/\\evil.example", "/"), (None, "/"), ("", "/"),
])
def test_after_sign_in_only_paths_of_this_site(given: str | None, kept: str) -> None:
    assert safe_next(given) == kept
