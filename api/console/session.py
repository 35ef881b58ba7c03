"""Who is looking at a console page, and whether their form may change anything.

In: the `govsoc_session` cookie (set by the sign-in form or the JSON login) and, for a POST, the
URL-encoded form. Out: the `Principal` that every store read is scoped by, or `SignInRequired`,
which `install` turns into a 303 to `/` (a page never answers 401 to a person).

- Pages accept the session cookie only: a bearer key is for programs, which use `/api/v1`.
- A POST must carry the session's CSRF token in the form field `csrf_token` (or `X-CSRF-Token`),
  the rule `api.auth` applies to the API; a wrong or missing one answers 403 and changes nothing.
- The form is parsed here from the raw body (URL-encoded only): the console needs no multipart
  parser, and the body is read once (Starlette caches it for the audit middleware).
- The principal is rate-limited per key and kept on `request.state`, as `api.auth` does, so the
  audit middleware records every console write with its actor.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, HTTPException, Request, status

from api.auth import CSRF_FIELD, CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE, Authenticator, Principal
from api.security import RateLimiter
from pipeline.records import utc_now

MAX_FORM_BYTES = 256 * 1024


class SignInRequired(Exception):
    """No valid session: the page answers 303 to the sign-in form."""


class Form:
    """A URL-encoded form: the first value of a field, or all of them."""

    def __init__(self, fields: Mapping[str, list[str]]) -> None:
        self._fields = fields

    def get(self, name: str, default: str = "") -> str:
        values = self._fields.get(name)
        return values[0] if values else default

    def all(self, name: str) -> list[str]:
        return list(self._fields.get(name, []))


async def read_form(request: Request) -> Form:
    """The request's URL-encoded body (an empty form for any other content type)."""
    cached = getattr(request.state, "console_form", None)
    if isinstance(cached, Form):
        return cached
    form = Form({})
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "form too large")
        form = Form(parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    request.state.console_form = form
    return form


async def page_principal(request: Request) -> Principal:
    """The signed-in user of this page; raises `SignInRequired`, or 403 for a write without its CSRF token."""
    auth: Authenticator = request.app.state.auth
    secret = request.cookies.get(SESSION_COOKIE)
    principal = auth.from_session(secret, utc_now()) if secret else None
    if principal is None:
        raise SignInRequired()
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER) or (await read_form(request)).get(CSRF_FIELD)
        if not sent or principal.csrf is None or not hmac.compare_digest(sent, principal.csrf):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "the CSRF token is missing or wrong")
    limiter: RateLimiter | None = getattr(request.app.state, "limiter", None)
    if limiter is not None and (wait := limiter.retry_after(f"key:{principal.via}:{principal.name}")):
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many requests for this key",
                            headers={"Retry-After": str(wait)})
    request.state.principal = principal
    return principal


PagePrincipal = Annotated[Principal, Depends(page_principal)]
