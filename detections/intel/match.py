"""Events -> intel alerts: every loaded indicator against the ECS fields of every event.

Stage: detections, beside the Sigma engine (same shape: `IntelMatcher.process(events) -> alerts`).
In: batches of events (nested ECS, or a field as one flat dotted key). Out: one `DetectionKind.INTEL`
alert per (event, indicator), in event order.

Lookups, each independent of how many indicators are loaded (bench/intel.py measures it):
- exact values (addresses, URLs, hashes, e-mail, JA3/JA4, user agents): one dict per family;
- domains: the name and each parent domain in the same dict (a suffix walk, at most ~5 probes),
  so an indicator `evil.example` matches `a.b.evil.example`;
- networks: per prefix length, a dict from the masked network to its indicators (a radix table
  flattened by length): one probe per distinct prefix length loaded, overlaps allowed.

Invariants:
- An indicator matches only while active at the event's `@timestamp` (`valid_from <= t <
  valid_until`) and only events of tenants allowed to see it (sharing.py: TLP and the tree).
- Deterministic: the alert id is `Alert.make_id(tenant, rule, entity, event id)` with rule
  `intel:<indicator id>` and entity `{field: value}`, so a replay yields the same alerts. The
  same indicator seen in several fields of one event (source.ip and related.ip) is one alert.
- Stateless between batches (a per-tenant visibility cache aside). The fields read are fixed when
  the matcher is built: to load more indicators, build a new one (feed.py does).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from config.tenants import TenantTree
from detections.intel.model import Indicator, IndicatorType
from detections.intel.sharing import Audience
from pipeline.records import Alert, DetectionKind, Event

RULE_PREFIX = "intel:"

IP_FIELDS = ("source.ip", "destination.ip", "client.ip", "server.ip", "host.ip", "related.ip",
             "dns.resolved_ip", "source.address", "destination.address")
DOMAIN_FIELDS = ("dns.question.name", "url.domain", "destination.domain", "source.domain", "server.domain",
                 "client.domain", "tls.client.server_name", "related.hosts")
URL_FIELDS = ("url.original", "url.full")
HASH_FIELDS = ("file.hash.md5", "file.hash.sha1", "file.hash.sha256", "process.hash.md5", "process.hash.sha1",
               "process.hash.sha256", "related.hash")
EMAIL_FIELDS = ("email.from.address", "email.sender.address", "email.to.address", "email.cc.address",
                "email.reply_to.address", "user.email")
JA3_FIELDS = ("tls.client.ja3", "tls.server.ja3s")
JA4_FIELDS = ("tls.client.ja4",)
UA_FIELDS = ("user_agent.original",)

FAMILY_OF = {
    IndicatorType.IPV4: "ip", IndicatorType.IPV6: "ip", IndicatorType.DOMAIN: "domain", IndicatorType.URL: "url",
    IndicatorType.MD5: "hash", IndicatorType.SHA1: "hash", IndicatorType.SHA256: "hash",
    IndicatorType.EMAIL: "email", IndicatorType.JA3: "ja3", IndicatorType.JA4: "ja4",
    IndicatorType.USER_AGENT: "user_agent",
}
FIELDS_OF = {"ip": IP_FIELDS, "domain": DOMAIN_FIELDS, "url": URL_FIELDS, "hash": HASH_FIELDS,
             "email": EMAIL_FIELDS, "ja3": JA3_FIELDS, "ja4": JA4_FIELDS, "user_agent": UA_FIELDS}
_LOWERED = frozenset({"domain", "hash", "email", "ja3"})  # families normalised to lower case


@dataclass(frozen=True, slots=True)
class Match:
    """One indicator seen in one field of one event."""

    indicator: Indicator
    event: Event
    field: str
    value: str

    def alert(self) -> Alert:
        ind, entity = self.indicator, {self.field: self.value}
        rule_id = RULE_PREFIX + ind.id
        kill_chain = tuple(f"kill_chain.{phase}" for phase in ind.kill_chain)
        return Alert(
            id=Alert.make_id(self.event.tenant, rule_id, entity, self.event.id),
            tenant=self.event.tenant, timestamp=self.event.timestamp, kind=DetectionKind.INTEL,
            rule_id=rule_id, rule_title=f"Threat intelligence: {ind.type.value} {ind.value}",
            severity=ind.severity, event_ids=(self.event.id,), entity=entity,
            tags=("intel", f"tlp:{ind.tlp.value}", f"intel.source:{ind.source}", *kill_chain),
            description=(f"{self.field}={self.value} matched indicator {ind.id} ({ind.type.value} {ind.value}) "
                         f"from {ind.source}, published by {ind.publisher}, confidence {ind.confidence}, "
                         f"TLP:{ind.tlp.value.upper()}" + (f", STIX {ind.stix_id}" if ind.stix_id else "")
                         + (f"; {ind.name}" if ind.name else "")),
        )


def indicator_id_of(alert: Alert) -> str | None:
    """The indicator an intel alert is about (None for any other alert)."""
    if alert.kind is not DetectionKind.INTEL or not alert.rule_id.startswith(RULE_PREFIX):
        return None
    return alert.rule_id[len(RULE_PREFIX):]


def _walk(doc: Mapping[str, Any], parts: tuple[str, ...]) -> object:
    """The value at nested `parts`, or None; events are nested ECS (a flat dotted key is read by the caller)."""
    node: object = doc
    for part in parts:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        yield from (v for v in value if isinstance(v, str))


class IndicatorIndex:
    """The loaded indicators, indexed for the lookups in the module docstring."""

    def __init__(self, indicators: Iterable[Indicator] = ()) -> None:
        self._exact: dict[str, dict[str, list[Indicator]]] = {family: {} for family in FIELDS_OF}
        self._networks: dict[int, dict[int, dict[int, list[Indicator]]]] = {4: {}, 6: {}}  # version->len->net
        self._tables: dict[int, list[tuple[int, dict[int, list[Indicator]]]]] = {4: [], 6: []}  # (mask, nets)
        self.size = 0
        for indicator in indicators:
            self.add(indicator)

    def add(self, indicator: Indicator) -> None:
        self.size += 1
        if indicator.type is IndicatorType.CIDR:
            net = ipaddress.ip_network(indicator.value)
            by_len = self._networks[net.version].setdefault(net.prefixlen, {})
            by_len.setdefault(int(net.network_address), []).append(indicator)
            bits = net.max_prefixlen
            self._tables[net.version] = [(((1 << p) - 1) << (bits - p), nets)
                                         for p, nets in sorted(self._networks[net.version].items())]
        else:
            self._exact[FAMILY_OF[indicator.type]].setdefault(indicator.value, []).append(indicator)

    @property
    def families(self) -> tuple[str, ...]:
        """The families with at least one indicator (the matcher reads only their fields)."""
        found = [f for f, table in self._exact.items() if table]
        if "ip" not in found and any(self._networks.values()):
            found.append("ip")
        return tuple(found)

    def lookup(self, family: str, value: str) -> list[Indicator]:
        table = self._exact[family]
        if family == "ip":
            return [*table.get(value, ()), *self._in_networks(value)]
        if family in _LOWERED:
            value = value.lower()
        if family == "domain":
            return self._domain(table, value.rstrip("."))
        return table.get(value, [])

    @staticmethod
    def _domain(table: dict[str, list[Indicator]], name: str) -> list[Indicator]:
        found: list[Indicator] = []
        while name:
            found.extend(table.get(name, ()))
            _, _, name = name.partition(".")
        return found

    def _in_networks(self, value: str) -> list[Indicator]:
        if not self._tables[4] and not self._tables[6]:
            return []
        version, as_int = _address_int(value)
        found: list[Indicator] = []
        for mask, nets in self._tables.get(version, ()):
            hit = nets.get(as_int & mask)
            if hit:
                found.extend(hit)
        return found


def _address_int(value: str) -> tuple[int, int]:
    """(4 or 6, the address as an int), or (0, 0) for text that is no address.

    inet_pton, not ipaddress.ip_address: a third of the time per event went to the latter with
    100,000 indicators loaded (bench/intel.py); inet_pton is as strict (no `1.2.3` forms).
    """
    family, version = (socket.AF_INET6, 6) if ":" in value else (socket.AF_INET, 4)
    try:
        return version, int.from_bytes(socket.inet_pton(family, value), "big")
    except (OSError, ValueError):
        return 0, 0


class IntelMatcher:
    """An `IndicatorIndex` run over a stream of events, within the sharing rules of `tree`."""

    def __init__(self, indicators: Iterable[Indicator], tree: TenantTree) -> None:
        self.index = IndicatorIndex(indicators)
        self._audience = Audience(tree)
        # (family, field, its parts): read with a nested walk, not Event.get (a third of the time
        # per event went to the general lookup, bench/intel.py)
        self._fields = tuple((family, name, tuple(name.split(".")))
                             for family in self.index.families for name in FIELDS_OF[family])

    def process(self, events: Sequence[Event]) -> list[Alert]:
        """The alerts these events raise, in event order."""
        return [match.alert() for match in self.matches(events)]

    def matches(self, events: Sequence[Event]) -> list[Match]:
        found: list[Match] = []
        for event in events:
            found.extend(self.match_event(event))
        return found

    def match_event(self, event: Event) -> list[Match]:
        found: list[Match] = []
        seen: set[str] = set()  # indicator ids already raised for this event
        looked: set[tuple[str, str]] = set()  # (family, value): source.ip and related.ip often repeat
        doc = event.doc
        for family, name, parts in self._fields:
            for value in _strings(doc[name] if name in doc else _walk(doc, parts)):
                if (family, value) in looked:
                    continue
                looked.add((family, value))
                for indicator in self.index.lookup(family, value):
                    if indicator.id not in seen and self._applies(indicator, event.tenant, event.timestamp):
                        seen.add(indicator.id)
                        found.append(Match(indicator, event, name, value))
        return found

    def _applies(self, indicator: Indicator, tenant: str, at: datetime) -> bool:
        return indicator.is_active(at) and self._audience.allows(indicator, tenant)
