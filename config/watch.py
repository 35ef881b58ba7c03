"""Service watch configuration: which public services each tenant watches, and how.

In: the `service_watch:` mapping of the settings file. Out: a frozen `ServiceWatchSettings`.
Like every settings model, unknown keys are errors (`extra="forbid"`) so a typo names its key.

A target is exactly one of:
- `url`: an HTTP(S) service: DNS, TCP, TLS (for https), HTTP status, time to first byte, content;
- `address`: a `host:port` pair: DNS, TCP and, with `tls: true`, the TLS handshake;
- `domain`: a domain name: its DNS answers only.

`connect_to` (`ip:port` or `ip`) sends the connection there while keeping the name for SNI, the
Host header and certificate checks (like `curl --connect-to`): a sensor inside a province's
network reaches its portal by its inside address, and tests reach loopback servers.
Expectations are judged by detections/watch; sensors/watch only measures.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

# TenantRef repeats config.settings.TenantId on purpose: settings.py imports this module for its
# `service_watch` field, so importing settings here would be circular.
TargetId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]
TenantRef = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
SecurityLevel = Annotated[int, Field(ge=1, le=5)]
HexSha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
RecordType = Literal["A", "AAAA", "CNAME", "MX", "NS", "TXT"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WatchExpect(_Strict):
    """What a healthy answer looks like. Empty tuples place no condition."""

    status: tuple[Annotated[int, Field(ge=100, le=599)], ...] = (200,)
    must_contain: tuple[Annotated[str, StringConstraints(min_length=1)], ...] = ()
    must_not_contain: tuple[Annotated[str, StringConstraints(min_length=1)], ...] = ()
    cert_issuer: str | None = None  # a substring of the issuer's RFC 4514 name, e.g. "O=VNPT"
    spki_sha256: tuple[HexSha256, ...] = ()  # pinned public keys (any may match), lowercase hex
    dns_answers: tuple[str, ...] = ()  # the expected set of answers (order does not matter)

    @field_validator("dns_answers")
    @classmethod
    def _normalise_answers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted({a.strip().lower().rstrip(".") for a in value if a.strip()}))


class WatchTarget(_Strict):
    """One service of one tenant, checked every `interval_s` seconds."""

    id: TargetId
    tenant: TenantRef
    name: str = ""
    url: str | None = None
    address: str | None = None  # host:port
    domain: str | None = None
    tls: bool = False  # for `address` targets: also check the TLS handshake
    connect_to: str | None = None
    record_types: tuple[RecordType, ...] = ("A",)
    owner: str = ""  # the information system's owner (chủ quản), for notification
    asset_id: str | None = None
    security_level: SecurityLevel = 2
    interval_s: Annotated[int, Field(ge=5, le=86_400)] = 60
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0
    ca_file: Path | None = None  # extra trust anchors (a private CA); else the system's
    expect: WatchExpect = WatchExpect()
    vantage_points: tuple[str, ...] = ()  # sensors that check it; empty: every vantage point

    @model_validator(mode="after")
    def _one_kind(self) -> WatchTarget:
        given = [k for k in ("url", "address", "domain") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"target {self.id!r}: give exactly one of url, address, domain (got {given or 'none'})")
        if self.url is not None:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"target {self.id!r}: url must be http(s)://host/..., got {self.url!r}")
        if self.address is not None:
            _split_host_port(self.address, f"target {self.id!r}: address")
        if self.connect_to is not None:
            split_connect_to(self.connect_to, f"target {self.id!r}: connect_to")
        return self

    @property
    def connect_address(self) -> tuple[str | None, int]:
        """(address, port) to connect to: `connect_to` when given, else (None: resolve the name, the port)."""
        port = self.port or 0
        if self.connect_to is None:
            return None, port
        host, given = split_connect_to(self.connect_to, "connect_to")
        return host, given or port

    @property
    def kind(self) -> Literal["url", "address", "domain"]:
        return "url" if self.url else "address" if self.address else "domain"

    @property
    def hostname(self) -> str:
        """The name checked: the URL's host, the address's host, or the domain."""
        if self.url:
            return (urlsplit(self.url).hostname or "").lower()
        if self.address:
            return _split_host_port(self.address, "address")[0].lower()
        return (self.domain or "").lower().rstrip(".")

    @property
    def port(self) -> int | None:
        if self.url:
            parts = urlsplit(self.url)
            return parts.port or (443 if parts.scheme == "https" else 80)
        if self.address:
            return _split_host_port(self.address, "address")[1]
        return None

    @property
    def uses_tls(self) -> bool:
        return bool(self.url and self.url.startswith("https://")) or (self.address is not None and self.tls)


def split_connect_to(text: str, what: str) -> tuple[str, int | None]:
    """`ip`, `ip:port`, `[ipv6]` or `[ipv6]:port` -> (ip, port or None); raises ValueError naming `what`."""
    host, port = text, None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise ValueError(f"{what}: expected [ipv6]:port, got {text!r}")
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, raw = text.partition(":")
        if not raw.isdigit():
            raise ValueError(f"{what}: bad port in {text!r}")
        port = int(raw)
    try:
        ipaddress.ip_address(host)
    except ValueError as e:
        raise ValueError(f"{what}: expected an IP address[:port], got {text!r}") from e
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{what}: port out of range in {text!r}")
    return host, port


def _split_host_port(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{what}: expected host:port, got {text!r}")
    return host.strip("[]"), int(port)


class OutagePolicy(_Strict):
    """An outage is declared after `consecutive_failures` failed checks in a row from each of at
    least `vantage_points` vantage points; it clears when that no longer holds after a success."""

    consecutive_failures: Annotated[int, Field(ge=1, le=100)] = 3
    vantage_points: Annotated[int, Field(ge=1, le=50)] = 1


class CertificatePolicy(_Strict):
    warn_days: Annotated[int, Field(ge=0, le=365)] = 14  # a certificate expiring sooner raises an alert
    probe_legacy_protocols: bool = True  # one more handshake per check, offering TLS 1.0/1.1 only


class DefacementPolicy(_Strict):
    """How the learned page baseline is kept: the first `learn_checks` good pages make it; a later
    page judged benign replaces it (daily news drift never accumulates)."""

    learn_checks: Annotated[int, Field(ge=1, le=50)] = 1
    extra_phrases: tuple[Annotated[str, StringConstraints(min_length=3)], ...] = ()


class ServiceWatchSettings(_Strict):
    """Targets per tenant, the vantage point this process checks from, and the schedule."""

    vantage_point: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "central"
    resolver: str | None = None  # "ip" or "ip:port" for DNS checks; None: the system's resolver
    concurrency: Annotated[int, Field(ge=1, le=5000)] = 100
    jitter_s: Annotated[float, Field(ge=0, le=3600)] = 5.0
    outage: OutagePolicy = OutagePolicy()
    certificates: CertificatePolicy = CertificatePolicy()
    defacement: DefacementPolicy = DefacementPolicy()
    targets: tuple[WatchTarget, ...] = ()

    @model_validator(mode="after")
    def _unique_targets(self) -> ServiceWatchSettings:
        seen: set[tuple[str, str]] = set()
        for index, target in enumerate(self.targets):
            key = (target.tenant, target.id)
            if key in seen:
                raise ValueError(f"targets[{index}]: tenant {target.tenant!r} already has a target {target.id!r}")
            seen.add(key)
        if self.resolver is not None:
            resolver_host(self.resolver)
        return self

    def target(self, tenant: str, target_id: str) -> WatchTarget | None:
        for target in self.targets:
            if target.tenant == tenant and target.id == target_id:
                return target
        return None


def resolver_host(text: str) -> tuple[str, int]:
    """`"192.0.2.53"` or `"127.0.0.1:5353"` -> (address, port); raises ValueError naming the value."""
    host, port = split_connect_to(text, "resolver")
    return host, port or 53
