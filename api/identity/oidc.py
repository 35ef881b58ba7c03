"""OpenID Connect sign-in for agencies that run an identity provider: authorization code + PKCE.

In: a configured `OidcProvider`. `begin` answers the provider's authorization URL and remembers
the sign-in (state, nonce, PKCE verifier, where to go after) in the identity store; `finish`
takes the provider's answer (code, state), exchanges the code at the token endpoint, verifies the
ID token and answers who signed in and, by the provider's rules, with which tenant and role.

Checks, each a refusal (`OidcError`) rather than a sign-in:
- the state is known, unexpired and used once (taken from the store in one transaction);
- the ID token is signed by a key of the provider's JWKS (RS256/ES256; never `none` or HMAC with
  a public key: the allowed algorithms are fixed here), and its `iss`, `aud` (our client id),
  `exp`, `iat` and `nonce` are right;
- the provider's discovery document names the configured issuer;
- some rule admits the user (a claim value -> tenant and role); else no account is made.

Written on httpx and joserfc (JOSE) rather than a framework integration: the flow is a few calls,
and keeping it here keeps the tenant/role mapping and the audit in one place.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from api.identity.service import secret_sha256
from api.identity.store import OidcFlow, SqliteIdentityStore
from config.settings import OidcProvider, Role

ALGORITHMS = ["RS256", "ES256", "PS256"]
FLOW_LIFETIME = timedelta(minutes=10)
CLOCK_SKEW = timedelta(minutes=2)


class OidcError(Exception):
    """A sign-in the provider's answer does not allow; the message says which check failed."""


@dataclass(frozen=True, slots=True)
class OidcIdentity:
    username: str
    tenant: str
    role: Role
    next: str
    claims: Mapping[str, Any]


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def safe_next(next_url: str | None) -> str:
    """A path of this site only (no scheme, no host, no `//`): the sign-in is no open redirect."""
    if not next_url or not next_url.startswith("/") or next_url.startswith("//") or "\\" in next_url:
        return "/"
    return next_url


class OidcClient:
    def __init__(self, provider: OidcProvider, store: SqliteIdentityStore, http: httpx.Client | None = None) -> None:
        self.provider = provider
        self._store = store
        self._http = http or httpx.Client(timeout=10.0)
        self._discovery: dict[str, Any] | None = None

    def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            url = self.provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
            document = self._get_json(url)
            if document.get("issuer", "").rstrip("/") != self.provider.issuer.rstrip("/"):
                raise OidcError(f"{url}: the issuer is {document.get('issuer')!r}, not {self.provider.issuer!r}")
            self._discovery = document
        return self._discovery

    def begin(self, redirect_uri: str, next_url: str | None, now: datetime) -> str:
        """The provider's authorization URL for a new sign-in."""
        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        self._store.save_oidc_state(secret_sha256(state), OidcFlow(
            self.provider.id, nonce, verifier, safe_next(next_url), now + FLOW_LIFETIME))
        query = {"response_type": "code", "client_id": self.provider.client_id, "redirect_uri": redirect_uri,
                 "scope": " ".join(self.provider.scopes), "state": state, "nonce": nonce,
                 "code_challenge": pkce_challenge(verifier), "code_challenge_method": "S256"}
        return f"{self.discovery()['authorization_endpoint']}?{urlencode(query)}"

    def finish(self, code: str, state: str, redirect_uri: str, now: datetime) -> OidcIdentity:
        flow = self._store.take_oidc_state(secret_sha256(state))
        if flow is None or flow.provider != self.provider.id or flow.expires <= now:
            raise OidcError("unknown, used or expired sign-in state")
        tokens = self._post_json(self.discovery()["token_endpoint"], {
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "client_id": self.provider.client_id, "code_verifier": flow.verifier, **self._secret()})
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("the token endpoint answered no id_token")
        claims = self._verified_claims(id_token, flow.nonce, now)
        username, tenant, role = self._admit(claims)
        return OidcIdentity(username, tenant, role, flow.next, claims)

    def _verified_claims(self, id_token: str, nonce: str, now: datetime) -> dict[str, Any]:
        try:
            keys = KeySet.import_key_set(self._get_json(self.discovery()["jwks_uri"]))  # type: ignore[arg-type]
            token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
        except (JoseError, ValueError, KeyError, TypeError) as e:
            raise OidcError(f"id_token: {e}") from e
        claims = dict(token.claims)
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        expires, issued = claims.get("exp"), claims.get("iat")
        checks = [
            (str(claims.get("iss", "")).rstrip("/") == self.provider.issuer.rstrip("/"), "iss is not the issuer"),
            (self.provider.client_id in audiences, "aud is not this client"),
            (isinstance(expires, int) and expires > (now - CLOCK_SKEW).timestamp(), "expired"),
            (isinstance(issued, int) and issued < (now + CLOCK_SKEW).timestamp(), "iat in the future"),
            (secrets.compare_digest(str(claims.get("nonce", "")), nonce), "nonce does not match"),
        ]
        for ok, reason in checks:
            if not ok:
                raise OidcError(f"id_token: {reason}")
        return claims

    def _admit(self, claims: Mapping[str, Any]) -> tuple[str, str, Role]:
        username = claims.get(self.provider.username_claim)
        if not isinstance(username, str) or not username:
            raise OidcError(f"id_token: no {self.provider.username_claim!r} claim")
        for rule in self.provider.rules:
            value = claims.get(rule.claim)
            values = value if isinstance(value, list) else [value]
            if rule.value in values:
                return f"{self.provider.id}:{username}", rule.tenant, rule.role
        raise OidcError(f"{username!r}: no rule of provider {self.provider.id!r} admits this user")

    def _secret(self) -> dict[str, str]:
        path = self.provider.client_secret_file
        return {"client_secret": path.read_text(encoding="utf-8").strip()} if path is not None else {}

    def _get_json(self, url: str) -> dict[str, Any]:
        return self._json(url, lambda: self._http.get(url))

    def _post_json(self, url: str, form: dict[str, str]) -> dict[str, Any]:
        return self._json(url, lambda: self._http.post(url, data=form, headers={"Accept": "application/json"}))

    @staticmethod
    def _json(url: str, call: Callable[[], httpx.Response]) -> dict[str, Any]:
        """The JSON object `call` answers; any transport, HTTP or JSON failure is an `OidcError`."""
        try:
            answer = call()
            answer.raise_for_status()
            document = answer.json()
        except (httpx.HTTPError, ValueError) as e:
            raise OidcError(f"{url}: {e}") from e
        if not isinstance(document, dict):
            raise OidcError(f"{url}: not a JSON object")
        return document
