"""Sign-in, sign-out and the language switch.

- `GET /`: the sign-in form for a visitor without a session (in the browser's language, or
  `?lang=`), a 303 to the queue for a signed-in user.
- `POST /login`: the same sign-in as `POST /api/v1/auth/login` (throttled, audited by
  `IdentityService.sign_in`), then the same session cookie and a 303 to the queue; a wrong
  password shows the form again with 401, a locked user or address with 429 and Retry-After.
  The form carries a one-time token also set as a cookie (double submit), so another site cannot
  sign a visitor into an account of its choosing.
- `POST /logout`: ends the session (CSRF-checked like every write) and returns to the form.
- `POST /language`: stores the user's language (`IdentityService.set_language`) and returns to
  the page it came from (a local path only).
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.auth import SESSION_COOKIE, Authenticator
from api.console.i18n import LANGUAGES
from api.console.render import page_language, renderer
from api.console.session import PagePrincipal, read_form
from api.identity.service import IdentityService, LoginLocked
from api.security import client_address
from pipeline.records import utc_now

router = APIRouter(include_in_schema=False)

LOGIN_CSRF_COOKIE = "govsoc_login_csrf"
HOME = "/incidents"


def _identity(request: Request) -> IdentityService:
    auth: Authenticator = request.app.state.auth
    if auth.identity is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this deployment has no console sign-in")
    return auth.identity


def _signin_form(request: Request, *, error: str = "", status_code: int = 200, name: str = "",
                 retry_after: int = 0) -> Response:
    token = secrets.token_urlsafe(32)
    response = renderer(request).page(request, "signin.html", {
        "login_token": token, "error": error, "name": name, "retry_after": retry_after,
        "other_lang": "en" if page_language(request) == "vi" else "vi",
    }, principal=None, status_code=status_code)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login",
                        secure=request.app.state.secure_cookies, max_age=3600)
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    auth: Authenticator = request.app.state.auth
    secret = request.cookies.get(SESSION_COOKIE)
    if secret and auth.from_session(secret, utc_now()) is not None:
        return RedirectResponse(HOME, status_code=status.HTTP_303_SEE_OTHER)
    return _signin_form(request)


@router.post("/login")
async def login(request: Request) -> Response:
    identity = _identity(request)
    form = await read_form(request)
    sent, expected = form.get("login_token"), request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        return _signin_form(request, error="expired", status_code=status.HTTP_403_FORBIDDEN)
    name, password, now = form.get("name").strip()[:100], form.get("password")[:1000], utc_now()
    try:
        user = identity.sign_in(name, password, client_address(request), now) if name and password else None
    except LoginLocked as e:
        return _signin_form(request, error="locked", status_code=status.HTTP_429_TOO_MANY_REQUESTS, name=name,
                            retry_after=e.retry_after_s)
    if user is None:
        return _signin_form(request, error="wrong", status_code=status.HTTP_401_UNAUTHORIZED, name=name)
    secret, session = identity.open_session(user, now)
    response = RedirectResponse(HOME, status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(SESSION_COOKIE, secret, httponly=True, samesite="strict", path="/",
                        secure=request.app.state.secure_cookies,
                        max_age=int((session.expires - now).total_seconds()))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request, principal: PagePrincipal) -> Response:
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        _identity(request).close_session(secret)
    response = RedirectResponse("/", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def local_path(target: str) -> str:
    """`target` if it is a path on this site (never `//host` or `scheme:`), else the queue."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return HOME


@router.post("/language")
async def set_language(request: Request, principal: PagePrincipal) -> Response:
    form = await read_form(request)
    language = form.get("language")
    if language not in LANGUAGES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"language: one of {', '.join(LANGUAGES)}")
    _identity(request).set_language(principal.name, language, actor=principal.name, now=utc_now())
    return RedirectResponse(local_path(form.get("back")), status_code=status.HTTP_303_SEE_OTHER)
