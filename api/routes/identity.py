"""Sign-in and the identities behind the API: sessions, users, API keys.

- `POST /api/v1/auth/login` opens a console session (cookie `govsoc_session`: HttpOnly, SameSite
  Strict, Secure unless configured off) and answers the CSRF token for the session's writes; a
  wrong password answers 401, a throttled user or address 429 with Retry-After (both audited).
- `GET /api/v1/auth/oidc/{provider}/login` and `.../callback`: sign-in with an agency's OpenID
  Connect provider (api/identity/oidc.py); the session cookie is SameSite Lax there, since the
  provider's redirect is a cross-site navigation, and the session's writes still need its CSRF token.
- `POST /api/v1/auth/logout` ends it; `GET /api/v1/auth/me` says who the caller is.
- Users and keys are made by an admin, for the admin's tenant or one below it; a key's secret is in
  the answer that creates it and nowhere else. `DELETE /api/v1/keys/{id}` revokes at once. Reading
  users and keys is for admins and auditors; another subtree's key answers 404.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from api.auth import SESSION_COOKIE, CurrentPrincipal, Principal, require_roles
from api.identity.oidc import OidcClient, OidcError
from api.identity.service import IdentityError, IdentityService, LoginLocked
from api.identity.store import ApiKey
from api.security import client_address
from config.settings import Role
from pipeline.records import utc_now

router = APIRouter(prefix="/api/v1", tags=["identity"])

Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
Reader = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.AUDITOR))]
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")]
Tenant = Annotated[str, Field(min_length=1, max_length=100)]
KEY_ROLES = (Role.ANALYST, Role.AGENCY_REPORTER, Role.NATIONAL_COORDINATOR, Role.AUDITOR, Role.ADMIN)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    password: Annotated[str, Field(min_length=1, max_length=1000)]


class WhoAmI(_Strict):
    name: str
    tenant: str
    role: Role
    via: str
    language: str
    timezone: str
    csrf_token: str | None = None


class UserCreate(_Strict):
    name: Name
    tenant: Tenant
    role: Role
    password: Annotated[str, Field(min_length=12, max_length=1000)]
    language: Literal["vi", "en"] = "vi"
    timezone: Annotated[str, Field(max_length=64)] = "Asia/Ho_Chi_Minh"


class UserPublic(_Strict):
    name: str
    tenant: str
    role: Role
    language: str
    timezone: str
    created: datetime
    disabled: datetime | None


class UsersPublic(_Strict):
    users: list[UserPublic]


class KeyCreate(_Strict):
    name: Name
    tenant: Tenant
    role: Role
    expires_in_days: Annotated[int | None, Field(ge=1, le=3650)] = 365


class KeyPublic(_Strict):
    id: str
    kind: str
    name: str
    tenant: str
    role: Role
    created_by: str
    created: datetime
    expires: datetime | None
    revoked: datetime | None
    last_used: datetime | None


class KeyCreated(_Strict):
    key: KeyPublic
    token: str = Field(description="The secret, shown this once: only its hash is kept.")


class KeysPublic(_Strict):
    keys: list[KeyPublic]


def identity_service(request: Request) -> IdentityService:
    service: IdentityService | None = request.app.state.auth.identity
    if service is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this API has no identity store")
    return service


Identity = Annotated[IdentityService, Depends(identity_service)]


def key_public(key: ApiKey) -> KeyPublic:
    return KeyPublic(id=key.id, kind=key.kind, name=key.name, tenant=key.tenant, role=key.role,
                     created_by=key.created_by, created=key.created, expires=key.expires, revoked=key.revoked,
                     last_used=key.used)


def in_scope(principal: Principal, tenant: str) -> str:
    """`tenant` if the principal may act on it; 404 otherwise (a sibling's tenant is not revealed)."""
    if tenant not in principal.scope:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no tenant {tenant!r} here")
    return tenant


@router.post("/auth/login", response_model=WhoAmI, responses={401: {}, 429: {}})
def login(body: LoginRequest, request: Request, response: Response, identity: Identity) -> WhoAmI:
    now = utc_now()
    try:
        user = identity.sign_in(body.name, body.password, client_address(request), now)
    except LoginLocked as e:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(e),
                            headers={"Retry-After": str(e.retry_after_s)}) from e
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password")
    secret, session = identity.open_session(user, now)
    response.set_cookie(SESSION_COOKIE, secret, httponly=True, samesite="strict", path="/",
                        secure=request.app.state.secure_cookies,
                        max_age=int((session.expires - now).total_seconds()))
    return WhoAmI(name=user.name, tenant=user.tenant, role=user.role, via="session", language=user.language,
                  timezone=user.timezone, csrf_token=session.csrf)


def _oidc(request: Request, provider_id: str) -> OidcClient:
    clients: dict[str, OidcClient] = getattr(request.app.state, "oidc", {})
    if provider_id not in clients:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no identity provider {provider_id!r}")
    return clients[provider_id]


@router.get("/auth/oidc/{provider_id}/login", status_code=status.HTTP_302_FOUND,
            response_class=RedirectResponse, responses={302: {"description": "to the identity provider"}})
def oidc_login(provider_id: Annotated[str, Path(max_length=64)], request: Request, identity: Identity,
               next: Annotated[str | None, Query(max_length=500)] = None) -> RedirectResponse:
    """Start signing in with an agency's OpenID Connect provider."""
    client = _oidc(request, provider_id)
    redirect_uri = str(request.url_for("oidc_callback", provider_id=provider_id))
    try:
        url = client.begin(redirect_uri, next, utc_now())
    except OidcError as e:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"identity provider {provider_id!r}: {e}") from e
    return RedirectResponse(url, status_code=status.HTTP_302_FOUND)


@router.get("/auth/oidc/{provider_id}/callback", status_code=status.HTTP_303_SEE_OTHER,
            response_class=RedirectResponse, responses={303: {"description": "signed in"}, 401: {}})
def oidc_callback(provider_id: Annotated[str, Path(max_length=64)], request: Request, identity: Identity,
                  code: Annotated[str, Query(max_length=2000)],
                  state: Annotated[str, Query(max_length=200)]) -> RedirectResponse:
    """The provider's answer: verify it, make or update the user's account, open a session."""
    client = _oidc(request, provider_id)
    now, address = utc_now(), client_address(request)
    try:
        who = client.finish(code, state, str(request.url_for("oidc_callback", provider_id=provider_id)), now)
    except OidcError as e:
        identity.refuse_external(provider=provider_id, address=address, reason=str(e))
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"sign-in refused: {e}") from e
    user = identity.external_user(name=who.username, tenant=who.tenant, role=who.role, provider=provider_id,
                                  address=address, now=now)
    secret, session = identity.open_session(user, now)
    response = RedirectResponse(who.next, status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(SESSION_COOKIE, secret, httponly=True, samesite="lax", path="/",
                        secure=request.app.state.secure_cookies,
                        max_age=int((session.expires - now).total_seconds()))
    return response


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(request: Request, principal: CurrentPrincipal, identity: Identity) -> Response:
    secret = request.cookies.get(SESSION_COOKIE)
    if principal.via == "session" and secret:
        identity.close_session(secret)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/auth/me", response_model=WhoAmI)
def me(principal: CurrentPrincipal) -> WhoAmI:
    return WhoAmI(name=principal.name, tenant=principal.tenant, role=principal.role, via=principal.via,
                  language=principal.language, timezone=principal.timezone, csrf_token=principal.csrf)


@router.post("/users", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, principal: Admin, identity: Identity) -> UserPublic:
    in_scope(principal, body.tenant)
    if identity.store.user(body.name) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"a user named {body.name!r} exists")
    try:
        user = identity.create_user(name=body.name, tenant=body.tenant, role=body.role, password=body.password,
                                    actor=principal.name, now=utc_now(), language=body.language,
                                    timezone=body.timezone)
    except IdentityError as e:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(e)) from e
    return UserPublic(name=user.name, tenant=user.tenant, role=user.role, language=user.language,
                      timezone=user.timezone, created=user.created, disabled=user.disabled)


@router.get("/users", response_model=UsersPublic)
def list_users(principal: Reader, identity: Identity) -> UsersPublic:
    return UsersPublic(users=[
        UserPublic(name=u.name, tenant=u.tenant, role=u.role, language=u.language, timezone=u.timezone,
                   created=u.created, disabled=u.disabled)
        for u in identity.store.users(None) if u.tenant in principal.scope
    ])


@router.post("/keys", response_model=KeyCreated, status_code=status.HTTP_201_CREATED)
def create_key(body: KeyCreate, principal: Admin, identity: Identity) -> KeyCreated:
    in_scope(principal, body.tenant)
    if body.role not in KEY_ROLES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            "role: sensors get their keys by enrollment (POST /api/v1/sensors/enrollments)")
    now = utc_now()
    expires = now + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    token, key = identity.create_key(kind="api", name=body.name, tenant=body.tenant, role=body.role,
                                     actor=principal.name, now=now, expires=expires)
    return KeyCreated(key=key_public(key), token=token)


@router.get("/keys", response_model=KeysPublic)
def list_keys(principal: Reader, identity: Identity) -> KeysPublic:
    return KeysPublic(keys=[key_public(k) for k in identity.store.keys(None) if k.tenant in principal.scope])


@router.delete("/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_key(key_id: Annotated[str, Path(max_length=64)], principal: Admin, identity: Identity) -> Response:
    key = identity.store.key(key_id)
    if key is None or key.tenant not in principal.scope:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no key {key_id!r}")
    if not identity.revoke_key(key_id, principal.name, utc_now()):
        raise HTTPException(status.HTTP_409_CONFLICT, f"key {key_id!r} is already revoked")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
