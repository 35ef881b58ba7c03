"""Events -> feature rows: per-entity windows of auth, flow and DNS events, one vector per window.

Stage: the first of detections/ml, used unchanged by training (models.py, over stored or file events)
and by online scoring (score.py). In: ECS events in roughly ascending time. Out: `FeatureRow`s, one
per (tenant, entity kind, entity value, window) once the window has closed.

Invariants:
- One pipeline: `WindowFeaturizer` is the only way rows are made, so a model sees at scoring time
  exactly the features it was trained on, named by `FEATURE_NAMES[kind]` in vector order.
- Windows are tumbling, `window` wide and aligned to the epoch; a window closes when an event of the
  same tenant at or after its end arrives (or at `flush`). An event older than its entity's open
  window's start is dropped and counted in `late_events`: the row of a closed window never changes.
- Never raises on field values: every field is read with a type check, so an event whose fields hold
  anything (lists, numbers as text, NaN, nested objects) contributes what it can and nothing else.
- Bounded: an open window holds running sums and distinct values, never events (windows.py); at
  most `max_open` open windows (the oldest is closed early when full), at most `max_window_events`
  events in one window (it is closed early and a new one starts at the same start), at most
  `max_held_events` events counted over all open windows (the oldest window is closed early),
  `history_size` remembered destinations per entity, `max_entities` entities with history.
  A row keeps the ids of its window's first `max_event_ids` events (training keeps none), and the
  asset of its latest enriched event (`govsoc.asset`), which the alert names.
- Checkpoints: `snapshot()` / `restore()` carry the open windows, history and watermarks as plain
  JSON values; a restored featurizer gives the rows the original would have.
- Time-driven closing: `close_due(now)` closes the windows that ended `grace` before `now`, for a
  tenant whose traffic stopped (online scoring calls it on a clock, training never needs it).
- History ("new destinations") is updated when a window closes, in closing order, so training and
  scoring over the same events give the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from detections.ml.fields import DNS_QUESTION_NAME, FLOW_DATASET, asset_of, field_of, has_value, text_of
from detections.ml.fields import shannon_entropy as shannon_entropy  # re-exported: public since issue 7
from detections.ml.fields import split_domain as split_domain
from detections.ml.windows import OpenWindow, load_window, new_state
from pipeline import ecs
from pipeline.records import Event

BUSINESS_HOURS = range(7, 19)  # 07:00-18:59 local time, Monday to Friday


class EntityKind(StrEnum):
    """What a row is about; one model per tenant and kind. The value is the model's file name."""

    AUTH_SOURCE = "auth_source"
    AUTH_USER = "auth_user"
    FLOW_SOURCE = "flow_source"
    DNS_CLIENT = "dns_client"


AUTH_SOURCE_FEATURES = ("auth_attempts", "auth_failures", "auth_failure_ratio", "auth_distinct_users",
                        "auth_success_after_failures")
AUTH_USER_FEATURES = ("auth_attempts", "auth_failures", "auth_failure_ratio", "auth_distinct_sources",
                      "auth_success_after_failures")
FLOW_FEATURES = ("flow_count", "flow_bytes_out", "flow_bytes_in", "flow_packets", "flow_distinct_destinations",
                 "flow_distinct_ports", "flow_failed_ratio", "flow_new_destination_ratio", "flow_off_hours_share")
DNS_FEATURES = ("dns_queries", "dns_nxdomain_ratio", "dns_mean_name_length", "dns_max_name_length",
                "dns_mean_entropy", "dns_max_entropy", "dns_max_subdomains_per_domain")

FEATURE_NAMES: Mapping[EntityKind, tuple[str, ...]] = {
    EntityKind.AUTH_SOURCE: AUTH_SOURCE_FEATURES,
    EntityKind.AUTH_USER: AUTH_USER_FEATURES,
    EntityKind.FLOW_SOURCE: FLOW_FEATURES,
    EntityKind.DNS_CLIENT: DNS_FEATURES,
}
"""Per kind, the feature names in vector order (the model file records them and load checks them).

auth_*: attempts and failures (`event.outcome`), failure ratio, distinct users per source or sources
per user, and how many (user, source) pairs succeeded after failing earlier in the window.
flow_*: flows, bytes out (`source.bytes`) and in (`destination.bytes`), packets, distinct destination
addresses and ports, the share of failed connections (`event.outcome` failure or a failed connection
state), the share of destinations not in the entity's history, the share of flows outside business hours.
dns_*: queries, NXDOMAIN share, mean and max name length, mean and max Shannon entropy (bits per
character) of the subdomain part, the most distinct subdomains seen under one registered domain.
"""

ENTITY_FIELDS: Mapping[EntityKind, tuple[str, ...]] = {
    EntityKind.AUTH_SOURCE: (ecs.SOURCE_IP, ecs.SOURCE_ADDRESS),
    EntityKind.AUTH_USER: (ecs.USER_NAME,),
    EntityKind.FLOW_SOURCE: (ecs.SOURCE_IP,),
    EntityKind.DNS_CLIENT: (ecs.SOURCE_IP, ecs.HOST_NAME),
}
"""Per kind, the ECS fields naming the entity; the first present wins and names the alert's entity."""


@dataclass(frozen=True, slots=True)
class FeatureRow:
    """One closed window of one entity; `values` follow `FEATURE_NAMES[kind]`."""

    tenant: str
    kind: EntityKind
    entity_field: str
    entity: str
    start: datetime
    end: datetime
    values: tuple[float, ...]
    event_ids: tuple[str, ...]
    last_seen: datetime
    asset_id: str | None = None  # of the window's latest event enrichment tied to an asset
    security_level: int | None = None


def kinds_of(event: Event) -> tuple[EntityKind, ...]:
    """The entity kinds an event feeds (an auth event feeds both its source and its user).

    Auth: `event.category` authentication. Flow: `event.dataset` flow (or `*.flow`), or category
    network with type connection (Suricata EVE flows). DNS: any event with `dns.question.name`.
    """
    if has_value(field_of(event, ecs.EVENT_CATEGORY), "authentication"):
        return (EntityKind.AUTH_SOURCE, EntityKind.AUTH_USER)
    dataset = text_of(field_of(event, ecs.EVENT_DATASET))
    is_flow = dataset is not None and (dataset == FLOW_DATASET or dataset.endswith("." + FLOW_DATASET))
    if is_flow or (has_value(field_of(event, ecs.EVENT_CATEGORY), "network")
                   and has_value(field_of(event, ecs.EVENT_TYPE), "connection")):
        return (EntityKind.FLOW_SOURCE,)
    if text_of(field_of(event, DNS_QUESTION_NAME)) is not None:
        return (EntityKind.DNS_CLIENT,)
    return ()


def entity_of(event: Event, kind: EntityKind) -> tuple[str, str] | None:
    for name in ENTITY_FIELDS[kind]:
        value = text_of(field_of(event, name))
        if value is not None:
            return name, value
    return None


@dataclass(frozen=True, slots=True)
class WindowLimits:
    """Memory bounds of open windows (see the module's invariants); `max_event_ids` 0 keeps no ids."""

    max_window_events: int = 20_000
    max_held_events: int = 1_000_000
    max_event_ids: int = 100

    def __post_init__(self) -> None:
        if self.max_window_events < 1 or self.max_held_events < 1 or self.max_event_ids < 0:
            raise ValueError("window limits must be positive (max_event_ids may be 0)")


TRAINING_LIMITS = WindowLimits(max_event_ids=0)
"""Training needs no event ids: 14 days of ids would be most of its memory."""


class WindowFeaturizer:
    """Feeds events into per-entity tumbling windows and returns rows as windows close.

    Not thread-safe; one per worker. The destination history outlives windows (it tells new
    destinations), so a worker keeps one featurizer for its life; training uses a fresh one.
    """

    def __init__(self, *, window: timedelta = timedelta(minutes=5), timezone: str = "UTC",
                 max_open: int = 100_000, history_size: int = 1_000, max_entities: int = 100_000,
                 limits: WindowLimits | None = None) -> None:
        if window <= timedelta(0):
            raise ValueError("window must be positive")
        self.window = window
        self.zone = ZoneInfo(timezone)
        self.max_open = max_open
        self.history_size = history_size
        self.max_entities = max_entities
        self.limits = limits or WindowLimits()
        self.late_events = 0
        self.closed_early = 0
        self._held = 0
        self._open: dict[tuple[str, EntityKind, str], OpenWindow] = {}
        self._history: dict[tuple[str, str], dict[str, None]] = {}  # insertion-ordered sets, oldest first
        self._watermark: dict[str, datetime] = {}
        self._last_start: tuple[float, datetime] = (math.nan, datetime.min)
        self._last_quarter: tuple[float, bool] = (math.nan, False)

    def add(self, events: Iterable[Event]) -> list[FeatureRow]:
        """Rows of the windows these events closed, in closing order."""
        rows: list[FeatureRow] = []
        for event in events:
            rows.extend(self._close_before(event.tenant, event.timestamp))
            for kind in kinds_of(event):
                rows.extend(self._add_one(event, kind))
        return rows

    def flush(self) -> list[FeatureRow]:
        """Close every open window (end of a file, end of a training set)."""
        return [self._close(key) for key in sorted(self._open, key=lambda k: self._open[k].start)]

    def close_due(self, now: datetime, grace: timedelta = timedelta(0)) -> list[FeatureRow]:
        """Close the windows that ended at or before `now - grace`, oldest first (a quiet tenant's)."""
        due = [key for key, w in self._open.items() if w.start + self.window + grace <= now]
        return [self._close(key) for key in sorted(due, key=lambda k: self._open[k].start)]

    @property
    def open_windows(self) -> int:
        return len(self._open)

    @property
    def held_events(self) -> int:
        """Events held by open windows (bounded by `limits.max_held_events`)."""
        return self._held

    def _window_start(self, ts: datetime) -> datetime:
        width = self.window.total_seconds()
        epoch = ts.timestamp()
        aligned = epoch - epoch % width
        if aligned != self._last_start[0]:  # events come in time order: one datetime per window width
            self._last_start = (aligned, datetime.fromtimestamp(aligned, UTC))
        return self._last_start[1]

    def _add_one(self, event: Event, kind: EntityKind) -> list[FeatureRow]:
        named = entity_of(event, kind)
        if named is None:
            return []
        key = (event.tenant, kind, named[1])
        start = self._window_start(event.timestamp)
        current = self._open.get(key)
        rows: list[FeatureRow] = []
        if current is not None and start < current.start:
            self.late_events += 1
            return rows
        if current is not None and start > current.start:
            rows.append(self._close(key))
            current = None
        if current is not None and current.events >= self.limits.max_window_events:
            rows.append(self._close(key))  # a flood: score what came so far, start again
            self.closed_early += 1
            current = None
        if current is None:
            if len(self._open) >= self.max_open:
                rows.append(self._close(next(iter(self._open))))  # oldest opened first: dicts keep order
                self.closed_early += 1
            current = OpenWindow(event.tenant, kind, named[0], named[1], start, new_state(kind))
            self._open[key] = current
        current.state.add(event, self)
        current.events += 1
        if len(current.event_ids) < self.limits.max_event_ids:
            current.event_ids.append(event.id)
        if current.last_seen is None or event.timestamp > current.last_seen:
            current.last_seen = event.timestamp
        asset = asset_of(event)
        if asset is not None:
            current.asset = asset  # the latest enriched event's, as DetectStep's `_with_asset` prefers
        self._held += 1
        while self._held > self.limits.max_held_events and self._open:
            rows.append(self._close(next(iter(self._open))))
            self.closed_early += 1
        return rows

    def _close_before(self, tenant: str, ts: datetime) -> list[FeatureRow]:
        """Close this tenant's windows that end at or before `ts` (only when time moved on a window)."""
        start = self._window_start(ts)
        previous = self._watermark.get(tenant)
        if previous is not None and start <= previous:
            return []
        self._watermark[tenant] = start
        due = [key for key, w in self._open.items() if w.tenant == tenant and w.start + self.window <= ts]
        return [self._close(key) for key in due]

    def _close(self, key: tuple[str, EntityKind, str]) -> FeatureRow:
        window = self._open.pop(key)
        self._held -= window.events
        values = window.state.values(window.events, window.tenant, window.entity, self)
        asset_id, level = window.asset or (None, None)
        return FeatureRow(
            tenant=window.tenant, kind=EntityKind(window.kind), entity_field=window.entity_field,
            entity=window.entity, start=window.start, end=window.start + self.window, values=values,
            event_ids=tuple(window.event_ids), last_seen=window.last_seen or window.start,
            asset_id=asset_id, security_level=level,
        )

    def snapshot(self) -> dict[str, Any]:
        """The open windows, destination history, per-tenant watermarks and counters, as plain JSON values.

        Compact: a window is its running sums and distinct values (windows.OpenWindow), not its events.
        `restore(snapshot())` into a featurizer of the same window width continues exactly as this one.
        """
        return {
            "window_s": self.window.total_seconds(),
            "open": [window.dump() for window in self._open.values()],  # opening order: the early-close order
            "history": [[tenant, entity, list(known)] for (tenant, entity), known in self._history.items()],
            "watermark": [[tenant, start.isoformat()] for tenant, start in self._watermark.items()],
            "late_events": self.late_events, "closed_early": self.closed_early,
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Replace this featurizer's state by `snapshot`'s; raises `ValueError` naming the part at fault
        (nothing is changed then)."""
        width = snapshot.get("window_s")
        if width != self.window.total_seconds():
            raise ValueError(f"window_s: the snapshot has {width!r} s windows, this featurizer "
                             f"{self.window.total_seconds():g} s")
        opened: dict[tuple[str, EntityKind, str], OpenWindow] = {}
        for index, data in enumerate(_list(snapshot, "open")):
            try:
                window = load_window(data)
                window.kind = EntityKind(window.kind)
            except ValueError as e:
                raise ValueError(f"open[{index}]: {e}") from e
            opened[(window.tenant, EntityKind(window.kind), window.entity)] = window
        history: dict[tuple[str, str], dict[str, None]] = {}
        for index, item in enumerate(_list(snapshot, "history")):
            if not (isinstance(item, list) and len(item) == 3 and isinstance(item[2], list)
                    and all(isinstance(v, str) for v in (item[0], item[1], *item[2]))):
                raise ValueError(f"history[{index}]: expected [tenant, entity, [destination, ...]]")
            history[(item[0], item[1])] = dict.fromkeys(item[2])
        watermark: dict[str, datetime] = {}
        for index, item in enumerate(_list(snapshot, "watermark")):
            try:
                watermark[str(item[0])] = datetime.fromisoformat(item[1])
            except (TypeError, ValueError, IndexError, KeyError) as e:
                raise ValueError(f"watermark[{index}]: expected [tenant, ISO time]: {e}") from e
        self._open, self._history, self._watermark = opened, history, watermark
        self._held = sum(w.events for w in opened.values())
        self.late_events = int(snapshot.get("late_events", 0))
        self.closed_early = int(snapshot.get("closed_early", 0))

    def new_share(self, tenant: str, entity: str, seen: Sequence[str]) -> float:
        """Share of `seen` not in the entity's history (0.0 with no history); then remembers them.

        History is bounded: `history_size` items per entity, `max_entities` entities, least recent dropped.
        """
        if not seen:
            return 0.0
        known = self._history.pop((tenant, entity), None) or {}
        # An entity with no history yet is unknown, not new: else every restart would alert on every host.
        new = sum(1 for item in seen if item not in known) if known else 0
        for item in seen:
            known.pop(item, None)
            known[item] = None
        while len(known) > self.history_size:
            del known[next(iter(known))]
        self._history[(tenant, entity)] = known  # re-inserted last: the dict is kept in use order
        while len(self._history) > self.max_entities:
            del self._history[next(iter(self._history))]
        return new / len(seen)

    def is_off_hours(self, ts: datetime) -> bool:
        # Remembered per quarter hour (every zone's offset is a multiple of 15 minutes): the local
        # time conversion was ~5 % of featurising a flow (bench/ml.py).
        quarter = ts.timestamp() // 900
        if quarter != self._last_quarter[0]:
            local = ts.astimezone(self.zone)
            self._last_quarter = (quarter, local.weekday() >= 5 or local.hour not in BUSINESS_HOURS)
        return self._last_quarter[1]


def _list(snapshot: Mapping[str, Any], key: str) -> list[Any]:
    value = snapshot.get(key)
    if not isinstance(value, list):
        raise ValueError(f"{key}: expected a list, found {type(value).__name__}")
    return value
