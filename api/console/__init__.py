"""The analysts' console: server-rendered pages from the same FastAPI app as the API.

Modules, in the order a visit meets them:
- `i18n`: catalogues (Vietnamese default, English), the visitor's language, dates in the user's zone.
- `session`: the signed-in user of a page (session cookie), CSRF on every form, `SignInRequired`.
- `render`: one autoescaping Jinja2 environment per language; `labels`: msgids of shown values.
- `pages_auth`: sign-in form, sign-in, sign-out, language switch.
- `queue`, `evidence`, `pages_incidents`: the incident queue, the incident page, their changes.
- `overview`, `charts`, `pages_overview`: event search, dashboard (SVG charts), sensors, rules.

`install(app)` mounts `/static`, includes `router`, builds the renderer into
`app.state.console` and turns `SignInRequired` into a 303 to `/`. Pages read only what
`create_app` keeps on `app.state` (auth, tree, events, incidents, sensors, incident_settings,
sensor_watch, playbook_runner) and, when present, `app.state.engine` (a `SigmaEngine`) or
`app.state.ruleset` for the rules page. Every store read passes the principal's scope.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.console import pages_auth, pages_incidents, pages_overview
from api.console.render import Renderer, error_page, mark_console_page
from api.console.session import SignInRequired

STATIC_DIR = Path(__file__).resolve().parent / "static"

router = APIRouter(include_in_schema=False, dependencies=[Depends(mark_console_page)])
for _pages in (pages_auth.router, pages_incidents.router, pages_overview.router):
    router.include_router(_pages)


async def _to_sign_in(request: Request, exc: Exception) -> Response:
    return RedirectResponse("/", status_code=303)


def _html_errors(app: FastAPI) -> None:
    """An error on a console page (403, 404, 409, ...) answers an HTML page in the user's language;
    every other path keeps the handler the app had (the API's JSON errors)."""
    previous = app.exception_handlers.get(StarletteHTTPException)

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if getattr(request.state, "console_page", False):
            return error_page(request, exc)
        if previous is None:
            raise exc
        answer = previous(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    app.add_exception_handler(StarletteHTTPException, handler)


def install(app: FastAPI) -> None:
    """Serve the console from `app`: static files, pages, the sign-in redirect, HTML errors."""
    app.state.console = Renderer()
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)
    app.add_exception_handler(SignInRequired, _to_sign_in)
    _html_errors(app)


__all__ = ["STATIC_DIR", "install", "router"]
