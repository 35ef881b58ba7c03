"""Events -> alerts: every loaded rule on every event, correlations fed as matches happen.

Stage: the last of detections/sigma, run by the detection worker. In: batches of events in arrival
order. Out: alerts, single-event (`SIGMA`) and correlation (`SIGMA_CORRELATION`, see correlate.py).

Invariants:
- Prefilter: rules are grouped by log source scope; each distinct scope is tested once per event
  and only the rules of the scopes that match are looked at. Within a scope, only the rules
  whose required literal the event contains, and those without one, are evaluated
  (prefilter.py); `use_prefilter=False` evaluates them all, with the same results.
- Deterministic: a single-event alert's id is (tenant, rule, entity, event id), and correlation
  alert ids are deterministic too, so processing the same events again yields the same alert ids
  (an idempotent upsert downstream).
- State: single-event matching has none; the correlator's groups are bounded by `max_groups`.
- A rule referenced by correlations without `generate: true` still runs, to feed them, but raises
  no alerts of its own; a rule that neither alerts nor feeds anything is not run at all.
- Not thread-safe: one engine per worker.
"""

from __future__ import annotations

from collections.abc import Sequence

from detections.sigma.compile import CompiledRule
from detections.sigma.correlate import Correlator, Hit, group_text
from detections.sigma.load import RuleSet
from detections.sigma.logsources import EventScope
from detections.sigma.prefilter import RulePrefilter
from pipeline import ecs
from pipeline.records import Alert, DetectionKind, Event

ENTITY_FIELDS = (ecs.HOST_NAME, ecs.SOURCE_ADDRESS, ecs.USER_NAME)  # first present wins


class SigmaEngine:
    """A `RuleSet` run over a stream of events."""

    def __init__(self, ruleset: RuleSet, *, max_groups: int = 100_000, use_prefilter: bool = True) -> None:
        self.ruleset = ruleset
        self._correlator = Correlator(ruleset.correlations, max_groups=max_groups)
        by_scope: dict[EventScope, list[CompiledRule]] = {}
        for rule in ruleset.rules:
            if rule.emits_alerts or self._correlator.feeds(rule.info.rule_id):
                by_scope.setdefault(rule.scope, []).append(rule)
        self._by_scope = tuple(
            (scope, RulePrefilter(rules, [rule.required if use_prefilter else None for rule in rules]))
            for scope, rules in by_scope.items())

    @property
    def correlation_groups(self) -> int:
        """Groups with a partial window now held (at most `max_groups`)."""
        return self._correlator.group_count

    @property
    def evicted_groups(self) -> int:
        """Groups dropped so far to stay within `max_groups` (their partial windows were lost)."""
        return self._correlator.evicted

    def process(self, events: Sequence[Event]) -> list[Alert]:
        """The alerts these events raise, in event order; correlation state carries over batches."""
        alerts: list[Alert] = []
        for event in events:
            alerts.extend(self._process_event(event))
        return alerts

    def matching_rules(self, event: Event) -> list[CompiledRule]:
        """The rules whose detection matches `event` (stateless; for retro-hunts and tests)."""
        return [rule for scope, prefilter in self._by_scope if scope.matches(event)
                for rule in prefilter.candidates(event) if rule.predicate(event)]

    def _process_event(self, event: Event) -> list[Alert]:
        alerts: list[Alert] = []
        for rule in self.matching_rules(event):
            rule_id = rule.info.rule_id
            if rule.emits_alerts:
                alerts.append(single_event_alert(rule, event))
            if self._correlator.feeds(rule_id):
                hit = Hit(rule_id, event.tenant, event.timestamp, (event.id,), event.get)
                alerts.extend(self._correlator.feed(hit))
        return alerts


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
