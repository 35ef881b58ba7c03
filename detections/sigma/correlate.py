"""Streaming Sigma correlations, on event time.

Stage: after matching. In: `Hit`s in arrival order, each an event that a rule referenced by a
correlation matched (or a correlation that fired, for correlations of correlations). Out: the
correlation `Alert`s (kind `SIGMA_CORRELATION`).

Semantics:
- Group: the tenant plus the values of the rule's `group-by` fields in the hit, read through
  `aliases` where the rule defines them. A hit lacking a group-by value is not counted (a query
  backend's group-by drops it too). Correlations never cross tenants.
- Window: `timespan` of event time ending at the newest hit of the group (inclusive). A hit older
  than that is ignored as late; one inside it counts wherever it falls.
- Expiry (`Correlator.expire`, run by snapshots): a group is dropped only when it is both old in
  event time (its newest hit more than timespan + lateness behind its tenant's newest) and old
  in arrival (no hit for `recent_hits` hits fed). Event time alone is not enough: after a broker
  restart an ingest batch published again can arrive hours of event time late, and its events
  must still find the group that remembers them (issue 11); events that first reach their
  partition hours late still count, as in an engine that never expires.
- `event_count`: distinct events in the window reach the threshold (`gte: n`; `gt: n` is `gte: n+1`).
- `value_count`: distinct values of `condition.field` in the window reach the threshold.
- `temporal`: hits of all referenced rules (or `gte: k` of them) in the window, in any order.
- `temporal_ordered`: hits of the referenced rules in the order listed, all in the window.
- Firing emits one alert and clears the group, so the next alert needs a full threshold again.
- Conditions that can only be decided when a window closes (`lt`, `lte`, `eq`, `neq`), extended
  (boolean) conditions and the value_sum/avg/percentile/median types raise `RuleError` at load.

Invariants:
- Bounded: at most `max_groups` groups across all correlations; the least recently used group is
  dropped with its partial window (`Correlator.evicted` counts them). A window holds fewer entries
  than the threshold (one per referenced rule for the temporal types) and remembers at most
  `threshold + SEEN_MARGIN` event ids.
- Deterministic: an alert's id is (tenant, rule, group values, first event of the window), so the
  same events yield the same alert ids. A group remembers the events it counted while they are in
  its window, also after firing, so a redelivered event is not counted again: a replayed batch
  raises nothing new.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sigma.correlations import (
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
    SigmaExtendedCorrelationCondition,
)

from config.errors import SourceLocation
from detections.sigma.compile import RuleInfo, rule_key
from detections.sigma.errors import RuleError
from pipeline.records import Alert, DetectionKind

MAX_EVENT_IDS = 1000  # per alert; the window may have seen more
DEFAULT_LATENESS = timedelta(hours=1)  # event time a group is kept beyond its window (see expire)
# Hits fed that a touched group is kept for, whatever its age (see expire). It must exceed the hits
# a partition receives between an event and its redelivery (the ingest batches not yet committed:
# a few thousand events); the 200,000-event day in one partition keeps <= 1,033 groups, 102 kB.
DEFAULT_RECENT_HITS = 10_000


class CorrelationKind(StrEnum):
    EVENT_COUNT = "event_count"
    VALUE_COUNT = "value_count"
    TEMPORAL = "temporal"
    TEMPORAL_ORDERED = "temporal_ordered"


_KINDS = {
    SigmaCorrelationType.EVENT_COUNT: CorrelationKind.EVENT_COUNT,
    SigmaCorrelationType.VALUE_COUNT: CorrelationKind.VALUE_COUNT,
    SigmaCorrelationType.TEMPORAL: CorrelationKind.TEMPORAL,
    SigmaCorrelationType.TEMPORAL_ORDERED: CorrelationKind.TEMPORAL_ORDERED,
}


@dataclass(frozen=True, slots=True)
class Hit:
    """One input to correlations: what matched (`source`, a rule id), where, when and on which events.

    `values` reads a field of what matched: `Event.get` for an event, the group values for a
    correlation that fired.
    """

    source: str
    tenant: str
    timestamp: datetime
    event_ids: tuple[str, ...]
    values: Callable[[str], Any]


@dataclass(frozen=True, slots=True)
class CorrelationSpec:
    """A correlation rule ready to run.

    `sources` are the referenced rules' ids in the rule's order (the steps of `temporal_ordered`);
    `group_fields[source]` is the field read from that source's hits for each `group_by` name.
    """

    info: RuleInfo
    kind: CorrelationKind
    sources: tuple[str, ...]
    group_by: tuple[str, ...]
    group_fields: Mapping[str, tuple[str, ...]]
    window: timedelta
    threshold: int
    value_field: str | None = None
    emits_alerts: bool = True


def compile_correlation(rule: SigmaCorrelationRule, info: RuleInfo) -> CorrelationSpec:
    """A `CorrelationSpec` from a correlation whose references pySigma has resolved.

    Raises `RuleError` (with `location.field` set to the offending key) for what is not supported.
    """
    kind = _KINDS.get(rule.type)
    if kind is None:
        raise RuleError(f"correlation type {rule.type.name.lower()} is not supported",
                        SourceLocation(field="correlation.type"))
    references = [(ref.reference, rule_key(ref.rule)) for ref in rule.referenced_rules]
    if not references:
        raise RuleError("references no rules", SourceLocation(field="correlation.rules"))
    group_by = tuple(rule.group_by or ())
    return CorrelationSpec(
        info=info,
        kind=kind,
        sources=tuple(source for _, source in references),
        group_by=group_by,
        group_fields={source: _group_fields(rule, reference, group_by) for reference, source in references},
        window=timedelta(seconds=rule.timespan.seconds),
        threshold=_threshold(rule, kind, len(references)),
        value_field=_value_field(rule, kind),
    )


def _group_fields(rule: SigmaCorrelationRule, reference: str, group_by: tuple[str, ...]) -> tuple[str, ...]:
    fields = []
    for name in group_by:
        alias = rule.aliases.aliases.get(name)
        if alias is None:
            fields.append(name)
            continue
        by_reference = {ref.reference: field for ref, field in alias.mapping.items()}
        if reference not in by_reference:
            raise RuleError(f"alias {name!r} names no field for rule {reference!r}",
                            SourceLocation(field="correlation.aliases"))
        fields.append(by_reference[reference])
    return tuple(fields)


def _threshold(rule: SigmaCorrelationRule, kind: CorrelationKind, rule_count: int) -> int:
    condition, where = rule.condition, SourceLocation(field="correlation.condition")
    if isinstance(condition, SigmaExtendedCorrelationCondition):
        raise RuleError("extended (boolean) correlation conditions are not supported", where)
    if condition.op == SigmaCorrelationConditionOperator.GTE:
        threshold = condition.count
    elif condition.op == SigmaCorrelationConditionOperator.GT:
        threshold = condition.count + 1
    else:
        raise RuleError(f"condition {condition.op.name.lower()!r} needs the window to close; "
                        "the streaming engine supports gte and gt", where)
    if kind == CorrelationKind.TEMPORAL_ORDERED and threshold != rule_count:
        raise RuleError("temporal_ordered needs every referenced rule (gte: number of rules)", where)
    if kind == CorrelationKind.TEMPORAL and threshold > rule_count:
        raise RuleError(f"temporal over {rule_count} rules can never see {threshold} of them", where)
    return max(threshold, 1)


def _value_field(rule: SigmaCorrelationRule, kind: CorrelationKind) -> str | None:
    if kind != CorrelationKind.VALUE_COUNT:
        return None
    field = getattr(rule.condition, "fieldref", None)
    if not isinstance(field, str):
        raise RuleError("value_count needs one field in its condition",
                        SourceLocation(field="correlation.condition"))
    return field


def group_text(value: Any) -> str | None:
    """A field value as group or entity text; None (not countable) for missing, empty or objects."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list) and value:
        texts = [group_text(item) for item in value]
        return None if None in texts else ",".join(str(text) for text in texts)
    return None


# --- windows: one per group ----------------------------------------------------------------------

SEEN_MARGIN = 1024  # hits remembered per group beyond the threshold, to ignore redeliveries


class _Window:
    """The state of one group. `add` returns the hits that satisfied the condition, or None.

    Every admitted hit is remembered while it is inside the window (`seen`), also after the group
    fires, so a redelivered event is ignored instead of starting a new count: replaying a batch
    raises nothing new. `seen` is pruned by time and capped at `threshold + SEEN_MARGIN` entries.
    """

    __slots__ = ("span", "newest", "seen", "limit", "touched")

    def __init__(self, span: timedelta, threshold: int) -> None:
        self.span = span
        self.touched = 0  # the correlator's clock at the last hit that reached this group
        self.newest: datetime | None = None
        self.seen: OrderedDict[tuple[str, ...], datetime] = OrderedDict()
        self.limit = threshold + SEEN_MARGIN

    def admit(self, key: tuple[str, ...], hit: Hit) -> datetime | None:
        """Advance the window to `hit`: the oldest time still inside it, or None to ignore `hit`
        (older than the window, or seen before)."""
        if self.newest is None or hit.timestamp > self.newest:
            self.newest = hit.timestamp
        cutoff = self.newest - self.span
        if hit.timestamp < cutoff or key in self.seen:
            return None
        while self.seen and (len(self.seen) >= self.limit or next(iter(self.seen.values())) < cutoff):
            self.seen.popitem(last=False)
        self.seen[key] = hit.timestamp
        return cutoff

    def add(self, step: int, hit: Hit) -> list[Hit] | None:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the partial match after firing; `seen` and `newest` stay."""
        raise NotImplementedError


class _CountWindow(_Window):
    __slots__ = ("threshold", "hits")

    def __init__(self, span: timedelta, threshold: int) -> None:
        super().__init__(span, threshold)
        self.threshold = threshold
        self.hits: deque[Hit] = deque()  # oldest first

    def add(self, step: int, hit: Hit) -> list[Hit] | None:
        cutoff = self.admit(hit.event_ids, hit)  # an event counts once, whichever rule matched it
        if cutoff is None:
            return None
        if self.hits and hit.timestamp < self.hits[-1].timestamp:  # late but inside the window
            self.hits.insert(bisect.bisect_right(self.hits, hit.timestamp, key=_time), hit)
        else:
            self.hits.append(hit)
        while self.hits[0].timestamp < cutoff:
            self.hits.popleft()
        return list(self.hits) if len(self.hits) >= self.threshold else None

    def reset(self) -> None:
        self.hits.clear()


class _DistinctWindow(_Window):
    __slots__ = ("threshold", "field", "latest")

    def __init__(self, span: timedelta, threshold: int, field: str) -> None:
        super().__init__(span, threshold)
        self.threshold, self.field = threshold, field
        self.latest: dict[str, Hit] = {}  # value -> the newest hit carrying it

    def add(self, step: int, hit: Hit) -> list[Hit] | None:
        value = group_text(hit.values(self.field))
        cutoff = None if value is None else self.admit(hit.event_ids, hit)
        if value is None or cutoff is None:
            return None
        known = self.latest.get(value)
        if known is None or known.timestamp <= hit.timestamp:
            self.latest[value] = hit
        _drop_older(self.latest, cutoff)
        return _by_time(self.latest.values()) if len(self.latest) >= self.threshold else None

    def reset(self) -> None:
        self.latest.clear()


class _TemporalWindow(_Window):
    __slots__ = ("threshold", "latest")

    def __init__(self, span: timedelta, threshold: int) -> None:
        super().__init__(span, threshold)
        self.threshold = threshold
        self.latest: dict[int, Hit] = {}  # step -> its newest hit

    def add(self, step: int, hit: Hit) -> list[Hit] | None:
        cutoff = self.admit((str(step), *hit.event_ids), hit)  # one event may serve two rules
        if cutoff is None:
            return None
        known = self.latest.get(step)
        if known is None or known.timestamp <= hit.timestamp:
            self.latest[step] = hit
        _drop_older(self.latest, cutoff)
        return _by_time(self.latest.values()) if len(self.latest) >= self.threshold else None

    def reset(self) -> None:
        self.latest.clear()


class _OrderedWindow(_Window):
    """For each step k, the chain of hits for steps 0..k with the latest start: it stays inside
    the window longest, so keeping only it loses no ordered match (a greedy that is exact)."""

    __slots__ = ("chains",)

    def __init__(self, span: timedelta, steps: int) -> None:
        super().__init__(span, steps)
        self.chains: list[tuple[Hit, ...] | None] = [None] * steps

    def add(self, step: int, hit: Hit) -> list[Hit] | None:
        cutoff = self.admit((str(step), *hit.event_ids), hit)
        if cutoff is None:
            return None
        chain: tuple[Hit, ...] = (hit,)
        if step > 0:
            before = self.chains[step - 1]
            if before is None or before[0].timestamp < cutoff or before[-1].timestamp > hit.timestamp:
                return None
            if any(event_id in hit.event_ids for done in before for event_id in done.event_ids):
                return None  # one event is not two steps
            chain = (*before, hit)
        current = self.chains[step]
        if current is None or current[0].timestamp <= chain[0].timestamp:
            self.chains[step] = chain
        return list(chain) if step == len(self.chains) - 1 else None

    def reset(self) -> None:
        self.chains = [None] * len(self.chains)


def _time(hit: Hit) -> datetime:
    return hit.timestamp


def _by_time(hits: Iterable[Hit]) -> list[Hit]:
    return sorted(hits, key=_time)


def _drop_older(latest: dict[Any, Hit], cutoff: datetime) -> None:
    for key in [key for key, hit in latest.items() if hit.timestamp < cutoff]:
        del latest[key]


def _new_window(spec: CorrelationSpec) -> _Window:
    if spec.kind == CorrelationKind.EVENT_COUNT:
        return _CountWindow(spec.window, spec.threshold)
    if spec.kind == CorrelationKind.VALUE_COUNT:
        return _DistinctWindow(spec.window, spec.threshold, str(spec.value_field))
    if spec.kind == CorrelationKind.TEMPORAL:
        return _TemporalWindow(spec.window, spec.threshold)
    return _OrderedWindow(spec.window, len(spec.sources))


# --- the correlator ------------------------------------------------------------------------------

GroupKey = tuple[int, str, tuple[str, ...]]  # (correlation index, tenant, group values)


class Correlator:
    """All correlations of a rule set and their groups; fed hits in arrival order.

    Not thread-safe: one correlator per worker, like the engine that owns it.
    """

    def __init__(self, specs: Sequence[CorrelationSpec], *, max_groups: int,
                 lateness: timedelta = DEFAULT_LATENESS, recent_hits: int = DEFAULT_RECENT_HITS) -> None:
        if max_groups < 1:
            raise ValueError("max_groups must be at least 1")
        self._specs = tuple(specs)
        self._max_groups = max_groups
        self.lateness = lateness
        self.recent_hits = recent_hits
        self._groups: OrderedDict[GroupKey, _Window] = OrderedDict()  # least recently used first
        self._subscribers: dict[str, list[tuple[int, int]]] = {}
        for index, spec in enumerate(self._specs):
            for step in reversed(range(len(spec.sources))):  # later steps first: one hit, one step
                self._subscribers.setdefault(spec.sources[step], []).append((index, step))
        self.evicted = 0
        self.clock = 0  # hits fed so far (arrival order): a window's `touched` is this at its last hit
        self.watermarks: dict[str, datetime] = {}  # tenant -> the newest hit time fed (event time)

    @property
    def group_count(self) -> int:
        return len(self._groups)

    @property
    def specs(self) -> tuple[CorrelationSpec, ...]:
        return self._specs

    def groups(self) -> Iterator[tuple[GroupKey, _Window]]:
        """Every group and its window, least recently used first (for snapshot.py)."""
        return iter(list(self._groups.items()))

    def expire(self, now: datetime | None = None, lateness: timedelta | None = None) -> int:
        """Drop the groups that are old in event time and in arrival: newest hit older than the
        tenant's watermark - timespan - lateness (`lateness`, never less than the correlator's own)
        and no hit for more than `recent_hits` hits; and windows that never admitted a hit.
        Returns how many. `now` first advances every tenant's watermark to it.

        Exact (an engine that never expires raises the same alerts) for every hit that arrives
        within `recent_hits` hits of its group's last hit (a redelivery: the group still holds
        it), and for every hit at most `lateness` behind its tenant's watermark (newer than a
        dropped group's window, which would have restarted from empty). A hit late on both counts
        may count in a fresh window where the old one would have ignored it or counted it with
        others; see snapshot.py."""
        if now is not None:
            self.watermarks = {tenant: max(mark, now) for tenant, mark in self.watermarks.items()}
        slack = self.lateness if lateness is None else max(lateness, self.lateness)
        stale = []
        for key, window in self._groups.items():
            if window.newest is None:
                stale.append(key)
                continue
            mark = self.watermarks.get(key[1])  # every group's tenant has one (restore checks it)
            horizon = None if mark is None else mark - self._specs[key[0]].window - slack
            if horizon is not None and window.newest < horizon and self.clock - window.touched > self.recent_hits:
                stale.append(key)
        for key in stale:
            del self._groups[key]
        return len(stale)

    def install(self, groups: Iterable[tuple[GroupKey, _Window]], *, evicted: int, clock: int,
                watermarks: Mapping[str, datetime]) -> None:
        """Replace every group with `groups` (least recently used first) and the tenants'
        watermarks, as a snapshot held them; beyond `max_groups` the least recently used groups
        are dropped (and counted as evicted)."""
        installed: OrderedDict[GroupKey, _Window] = OrderedDict(groups)
        while len(installed) > self._max_groups:
            installed.popitem(last=False)
            evicted += 1
        self._groups, self.evicted, self.clock, self.watermarks = installed, evicted, clock, dict(watermarks)

    def adopt(self, old: Correlator) -> int:
        """Take over `old`'s partial windows of every correlation that did not change (the same
        spec, by equality), after a reload; the others start empty. Returns the groups kept."""
        index_of = {spec.info.rule_id: index for index, spec in enumerate(self._specs)}
        kept = 0
        for (index, tenant, values), window in old._groups.items():  # least recently used first
            spec = old._specs[index]
            new_index = index_of.get(spec.info.rule_id)
            if new_index is not None and self._specs[new_index] == spec and kept < self._max_groups:
                self._groups[(new_index, tenant, values)] = window
                kept += 1
        self.evicted, self.clock, self.watermarks = old.evicted, old.clock, dict(old.watermarks)
        return kept

    def feeds(self, source: str) -> bool:
        """Whether hits of rule `source` matter to any correlation."""
        return source in self._subscribers

    def feed(self, hit: Hit) -> list[Alert]:
        """The alerts `hit` completes, including those of correlations of correlations."""
        alerts: list[Alert] = []
        self.clock += 1
        newest = self.watermarks.get(hit.tenant)
        if newest is None or hit.timestamp > newest:
            self.watermarks[hit.tenant] = hit.timestamp
        pending = deque([hit])
        while pending:  # terminates: the loader refuses reference cycles
            current = pending.popleft()
            for index, step in self._subscribers.get(current.source, ()):
                fired = self._update(index, step, current)
                if fired is not None:
                    alert, upward = fired
                    if self._specs[index].emits_alerts:
                        alerts.append(alert)
                    pending.append(upward)
        return alerts

    def _update(self, index: int, step: int, hit: Hit) -> tuple[Alert, Hit] | None:
        spec = self._specs[index]
        values = _group_values(spec, spec.sources[step], hit)
        if values is None:
            return None
        key = (index, hit.tenant, values)
        window = self._window(key, spec)
        hits = window.add(step, hit)
        if hits is None:
            return None
        window.reset()  # fired: the next alert needs a full threshold again
        return _fire(spec, hit.tenant, values, hits)

    def _window(self, key: GroupKey, spec: CorrelationSpec) -> _Window:
        window = self._groups.get(key)
        if window is not None:
            self._groups.move_to_end(key)
            window.touched = self.clock
            return window
        window = self._groups[key] = _new_window(spec)
        window.touched = self.clock
        if len(self._groups) > self._max_groups:
            self._groups.popitem(last=False)
            self.evicted += 1
        return window


def _group_values(spec: CorrelationSpec, source: str, hit: Hit) -> tuple[str, ...] | None:
    values = []
    for field in spec.group_fields[source]:
        text = group_text(hit.values(field))
        if text is None:
            return None
        values.append(text)
    return tuple(values)


def _fire(spec: CorrelationSpec, tenant: str, values: tuple[str, ...], hits: list[Hit]) -> tuple[Alert, Hit]:
    entity = dict(zip(spec.group_by, values, strict=True))
    event_ids = tuple(dict.fromkeys(event_id for hit in hits for event_id in hit.event_ids))[:MAX_EVENT_IDS]
    last = max(hit.timestamp for hit in hits)
    info = spec.info
    alert = Alert(
        id=Alert.make_id(tenant, info.rule_id, entity, hits[0].event_ids[0]),
        tenant=tenant,
        timestamp=last,
        kind=DetectionKind.SIGMA_CORRELATION,
        rule_id=info.rule_id,
        rule_title=info.title,
        severity=info.severity,
        event_ids=event_ids,
        entity=entity,
        tags=info.tags,
        description=info.description or _summary(spec, len(hits)),
    )
    return alert, Hit(info.rule_id, tenant, last, event_ids, entity.get)


def _summary(spec: CorrelationSpec, count: int) -> str:
    return f"{spec.kind.value}: {count} hits of {', '.join(spec.sources)} within {spec.window}"
