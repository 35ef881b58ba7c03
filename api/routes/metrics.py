"""`GET /metrics`: Prometheus metrics of this API process, for admins and auditors only.

Counts requests by route template (never the raw path: ids would explode the series), method and
status, and their latency; the registry is the app's own, so two apps in one process (tests) do
not share counters.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from api.auth import Principal, require_roles
from config.settings import Role

router = APIRouter(tags=["metrics"])

Watcher = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.AUDITOR, Role.NATIONAL_COORDINATOR))]


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("govsoc_api_requests", "API requests answered", ["route", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram("govsoc_api_request_seconds", "API request latency", ["route"],
                                 registry=self.registry)


def install(app: FastAPI) -> ApiMetrics:
    metrics = ApiMetrics()
    app.state.metrics = metrics

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.requests.labels(route, request.method, str(response.status_code)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - started)
        return response

    return metrics


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request, principal: Watcher) -> Response:
    registry: ApiMetrics = request.app.state.metrics
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
