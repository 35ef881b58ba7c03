"""An event -> the few rules that could match it: by log source first, then by literal.

Stage: inside matching (match.py). In, at build time: the compiled rules an engine runs. Per event:
its flat view (`fields.flat_view`). Out: the candidate rules, in load order; the engine runs each
candidate's full test.

How:
- Log source: every scope of an exact value (`winlog.channel == ...`, `event.dataset == ...`,
  optionally with `event.code` in a set) is indexed as field -> value -> event code -> one
  `RulePrefilter` holding the rules of that code's scopes and of the scopes with no code, merged
  in load order. An event costs one dict lookup per indexed field (two today), whatever the number
  of scopes. Prefix scopes (`event.dataset` starting with `system.`) are tested one by one.
- Literal: within the group, prefilter.py's necessary literals (one RE2 set pass per field).

bench/sigma_engine.py: testing each of the ~70 Windows scopes per event (`EventScope.matches`,
a general nested lookup each) cost about a third of the engine's time once rule tests were cheap.

Invariants:
- Same candidates as testing every scope with `EventScope.matches` and then the prefilter, in load
  order (test_sigma_dispatch.py); `use_prefilter=False` skips only the literal step.
- An `event.code` that is not text (missing, a number, a list) matches no scope that names codes,
  as `EventScope.matches` says; it never raises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from detections.sigma.compile import CompiledRule
from detections.sigma.logsources import EVENT_CODE, EventScope
from detections.sigma.prefilter import RulePrefilter

_NO_CODE = ""  # the key of a value's rules whose scope names no event code ("" is never a code)


def scope_matches(scope: EventScope, flat: Mapping[str, Any]) -> bool:
    """`EventScope.matches` on a flat view."""
    if not scope.matches_value(flat.get(scope.field)):
        return False
    if not scope.codes:
        return True
    code = flat.get(EVENT_CODE)
    return isinstance(code, str) and code in scope.codes


class RuleIndex:
    """The rules of an engine, indexed by log source and literal. Built once, read per event."""

    def __init__(self, rules: Sequence[CompiledRule], *, use_prefilter: bool = True) -> None:
        self.rules = tuple(rules)
        self._position = {id(rule): position for position, rule in enumerate(self.rules)}
        exact: dict[str, dict[str, dict[str, list[int]]]] = {}
        prefixed: dict[EventScope, list[int]] = {}
        for position, rule in enumerate(self.rules):
            scope = rule.scope
            if scope.is_prefix:
                prefixed.setdefault(scope, []).append(position)
                continue
            by_code = exact.setdefault(scope.field, {}).setdefault(scope.value, {})
            for code in scope.codes or (_NO_CODE,):
                by_code.setdefault(code, []).append(position)

        def group(positions: Sequence[int]) -> RulePrefilter:
            chosen = [self.rules[p] for p in sorted(set(positions))]
            return RulePrefilter(chosen, [rule.required if use_prefilter else None for rule in chosen])

        self._exact = tuple(
            (field, {value: {code: group(positions + (by_code.get(_NO_CODE, []) if code else []))
                             for code, positions in by_code.items()}
                     for value, by_code in by_value.items()})
            for field, by_value in exact.items())
        self._prefixed = tuple((scope, group(positions)) for scope, positions in prefixed.items())

    def candidates(self, flat: Mapping[str, Any]) -> Sequence[CompiledRule]:
        """The rules that could match the event whose flat view this is, in load order."""
        code = flat.get(EVENT_CODE)
        if not isinstance(code, str) or not code:
            code = _NO_CODE
        groups: list[Sequence[CompiledRule]] = []
        for field, by_value in self._exact:
            value = flat.get(field)
            if not isinstance(value, str):
                continue
            by_code = by_value.get(value)
            if by_code is None:
                continue
            prefilter = by_code.get(code) or by_code.get(_NO_CODE)
            if prefilter is not None:
                groups.append(prefilter.candidates(flat))
        for scope, prefilter in self._prefixed:
            if scope_matches(scope, flat):
                groups.append(prefilter.candidates(flat))
        if len(groups) == 1:
            return groups[0]
        position = self._position
        return sorted((rule for rules in groups for rule in rules), key=lambda rule: position[id(rule)])
