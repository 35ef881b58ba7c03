"""Events -> alerts: every loaded rule on every event, correlations fed as matches happen.

Stage: the last of detections/sigma, run by the detection worker. In: batches of events in arrival
order. Out: alerts, single-event (`SIGMA`) and correlation (`SIGMA_CORRELATION`, see correlate.py).

Invariants:
- Each event is read once into its flat view (`fields.flat_view`), which every rule test reads.
- Candidates (dispatch.py): the rules of the event's log source (one dict lookup) whose required
  literal the event contains, and those without one (prefilter.py); `use_prefilter=False`
  evaluates every rule of the log source, with the same results.
- Deterministic: a single-event alert's id is (tenant, rule, entity, event id), and correlation
  alert ids are deterministic too, so processing the same events again yields the same alert ids
  (an idempotent upsert downstream).
- State: single-event matching has none; the correlator's groups are bounded by `max_groups`,
  and `snapshot`/`restore` carry them to another process as plain JSON (snapshot.py).
- `reload` swaps in a new rule set (and rule state: state.py) without a restart, keeping the
  partial windows of the correlations that did not change.
- A rule referenced by correlations without `generate: true` still runs, to feed them, but raises
  no alerts of its own; a rule that neither alerts nor feeds anything is not run at all.
- Not thread-safe: one engine per worker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog

from config.tenants import TenantTree
from detections.sigma.compile import CompiledRule
from detections.sigma.correlate import DEFAULT_RECENT_HITS, Correlator, Hit, group_text
from detections.sigma.dispatch import RuleIndex
from detections.sigma.errors import RuleError
from detections.sigma.fields import field_map_named, flat_view
from detections.sigma.load import RuleSet
from detections.sigma.snapshot import DEFAULT_LATENESS, restore_correlator, snapshot_correlator
from detections.sigma.state import RuleState, apply_state
from pipeline import ecs
from pipeline.records import MISSING, Alert, DetectionKind, Event, lookup

log = structlog.get_logger(__name__)

ENTITY_FIELDS = (ecs.HOST_NAME, ecs.SOURCE_ADDRESS, ecs.USER_NAME)  # first present wins


class SigmaEngine:
    """A `RuleSet` run over a stream of events."""

    def __init__(self, ruleset: RuleSet, *, max_groups: int = 100_000, use_prefilter: bool = True,
                 lateness: timedelta = DEFAULT_LATENESS, recent_hits: int = DEFAULT_RECENT_HITS) -> None:
        self._max_groups = max_groups
        self._lateness = lateness
        self._recent_hits = recent_hits
        self._use_prefilter = use_prefilter
        self.ruleset = ruleset
        self._correlator, self._index = self._build(ruleset)
        self._pending: tuple[RuleSet, RuleState | None, TenantTree | None] | None = None
        self._pending_lock = threading.Lock()

    def _build(self, ruleset: RuleSet) -> tuple[Correlator, RuleIndex]:
        correlator = Correlator(ruleset.correlations, max_groups=self._max_groups, lateness=self._lateness,
                                recent_hits=self._recent_hits)
        running = [rule for rule in ruleset.rules if rule.emits_alerts or correlator.feeds(rule.info.rule_id)]
        return correlator, RuleIndex(running, use_prefilter=self._use_prefilter)

    def reload(self, ruleset: RuleSet, state: RuleState | None = None, tree: TenantTree | None = None) -> None:
        """Run `ruleset` from now on, with `state` (disabled rules, exceptions) applied.

        Everything is built before anything is swapped, so a reload that raises changes nothing.
        Correlations that did not change keep their partial windows (`Correlator.adopt`); the
        others start empty. Call it between batches, from the thread that runs `process`.
        """
        applied = apply_state(ruleset, state, tree) if state is not None else ruleset
        correlator, index = self._build(applied)
        correlator.adopt(self._correlator)
        self.ruleset, self._correlator, self._index = applied, correlator, index

    def request_reload(self, ruleset: RuleSet, state: RuleState | None = None, tree: TenantTree | None = None) -> None:
        """Thread-safe `reload`: applied by the next `process` call, before its batch (the API's
        rule service calls this from its own threads; the worker keeps calling `process`)."""
        with self._pending_lock:
            self._pending = (ruleset, state, tree)

    def _apply_pending(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            try:
                self.reload(*pending)
            except RuleError as e:  # a batch must not fail for a bad state: keep running the old rules
                log.error("sigma_reload_failed", reason=str(e))

    @property
    def correlation_groups(self) -> int:
        """Groups with a partial window now held (at most `max_groups`)."""
        return self._correlator.group_count

    @property
    def evicted_groups(self) -> int:
        """Groups dropped so far to stay within `max_groups` (their partial windows were lost)."""
        return self._correlator.evicted

    def snapshot(self, now: datetime | None = None, *, lateness: timedelta | None = None) -> dict[str, Any]:
        """The correlation state as plain JSON-able data (snapshot.py: what is kept, versioning).

        Expired groups are dropped first, here too, so this engine and one restored from the
        snapshot hold the same groups and raise the same alerts from here on: a group expires when
        it is old in event time (its newest hit more than timespan + lateness behind its tenant's
        newest event, or behind `now` when given) and old in arrival (no hit for the engine's
        `recent_hits` hits). `lateness` defaults to the engine's and is never taken below it.
        Between batches only."""
        return snapshot_correlator(self._correlator, now, self._lateness if lateness is None else lateness)

    def restore(self, snapshot: Mapping[str, Any]) -> int:
        """Replace the correlation state with `snapshot`'s (taken from an engine of the same rules);
        returns the groups dropped because their correlation is gone or changed. Raises
        `SnapshotError` on a snapshot of another format or version, or a malformed one, and then
        changes nothing."""
        return restore_correlator(self._correlator, snapshot)

    def process(self, events: Sequence[Event]) -> list[Alert]:
        """The alerts these events raise, in event order; correlation state carries over batches."""
        if self._pending is not None:
            self._apply_pending()
        alerts: list[Alert] = []
        for event in events:
            alerts.extend(self._process_event(event))
        return alerts

    def matching_rules(self, event: Event) -> list[CompiledRule]:
        """The rules whose detection matches `event` (stateless; for retro-hunts and tests)."""
        flat = flat_view(event.doc)
        return [rule for rule in self._index.candidates(flat) if rule.test(flat)]

    def _process_event(self, event: Event) -> list[Alert]:
        alerts: list[Alert] = []
        for rule in self.matching_rules(event):
            rule_id = rule.info.rule_id
            if rule.emits_alerts:
                alerts.append(single_event_alert(rule, event))
            if self._correlator.feeds(rule_id):
                hit = Hit(rule_id, event.tenant, event.timestamp, (event.id,), _field_values(rule, event))
                alerts.extend(self._correlator.feed(hit))
        return alerts


def _field_values(rule: CompiledRule, event: Event) -> Callable[[str], Any]:
    return FieldValues(event, rule.fields.name)


class FieldValues:
    """How a correlation reads a `group-by` field from a rule's event: through the rule's own field
    map, so a Windows rule's `User` or `TargetUserName` reads the event's EventData (or its ECS
    name) exactly as the rule's detection did; the plain event path otherwise. Holds only the
    event and the map's name, so correlation state pickles (scale-out checkpoints)."""

    __slots__ = ("event", "fields")

    def __init__(self, event: Event, fields: str) -> None:
        self.event = event
        self.fields = fields

    def __call__(self, name: str) -> Any:
        doc = self.event.doc
        for path in field_map_named(self.fields).resolve(name):
            found = lookup(doc, path)
            if found is not MISSING:
                return found
        return self.event.get(name)


def single_event_alert(rule: CompiledRule, event: Event) -> Alert:
    info, entity = rule.info, event_entity(event)
    return Alert(
        id=Alert.make_id(event.tenant, info.rule_id, entity, event.id),
        tenant=event.tenant,
        timestamp=event.timestamp,
        kind=DetectionKind.SIGMA,
        rule_id=info.rule_id,
        rule_title=info.title,
        severity=info.severity,
        event_ids=(event.id,),
        entity=entity,
        tags=info.tags,
        description=info.description,
    )


def event_entity(event: Event) -> dict[str, str]:
    """What a single-event alert is about: the first of host, source, user the event names."""
    for field in ENTITY_FIELDS:
        text = group_text(event.get(field))
        if text is not None:
            return {field: text}
    return {}
