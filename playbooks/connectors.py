"""Connectors: how a playbook step reaches a system outside govsoc (a webhook, a firewall's API).

In: a `ConnectorRequest` (action, target, payload and the idempotency key of the step).
Out: a `ConnectorResult` (status and the response body), or a raised `ConnectorError`.

Contract:
- `send` is at-least-once from the runner's side: it may be called again with the same
  `idempotency_key` after a restart, and a receiver that honours the `Idempotency-Key` header
  acts once. The runner never calls it again once a result was recorded (runner.py).
- `HttpConnector` POSTs the request as JSON with a timeout, and retries connection failures,
  timeouts and 5xx answers with exponential backoff (`backoff_s * 2**attempt`); a 4xx answer is
  the receiver refusing the request, and is raised at once. `SmtpConnector` (smtp.py) mails.
- `HttpConnector`'s bearer token is never an option: `token_file` names a file whose first line is
  the token, read at each send (a rotated token needs no restart) and sent as `Authorization`.
- A request's `retries` and `timeout_s`, when set (a step's own), override the connector's.
- Connector kinds are registered by the word a deployment writes (`CONNECTOR_KINDS`, lazy
  `module:Class` strings: the mail connector is not imported by a deployment that only posts);
  each class builds itself from its options (`from_options`), and the configured instances are
  found by name in a `ConnectorRegistry`.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

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
    retries: int | None = None  # the step's own, else the connector's
    timeout_s: float | None = None

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
    token_file: Path | str | None = None
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> Self:
        return _construct(cls, name, options)

    def send(self, request: ConnectorRequest) -> ConnectorResult:
        headers = {**self.headers, "Idempotency-Key": request.idempotency_key}
        if self.token_file is not None:
            headers["Authorization"] = f"Bearer {read_token(Path(self.token_file))}"
        retries = self.retries if request.retries is None else request.retries
        timeout_s = self.timeout_s if request.timeout_s is None else request.timeout_s
        last = ""
        for attempt in range(retries + 1):
            if attempt:
                self.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = httpx.post(self.url, json=request.to_json(), headers=headers, timeout=timeout_s)
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
        raise ConnectorError(f"connector {self.name!r}: {self.url} failed after {retries + 1} attempts: {last}")


def read_token(path: Path) -> str:
    """The bearer token on the first line of `path`."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConnectorError(f"{path}: cannot read the token: {e}") from e
    token = lines[0].strip() if lines else ""
    if not token or any(c.isspace() for c in token):
        raise ConnectorError(f"{path}:1: expected the token alone on the first line")
    return token


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


C = TypeVar("C")


def _construct(cls: Callable[..., C], name: str, options: Mapping[str, Any]) -> C:
    try:
        return cls(name=name, **options)
    except TypeError as e:  # an option the class does not take
        raise PlaybookError(f"connector {name!r}: {e}") from e


CONNECTOR_KINDS: Mapping[str, str] = {
    "http": "playbooks.connectors:HttpConnector",
    "smtp": "playbooks.smtp:SmtpConnector",
}
"""Connector kinds by the word a deployment writes; every concrete connector is listed here."""


def connector_class(kind: str) -> Any:
    """The class registered for `kind` (it has `from_options(name, options)`)."""
    if kind not in CONNECTOR_KINDS:
        raise PlaybookError(f"unknown connector kind {kind!r} (known: {', '.join(CONNECTOR_KINDS)})")
    module, _, name = CONNECTOR_KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


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
            connectors[name] = connector_class(kind).from_options(name, values)
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
