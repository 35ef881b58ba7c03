"""The API's hardening, as ASGI middleware: body size, rate limits, security headers, errors, audit.

Order, outermost first (see `install`): errors -> headers -> body limit -> address rate limit ->
audit of writes -> the routes. Each piece:
- `BodyLimit`: a request body over `max_bytes` answers 413 before a route runs, whether the
  client sent a Content-Length or streamed it chunked (read up to the limit first).
- `RateLimiter`: a token bucket per subject (`addr:<ip>` here, `key:<name>` in `api.auth` once
  the caller is known): `rate` per second sustained, `burst` at once; over it, 429 with
  Retry-After. In memory, per process: a scale-out deployment puts its proxy's limits in front.
- Security headers on every answer: no sniffing, no framing, no referrer, a strict CSP for the
  console (the OpenAPI pages, which load their own assets, get none), `no-store` for /api.
- Errors: a route's own 422 takes the documented validation-error shape; an exception a route
  did not expect answers 500 with `{"detail": "internal error",
  "request_id": ...}`; the traceback goes to the log with that id, never to the client.
- Audit: every write (POST, PUT, PATCH, DELETE) by an authenticated caller is appended to the
  audit trail with its route, path parameters and status, whether it was allowed or not.

Written here rather than with slowapi or secure.py: each of these is a few lines on ASGI, and one
module that shows the whole door is easier to review than four plug-ins' configuration.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_OPENAPI_PAGES = ("/docs", "/redoc")
CONSOLE_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


class RateLimiter:
    """Token buckets per subject, bounded: the least recently seen subjects are forgotten first."""

    def __init__(self, rate: float, burst: int, max_subjects: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self._max = max_subjects
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, subject: str, now: float | None = None) -> int:
        """0 if `subject` may go on (a token is taken), else the whole seconds until it may."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.pop(subject, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            wait = 0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = max(1, math.ceil((1.0 - tokens) / self.rate))
            self._buckets[subject] = (tokens, now)
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
            return wait


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


class BodyLimit:
    """413 for a body over `max_bytes`: at once when Content-Length says so, else once the streamed
    body passes the limit. A body without a length is read (up to the limit) before the app runs
    and replayed to it, so the app never starts on a body it will not get whole."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.max_bytes:
                await self._refuse(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = _json(413, {"detail": f"request body over {self.max_bytes} bytes"})
        await response(scope, receive, send)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's answer, except that a 422 with plain messages takes the validation-error shape.

    A 422 is documented as `HTTPValidationError` (a list of `{loc, msg, type}`); a route that
    refuses a well-formed body for a reason of its own says so in the same shape.
    """
    assert isinstance(exc, StarletteHTTPException)
    messages = [exc.detail] if isinstance(exc.detail, str) else exc.detail
    if exc.status_code == 422 and isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        detail: Any = [{"loc": ["body"], "msg": m, "type": "value_error"} for m in messages]
        exc = StarletteHTTPException(422, detail, exc.headers)
    return await http_exception_handler(request, exc)


def install(app: FastAPI, *, max_body_bytes: int, limiter: RateLimiter, audit: Callable[..., Any],
            secure_cookies: bool) -> None:
    """Add the middleware in the order the module docstring gives (Starlette adds outermost last)."""
    app.add_exception_handler(StarletteHTTPException, _http_error)

    @app.middleware("http")
    async def audit_writes(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        principal = getattr(request.state, "principal", None)
        if request.method in WRITE_METHODS and principal is not None:
            route = request.scope.get("route")
            path = getattr(route, "path", request.url.path)
            params: MutableMapping[str, Any] = dict(request.path_params)
            try:
                audit(actor=principal.name, tenant=principal.tenant, action=f"api.{request.method.lower()}",
                      object_type="route", object_id=path, details={**params, "status": response.status_code})
            except Exception:  # the answer is already made; a failed audit write must be seen, not hidden
                log.exception("audit_write_failed", route=path)
        return response

    @app.middleware("http")
    async def limit_addresses(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path == "/healthz":
            return await call_next(request)
        wait = limiter.retry_after(f"addr:{client_address(request)}")
        if wait:
            return _json(429, {"detail": "too many requests from this address"}, {"Retry-After": str(wait)})
        return await call_next(request)

    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if not request.url.path.startswith(_OPENAPI_PAGES):
            response.headers.setdefault("Content-Security-Policy", CONSOLE_CSP)
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        if secure_cookies:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    @app.middleware("http")
    async def errors(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        try:
            return await call_next(request)
        except Exception:
            request_id = secrets.token_hex(8)
            log.exception("request_failed", request_id=request_id, path=request.url.path, method=request.method)
            return _json(500, {"detail": "internal error", "request_id": request_id})
