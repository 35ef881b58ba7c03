"""Who is calling, and what they may see: bearer keys, console sessions, roles, the tenant scope.

Every route but `/healthz` and the sign-in depends on `current_principal`:
- `Authorization: Bearer <token>`: a static token from configuration (known by its SHA-256), or an
  API or sensor key from the identity store (revocation and expiry apply at once);
- else the console's session cookie (`govsoc_session`); a write through a session must carry the
  session's CSRF token in `X-CSRF-Token` (the console's forms: the field `csrf_token`), or 403;
- nothing valid answers 401 with a `WWW-Authenticate: Bearer` challenge.
Once known, the caller is rate-limited per key (429 with Retry-After) and kept on `request.state`
for the audit of writes. The principal's scope (its tenant and every tenant below) is what each
store read is given, so isolation holds in the store, not only here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.identity.service import IdentityService
from api.security import RateLimiter
from config.settings import ApiToken, Role
from config.tenants import TenantScope, TenantTree
from pipeline.records import utc_now

SESSION_COOKIE = "govsoc_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# who may do what, beyond the tenant scope: sensors only ship; auditors and reporters only read
READERS = frozenset(Role) - {Role.SENSOR}
EDITORS = frozenset({Role.ANALYST, Role.ADMIN, Role.NATIONAL_COORDINATOR})
API_KEY_KINDS = frozenset({"api", "sensor"})


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    tenant: str
    role: Role
    scope: TenantScope
    via: Literal["config", "key", "session"] = "config"
    key_id: str | None = None
    csrf: str | None = None
    language: str = "vi"
    timezone: str = "Asia/Ho_Chi_Minh"


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A bearer token with 256 bits of entropy, prefixed so that leaked ones are easy to grep."""
    return "gsoc_" + secrets.token_urlsafe(32)


class Authenticator:
    """Turns a bearer token or a session secret into a `Principal`; knows nothing of HTTP."""

    def __init__(self, tokens: tuple[ApiToken, ...], tree: TenantTree, identity: IdentityService | None) -> None:
        self._by_hash = {t.sha256: t for t in tokens}
        self.tree = tree
        self.identity = identity

    def from_bearer(self, token: str, now: datetime) -> Principal | None:
        found = self._by_hash.get(token_sha256(token))
        if found is not None:
            return Principal(found.name, found.tenant, found.role, self._scope(found.tenant))
        if self.identity is None:
            return None
        key = self.identity.authenticate_key(token, now, kinds=API_KEY_KINDS)
        if key is None or key.tenant not in self.tree:
            return None
        return Principal(key.name, key.tenant, key.role, self._scope(key.tenant), via="key", key_id=key.id)

    def from_session(self, secret: str, now: datetime) -> Principal | None:
        if self.identity is None:
            return None
        found = self.identity.session(secret, now)
        if found is None or found[0].tenant not in self.tree:
            return None
        user, session = found
        return Principal(user.name, user.tenant, user.role, self._scope(user.tenant), via="session",
                         csrf=session.csrf, language=user.language, timezone=user.timezone)

    def _scope(self, tenant: str) -> TenantScope:
        return self.tree.scope(tenant)



_bearer = HTTPBearer(auto_error=False)


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    auth: Authenticator = request.app.state.auth
    now = utc_now()
    principal: Principal | None
    if credentials is not None:
        principal = auth.from_bearer(credentials.credentials, now)
    else:
        secret = request.cookies.get(SESSION_COOKIE)
        principal = auth.from_session(secret, now) if secret else None
        if principal is not None and request.method not in SAFE_METHODS:
            await _check_csrf(request, principal)
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or invalid credentials",
                            headers={"WWW-Authenticate": "Bearer"})
    limiter: RateLimiter | None = getattr(request.app.state, "limiter", None)
    if limiter is not None and (wait := limiter.retry_after(f"key:{principal.via}:{principal.name}")):
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many requests for this key",
                            headers={"Retry-After": str(wait)})
    request.state.principal = principal
    return principal


async def _check_csrf(request: Request, principal: Principal) -> None:
    """The API's JSON routes take the token in a header only; the console's forms check their own
    field (api/console/session.py) before they reach anything that writes."""
    sent = request.headers.get(CSRF_HEADER)
    if not sent or principal.csrf is None or not hmac.compare_digest(sent, principal.csrf):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the CSRF token is missing or wrong")


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: Role) -> Callable[[Principal], Principal]:
    """A dependency that lets only `roles` through (403 otherwise), checked before any lookup.

    Use as `Annotated[Principal, Depends(require_roles(Role.ANALYST, ...))]`; the 403 comes before
    the object is read, so it never says whether a sibling's object exists.
    """
    allowed = frozenset(roles)

    def guard(principal: CurrentPrincipal) -> Principal:
        if principal.role not in allowed:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"the role {principal.role.value} may not do this")
        return principal

    guard.allowed_roles = allowed  # type: ignore[attr-defined]  # read by the route-walk test
    return guard
