"""Connectors: how a playbook step reaches a system outside govsoc (a webhook, a firewall's API).

In: a `ConnectorRequest` (action, target, payload and the idempotency key of the step).
Out: a `ConnectorResult` (status and the response body), or a raised `ConnectorError`.

Contract:
- `send` is at-least-once from the runner's side: it may be called again with the same
  `idempotency_key` after a restart, and a receiver that honours the `Idempotency-Key` header
  acts once. The runner never calls it again once a result was recorded (runner.py).
- `HttpConnector` POSTs the request as JSON with a timeout, and retries connection failures,
  timeouts and 5xx answers with exponential backoff (`backoff_s * 2**attempt`); a 4xx answer is
  the receiver refusing the request, and is raised at once.
- Connector kinds are registered by the word a deployment writes (`CONNECTOR_KINDS`); the
  configured instances are found by name in a `ConnectorRegistry`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import structlog

from playbooks.errors import PlaybookError

log = structlog.get_logger(__name__)


class ConnectorError(PlaybookError):
    """A connector could not deliver a request (after its retries)."""


@dataclass(frozen=True, slots=True)
class ConnectorRequest:
    action: str
    target: str
    payload: Mapping[str, Any]
    idempotency_key: str

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "target": self.target, "payload": dict(self.payload),
                "idempotency_key": self.idempotency_key}


@dataclass(frozen=True, slots=True)
class ConnectorResult:
    status: int
    body: Any = None
    attempts: int = 1


class Connector(Protocol):
    name: str

    def send(self, request: ConnectorRequest) -> ConnectorResult:
        """Deliver `request`; raise `ConnectorError` if it could not be delivered."""
        ...


@dataclass
class HttpConnector:
    """POST each request as JSON to `url`, with `Idempotency-Key` set to the step's key."""

    name: str
    url: str
    timeout_s: float = 10.0
    retries: int = 3
    backoff_s: float = 0.5
    headers: Mapping[str, str] = field(default_factory=dict)
    sleep: Callable[[float], None] = time.sleep

    def send(self, request: ConnectorRequest) -> ConnectorResult:
        headers = {**self.headers, "Idempotency-Key": request.idempotency_key}
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = httpx.post(self.url, json=request.to_json(), headers=headers, timeout=self.timeout_s)
            except httpx.HTTPError as e:
                last = f"{type(e).__name__}: {e}"
                log.warning("connector_retry", connector=self.name, attempt=attempt + 1, reason=last)
                continue
            if response.status_code >= 500:
                last = f"HTTP {response.status_code}"
                log.warning("connector_retry", connector=self.name, attempt=attempt + 1, reason=last)
                continue
            if response.status_code >= 400:
                raise ConnectorError(f"connector {self.name!r}: {self.url} refused the request "
                                     f"(HTTP {response.status_code})")
            return ConnectorResult(response.status_code, _body(response), attempt + 1)
        raise ConnectorError(f"connector {self.name!r}: {self.url} failed after {self.retries + 1} attempts: {last}")


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


CONNECTOR_KINDS: Mapping[str, Callable[..., Connector]] = {"http": HttpConnector}
"""Connector kinds by the word a deployment writes; every concrete connector is listed here."""


class ConnectorRegistry:
    """The configured connectors, found by the name a playbook step writes."""

    def __init__(self, connectors: Mapping[str, Connector] | None = None) -> None:
        self._connectors: dict[str, Connector] = dict(connectors or {})

    @classmethod
    def from_config(cls, config: Mapping[str, Mapping[str, Any]]) -> ConnectorRegistry:
        """Build from `{name: {"kind": "http", "url": ..., ...}}`; an unknown kind is a `PlaybookError`."""
        connectors: dict[str, Connector] = {}
        for name, options in config.items():
            values = dict(options)
            kind = values.pop("kind", "http")
            if kind not in CONNECTOR_KINDS:
                raise PlaybookError(f"connector {name!r}: unknown kind {kind!r} (known: {', '.join(CONNECTOR_KINDS)})")
            connectors[name] = CONNECTOR_KINDS[kind](name=name, **values)
        return cls(connectors)

    def add(self, connector: Connector) -> None:
        self._connectors[connector.name] = connector

    def get(self, name: str) -> Connector:
        try:
            return self._connectors[name]
        except KeyError:
            known = ", ".join(sorted(self._connectors)) or "none configured"
            raise PlaybookError(f"no connector named {name!r} (configured: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._connectors
