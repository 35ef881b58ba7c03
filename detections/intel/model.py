"""The threat-intelligence records: `Indicator`, its type and TLP marking, and what an import yields.

In: values from STIX patterns, MISP attributes, the API or the command line. Out: `Indicator`s
whose `value` is normalised for its type (so the matcher compares plain strings):
- ipv4/ipv6: the canonical address text (`ipaddress`); cidr: the network text with host bits
  cleared (`198.51.100.7/24` is refused: strict), a /32 or /128 becomes the address type;
- domain: lower case, no trailing dot; matches the domain and every subdomain;
- url, user_agent, ja4: stripped text; md5/sha1/sha256/ja3: lower-case hex of the right length;
  email: lower case.
`normalise` raises `IntelError` naming the type and value for anything else.

Ids are deterministic: (publisher, source, type, value) always gives the same id, so importing a
bundle again overwrites instead of duplicating. An indicator is active at `t` when
`valid_from <= t < valid_until` (a missing bound is open).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from config.errors import GovsocError, SourceLocation
from pipeline.ids import stable_id
from pipeline.records import Severity, parse_iso, to_iso


class IntelError(GovsocError):
    """An indicator, bundle, event or feed that cannot be imported or stored as given."""


class IndicatorType(StrEnum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"
    CIDR = "cidr"
    DOMAIN = "domain"
    URL = "url"
    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"
    EMAIL = "email"
    JA3 = "ja3"
    JA4 = "ja4"
    USER_AGENT = "user_agent"


class Tlp(StrEnum):
    """Traffic Light Protocol 2.0 markings, from the widest audience to the narrowest."""

    CLEAR = "clear"
    GREEN = "green"
    AMBER = "amber"
    AMBER_STRICT = "amber+strict"
    RED = "red"

    @classmethod
    def from_text(cls, text: str) -> Tlp:
        """`TLP:AMBER+STRICT`, `amber+strict`, `tlp:white` (TLP 1.0 for clear) -> the marking."""
        name = text.strip().lower().removeprefix("tlp:").strip()
        if name == "white":
            return cls.CLEAR
        try:
            return cls(name)
        except ValueError as e:
            raise IntelError(f"unknown TLP marking {text!r} (clear, green, amber, amber+strict, red)") from e


_HEX_LENGTHS = {IndicatorType.MD5: 32, IndicatorType.SHA1: 40, IndicatorType.SHA256: 64, IndicatorType.JA3: 32}
_HEX = re.compile(r"^[0-9a-f]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9_*-]+(\.[a-z0-9_-]+)*$")  # `_` and xn-- labels occur in the wild


def _network(value: str) -> tuple[IndicatorType, str]:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as e:
        raise IntelError(f"cidr {value!r}: not a network ({e})") from e
    if net.prefixlen == net.max_prefixlen:
        return (IndicatorType.IPV4 if net.version == 4 else IndicatorType.IPV6), str(net.network_address)
    return IndicatorType.CIDR, str(net)


def _address(kind: IndicatorType, value: str) -> tuple[IndicatorType, str]:
    if "/" in value:
        return _network(value)
    try:
        address = ipaddress.ip_address(value)
    except ValueError as e:
        raise IntelError(f"{kind.value} {value!r}: not an IP address") from e
    return (IndicatorType.IPV4 if address.version == 4 else IndicatorType.IPV6), str(address)


def normalise(kind: IndicatorType, value: str) -> tuple[IndicatorType, str]:
    """The (type, value) as stored and matched; an address with a prefix becomes cidr (or an address)."""
    if not isinstance(value, str) or not value.strip():
        raise IntelError(f"{kind.value}: empty value")
    text = value.strip()
    if kind in (IndicatorType.IPV4, IndicatorType.IPV6, IndicatorType.CIDR):
        return _address(kind, text)
    if kind in _HEX_LENGTHS:
        lowered = text.lower()
        if len(lowered) != _HEX_LENGTHS[kind] or not _HEX.match(lowered):
            raise IntelError(f"{kind.value} {value!r}: not {_HEX_LENGTHS[kind]} hexadecimal digits")
        return kind, lowered
    if kind is IndicatorType.DOMAIN:
        domain = text.lower().rstrip(".")
        if not _DOMAIN.match(domain):
            raise IntelError(f"domain {value!r}: not a domain name")
        return kind, domain
    if kind is IndicatorType.EMAIL:
        if not _EMAIL.match(text):
            raise IntelError(f"email {value!r}: not an e-mail address")
        return kind, text.lower()
    return kind, text  # url, ja4, user_agent: compared as written


@dataclass(frozen=True, slots=True)
class Indicator:
    """One observable value to watch for, with where it came from and who may see it.

    `recipients` (tenant ids) are the only readers of a TLP:RED indicator besides the publisher;
    `shared_with` widens a TLP:AMBER one beyond the publisher's subtree. `context` keeps the
    related objects of the source (malware, threat actors, campaigns) as `kind: name` lines.
    """

    id: str
    type: IndicatorType
    value: str
    publisher: str
    source: str
    tlp: Tlp = Tlp.GREEN
    confidence: int = 50
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    name: str = ""
    description: str = ""
    kill_chain: tuple[str, ...] = ()  # "kill-chain-name:phase-name"
    labels: tuple[str, ...] = ()
    context: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    shared_with: tuple[str, ...] = ()
    stix_id: str | None = None

    @staticmethod
    def make_id(publisher: str, source: str, kind: IndicatorType, value: str) -> str:
        return stable_id("indicator", publisher, source, kind.value, value)

    def is_active(self, at: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= at) and (
            self.valid_until is None or at < self.valid_until)

    @property
    def severity(self) -> Severity:
        """What a match is worth: confidence 80+ high, 40+ medium, below that low."""
        if self.confidence >= 80:
            return Severity.HIGH
        return Severity.MEDIUM if self.confidence >= 40 else Severity.LOW

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "type": self.type.value, "value": self.value, "publisher": self.publisher,
            "source": self.source, "tlp": self.tlp.value, "confidence": self.confidence,
            "valid_from": to_iso(self.valid_from) if self.valid_from else None,
            "valid_until": to_iso(self.valid_until) if self.valid_until else None,
            "name": self.name, "description": self.description, "kill_chain": list(self.kill_chain),
            "labels": list(self.labels), "context": list(self.context), "recipients": list(self.recipients),
            "shared_with": list(self.shared_with), "stix_id": self.stix_id,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Indicator:
        """The inverse of `to_dict` (the store's column); raises `IntelError` naming the field."""
        try:
            return cls(
                id=str(doc["id"]), type=IndicatorType(doc["type"]), value=str(doc["value"]),
                publisher=str(doc["publisher"]), source=str(doc["source"]), tlp=Tlp(doc["tlp"]),
                confidence=int(doc["confidence"]),
                valid_from=parse_iso(doc["valid_from"], "valid_from") if doc.get("valid_from") else None,
                valid_until=parse_iso(doc["valid_until"], "valid_until") if doc.get("valid_until") else None,
                name=str(doc.get("name", "")), description=str(doc.get("description", "")),
                kill_chain=tuple(doc.get("kill_chain", ())), labels=tuple(doc.get("labels", ())),
                context=tuple(doc.get("context", ())), recipients=tuple(doc.get("recipients", ())),
                shared_with=tuple(doc.get("shared_with", ())), stix_id=doc.get("stix_id"),
            )
        except (KeyError, ValueError, TypeError, GovsocError) as e:
            raise IntelError(f"not an indicator record: {e!r}") from e


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """Who publishes what an import reads, and the marking it gets when the source has none."""

    publisher: str
    source: str = ""  # default: the file name, feed URL or collection
    default_tlp: Tlp = Tlp.GREEN
    recipients: tuple[str, ...] = ()
    shared_with: tuple[str, ...] = ()
    default_confidence: int = 50
    path: str | None = None  # for error locations


@dataclass(slots=True)
class ImportResult:
    """Indicators read, and one issue per object skipped (located at the file and object)."""

    indicators: list[Indicator] = field(default_factory=list)
    issues: list[IntelError] = field(default_factory=list)
    context_objects: int = 0  # malware, threat actors, relationships... kept as context

    def extend(self, other: ImportResult) -> None:
        self.indicators.extend(other.indicators)
        self.issues.extend(other.issues)
        self.context_objects += other.context_objects


def issue(options: ImportOptions, where: str, reason: str) -> IntelError:
    """An import problem located at the file (when known) and the object (`objects[3]`, an id)."""
    return IntelError(reason, SourceLocation(path=options.path, field=where))


def make_indicator(options: ImportOptions, kind: IndicatorType, value: str, **fields: Any) -> Indicator:
    """An indicator of `options.publisher` from a raw (type, value); raises `IntelError` when invalid."""
    kind, value = normalise(kind, value)
    source = options.source or options.path or "import"
    fields.setdefault("tlp", options.default_tlp)
    fields.setdefault("confidence", options.default_confidence)
    fields.setdefault("recipients", options.recipients)
    fields.setdefault("shared_with", options.shared_with)
    return Indicator(id=Indicator.make_id(options.publisher, source, kind, value), type=kind, value=value,
                     publisher=options.publisher, source=source, **fields)
