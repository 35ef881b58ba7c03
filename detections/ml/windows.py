"""One open window of one entity, held compactly: running sums and sets, never the events themselves.

Stage: inside features.WindowFeaturizer. In: the window's events one at a time, in arrival order.
Out: the window's feature vector when it closes (`values`), the first event ids (the alert's
evidence links), the last event time, the asset of its latest enriched event; and, for checkpoints,
the same state as plain JSON values (`dump` / `OpenWindow.load`).

Invariants:
- The vector is exactly what a pass over the window's events would compute: sums are accumulated in
  event order (same floating-point result), distinct values keep their first-seen order (the flow
  kind's "new destinations" share is taken at close, against the history, in that order), and the
  authentication kinds' "success after failures" follows the order events arrived in.
- Memory is per distinct value (destinations, ports, counterparts, subdomains), not per event: a
  window of 20,000 flows to one server holds one destination.
- `dump()` holds only str, int, float, list and None; `load(dump())` gives a state whose further
  `add`s and `values` equal the original's. A dump that is not one raises `ValueError` naming the
  part at fault.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from detections.ml.fields import (
    CONNECTION_STATE,
    DESTINATION_BYTES,
    DNS_QUESTION_NAME,
    DNS_RESPONSE_CODE,
    FAILED_STATES,
    FLOW_HISTORY,
    NETWORK_PACKETS,
    SOURCE_BYTES,
    field_of,
    number_of,
    shannon_entropy,
    split_domain,
    text_of,
)
from pipeline import ecs
from pipeline.records import Event


class Context(Protocol):
    """What a window needs from its featurizer: local time, and the entity's destination history."""

    def is_off_hours(self, ts: datetime) -> bool: ...

    def new_share(self, tenant: str, entity: str, seen: Sequence[str]) -> float: ...


class WindowState(Protocol):
    def add(self, event: Event, context: Context) -> None: ...

    def values(self, events: int, tenant: str, entity: str, context: Context) -> tuple[float, ...]: ...

    def dump(self) -> list[Any]: ...


def _texts(items: Any, where: str) -> list[str]:
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"{where}: expected a list of strings")
    return items


def _numbers(items: Any, count: int, where: str) -> list[float]:
    if (not isinstance(items, list) or len(items) != count
            or not all(isinstance(i, int | float) and not isinstance(i, bool) for i in items)):
        raise ValueError(f"{where}: expected {count} numbers")
    return items


class AuthState:
    """Failures, distinct counterparts (users of a source, sources of a user), recoveries."""

    __slots__ = ("by_source", "failed_pairs", "failures", "others", "recovered")

    def __init__(self, by_source: bool) -> None:
        self.by_source = by_source
        self.failures = 0
        self.others: dict[str, None] = {}
        self.failed_pairs: dict[str, None] = {}
        self.recovered: dict[str, None] = {}

    def add(self, event: Event, context: Context) -> None:
        fields = (ecs.USER_NAME,) if self.by_source else (ecs.SOURCE_IP, ecs.SOURCE_ADDRESS)
        other = next((v for v in (text_of(field_of(event, f)) for f in fields) if v is not None), "")
        self.others[other] = None
        outcome = text_of(field_of(event, ecs.EVENT_OUTCOME))
        if outcome == "failure":
            self.failures += 1
            self.failed_pairs[other] = None
        elif outcome == "success" and other in self.failed_pairs:
            self.recovered[other] = None

    def values(self, events: int, tenant: str, entity: str, context: Context) -> tuple[float, ...]:
        others = len(self.others) - ("" in self.others)
        return (float(events), float(self.failures), self.failures / events, float(others), float(len(self.recovered)))

    def dump(self) -> list[Any]:
        return [self.failures, list(self.others), list(self.failed_pairs), list(self.recovered)]

    @classmethod
    def load(cls, data: list[Any], by_source: bool) -> AuthState:
        state = cls(by_source)
        failures, others, failed, recovered = data
        state.failures = int(_numbers([failures], 1, "auth failures")[0])
        state.others = dict.fromkeys(_texts(others, "auth counterparts"))
        state.failed_pairs = dict.fromkeys(_texts(failed, "auth failed pairs"))
        state.recovered = dict.fromkeys(_texts(recovered, "auth recovered pairs"))
        return state


def is_failed_flow(event: Event) -> bool:
    """Outcome failure, a failed connection state, or a TCP history with a SYN never answered by a
    SYN-ACK (`S` without `h`: rejected or unanswered, Zeek's REJ / S0)."""
    if text_of(field_of(event, ecs.EVENT_OUTCOME)) == "failure":
        return True
    state = text_of(field_of(event, CONNECTION_STATE))
    if state is not None and state.lower() in FAILED_STATES:
        return True
    history = text_of(field_of(event, FLOW_HISTORY))
    return history is not None and "S" in history and "h" not in history


class FlowState:
    """Bytes and packets summed, destinations (first-seen order) and ports, failed and off-hours flows."""

    __slots__ = ("bytes_in", "bytes_out", "destinations", "failed", "off_hours", "packets", "ports")

    def __init__(self) -> None:
        self.destinations: dict[str, None] = {}
        self.ports: dict[str, None] = {}
        self.bytes_out = self.bytes_in = self.packets = 0.0
        self.failed = self.off_hours = 0

    def add(self, event: Event, context: Context) -> None:
        destination = text_of(field_of(event, ecs.DESTINATION_IP)) or text_of(field_of(event, ecs.DESTINATION_ADDRESS))
        if destination is not None:
            self.destinations[destination] = None
        port = text_of(field_of(event, ecs.DESTINATION_PORT))
        if port is not None:
            self.ports[port] = None
        self.bytes_out += number_of(field_of(event, SOURCE_BYTES))
        self.bytes_in += number_of(field_of(event, DESTINATION_BYTES))
        self.packets += number_of(field_of(event, NETWORK_PACKETS))
        self.failed += is_failed_flow(event)
        self.off_hours += context.is_off_hours(event.timestamp)

    def values(self, events: int, tenant: str, entity: str, context: Context) -> tuple[float, ...]:
        new_share = context.new_share(tenant, entity, list(self.destinations))
        return (float(events), self.bytes_out, self.bytes_in, self.packets, float(len(self.destinations)),
                float(len(self.ports)), self.failed / events, new_share, self.off_hours / events)

    def dump(self) -> list[Any]:
        return [list(self.destinations), list(self.ports), [self.bytes_out, self.bytes_in, self.packets],
                [self.failed, self.off_hours]]

    @classmethod
    def load(cls, data: list[Any]) -> FlowState:
        state = cls()
        destinations, ports, sums, counts = data
        state.destinations = dict.fromkeys(_texts(destinations, "flow destinations"))
        state.ports = dict.fromkeys(_texts(ports, "flow ports"))
        state.bytes_out, state.bytes_in, state.packets = (float(v) for v in _numbers(sums, 3, "flow sums"))
        state.failed, state.off_hours = (int(v) for v in _numbers(counts, 2, "flow counts"))
        return state


class DnsState:
    """NXDOMAIN answers, name lengths and subdomain entropies (sum and max), subdomains per domain."""

    __slots__ = ("entropy_max", "entropy_sum", "length_max", "length_sum", "names", "nxdomain", "subdomains")

    def __init__(self) -> None:
        self.nxdomain = self.names = self.length_sum = self.length_max = 0
        self.entropy_sum = self.entropy_max = 0.0
        self.subdomains: dict[str, dict[str, None]] = {}

    def add(self, event: Event, context: Context) -> None:
        code = text_of(field_of(event, DNS_RESPONSE_CODE))
        self.nxdomain += code is not None and code.upper() == "NXDOMAIN"
        name = text_of(field_of(event, DNS_QUESTION_NAME))
        if name is None:
            return
        sub, domain = split_domain(name)
        entropy = shannon_entropy(sub)
        self.names += 1
        self.length_sum += len(name)
        self.length_max = max(self.length_max, len(name))
        self.entropy_sum += entropy
        self.entropy_max = max(self.entropy_max, entropy)
        if sub:
            self.subdomains.setdefault(domain, {})[sub] = None

    def values(self, events: int, tenant: str, entity: str, context: Context) -> tuple[float, ...]:
        names = self.names
        return (float(events), self.nxdomain / events, self.length_sum / names if names else 0.0,
                float(self.length_max), self.entropy_sum / names if names else 0.0, self.entropy_max,
                float(max((len(s) for s in self.subdomains.values()), default=0)))

    def dump(self) -> list[Any]:
        return [[self.nxdomain, self.names, self.length_sum, self.length_max], [self.entropy_sum, self.entropy_max],
                [[domain, list(subs)] for domain, subs in self.subdomains.items()]]

    @classmethod
    def load(cls, data: list[Any]) -> DnsState:
        state = cls()
        counts, entropies, subdomains = data
        state.nxdomain, state.names, state.length_sum, state.length_max = (
            int(v) for v in _numbers(counts, 4, "dns counts"))
        state.entropy_sum, state.entropy_max = (float(v) for v in _numbers(entropies, 2, "dns entropies"))
        if not isinstance(subdomains, list):
            raise ValueError("dns subdomains: expected a list of [domain, [subdomain, ...]]")
        for item in subdomains:
            domain, subs = item
            state.subdomains[_texts([domain], "dns domain")[0]] = dict.fromkeys(_texts(subs, "dns subdomains"))
        return state


@dataclass(slots=True)
class OpenWindow:
    """One entity's open window: its state by kind, its event count, ids, last time and asset."""

    tenant: str
    kind: str  # an EntityKind value (features.py owns the enum; this module stays below it)
    entity_field: str
    entity: str
    start: datetime
    state: WindowState
    events: int = 0
    event_ids: list[str] = field(default_factory=list)
    last_seen: datetime | None = None
    asset: tuple[str, int | None] | None = None

    def dump(self) -> dict[str, Any]:
        last = self.last_seen.isoformat() if self.last_seen is not None else None
        return {"tenant": self.tenant, "kind": self.kind, "entity_field": self.entity_field, "entity": self.entity,
                "start": self.start.isoformat(), "events": self.events, "event_ids": list(self.event_ids),
                "last_seen": last, "asset": list(self.asset) if self.asset else None, "state": self.state.dump()}


def new_state(kind: str) -> WindowState:
    """An empty state for an `EntityKind` value."""
    if kind == "flow_source":
        return FlowState()
    if kind == "dns_client":
        return DnsState()
    if kind in ("auth_source", "auth_user"):
        return AuthState(by_source=kind == "auth_source")
    raise ValueError(f"unknown entity kind {kind!r}")


def load_window(data: Any) -> OpenWindow:
    """An `OpenWindow` from `OpenWindow.dump()`; raises `ValueError` naming the part at fault."""
    if not isinstance(data, dict):
        raise ValueError("expected an object")
    try:
        kind = str(data["kind"])
        raw = data["state"]
        if not isinstance(raw, list):
            raise ValueError("state: expected a list")
        state: WindowState
        if kind == "flow_source":
            state = FlowState.load(raw)
        elif kind == "dns_client":
            state = DnsState.load(raw)
        elif kind in ("auth_source", "auth_user"):
            state = AuthState.load(raw, by_source=kind == "auth_source")
        else:
            raise ValueError(f"kind: unknown entity kind {kind!r}")
        asset = data["asset"]
        last = data["last_seen"]
        start = datetime.fromisoformat(data["start"])
        if start.tzinfo is None:
            raise ValueError("start: not timezone-aware")
        return OpenWindow(
            tenant=_texts([data["tenant"]], "tenant")[0], kind=kind,
            entity_field=_texts([data["entity_field"]], "entity_field")[0],
            entity=_texts([data["entity"]], "entity")[0], start=start, state=state,
            events=int(_numbers([data["events"]], 1, "events")[0]),
            event_ids=_texts(data["event_ids"], "event_ids"),
            last_seen=datetime.fromisoformat(last) if last is not None else None,
            asset=(str(asset[0]), int(asset[1]) if asset[1] is not None else None) if asset else None,
        )
    except (KeyError, TypeError, IndexError) as e:
        raise ValueError(f"not a window: {type(e).__name__}: {e}") from e
