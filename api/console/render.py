"""Pages from templates: one Jinja2 environment per language, autoescape on for every template.

In: a template name, the page's values and who is looking. Out: an `HTMLResponse`.

- Autoescape is on for every template whatever its name (`autoescape=True`, not by extension),
  so an event's `<script>` reaches the browser as text; nothing in the console marks a value safe.
- Each language has its own environment with its catalogue installed (newstyle gettext, so `%`
  placeholders are escaped too); choosing one per request shares no mutable state between users.
- Every page gets `lang`, `user` (the principal or None), `csrf`, `fmt` (dates in the user's
  zone), `labels` and `tenant_name`; pages add their own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.exceptions import HTTPException

from api.auth import Principal
from api.console import labels
from api.console.i18n import DEFAULT_TIMEZONE, Formatter, from_accept_language, load_translations, supported
from config.tenants import TenantTree

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


class Renderer:
    """The console's template environments, built once at `install`."""

    def __init__(self, templates_dir: Path = TEMPLATES_DIR) -> None:
        self.translations = load_translations()
        self.environments: dict[str, Environment] = {}
        for language, translations in self.translations.items():
            env = Environment(loader=FileSystemLoader(templates_dir), autoescape=True, undefined=StrictUndefined,
                              extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
            env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
            env.filters["pretty"] = pretty
            self.environments[language] = env

    def gettext(self, language: str, message: str) -> str:
        return self.translations[supported(language)].gettext(message)

    def page(self, request: Request, template: str, values: dict[str, Any], *,
             principal: Principal | None, status_code: int = 200) -> HTMLResponse:
        language = supported(principal.language) if principal else page_language(request)
        fmt = Formatter(language, principal.timezone if principal else DEFAULT_TIMEZONE)
        tree: TenantTree = request.app.state.tree
        context = {
            "lang": language, "user": principal, "csrf": principal.csrf if principal else "", "fmt": fmt,
            "labels": labels, "tenant_name": _tenant_namer(tree), "path": request.url.path,
            "current": request.url.path + (f"?{request.url.query}" if request.url.query else ""), **values,
        }
        html = self.environments[language].get_template(template).render(context)
        return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


def pretty(value: Any, indent: int | None = None) -> str:
    """JSON for people (non-ASCII kept), returned as plain text so that autoescape escapes it."""
    return json.dumps(value, ensure_ascii=False, indent=indent, default=str, sort_keys=True)


def page_language(request: Request) -> str:
    """Before sign-in: `?lang=` if given, else the browser's Accept-Language."""
    asked = request.query_params.get("lang")
    return supported(asked) if asked else from_accept_language(request.headers.get("accept-language"))


def _tenant_namer(tree: TenantTree) -> Any:
    def name(tenant: str) -> str:
        return tree.get(tenant).name if tenant in tree else tenant
    return name


def mark_console_page(request: Request) -> None:
    """Router dependency: errors of this request answer HTML (see `api.console.install`)."""
    request.state.console_page = True


def error_page(request: Request, exc: HTTPException) -> HTMLResponse:
    """The error as a page; signed-in users see the navigation, the detail is shown as text."""
    principal = getattr(request.state, "principal", None)
    response = renderer(request).page(request, "error.html", {"status": exc.status_code, "detail": exc.detail},
                                      principal=principal if isinstance(principal, Principal) else None,
                                      status_code=exc.status_code)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


def renderer(request: Request) -> Renderer:
    found: Renderer = request.app.state.console
    return found
