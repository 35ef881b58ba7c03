"""Sigma detections -> Python tests over one event.

Stage: after loading, before matching. In: a pySigma `SigmaRule`, whose modifiers pySigma has
already applied into typed values (`SigmaString` parts and wildcards, `SigmaRegularExpression`,
`SigmaCIDRExpression`, ...). Out: a `FlatTest` over the event's flat view (`fields.flat_view`, one
dict of every dotted name, built once per event by the engine; `compile_detection` wraps it as a
`Predicate` over an `Event`), and the `RuleInfo` every alert of the rule repeats. The leaves, tests
on one field value, are built in values.py.

Semantics, per value type:
- Fields are read as the rule's `FieldMap` (fields.py) reads them: as written (dotted ECS names,
  read from the nested document as `records.lookup` reads them) or, for Windows log sources,
  from EventData, UserData, then ECS, the first present (`Data`: the EventData as a whole). A
  list value matches when any element matches. A missing or null field matches nothing except
  `null` and `|exists: false`.
- Strings compare case-insensitively (`str.lower`) unless `|cased`; `*` and `?` are wildcards and
  `\\` escapes them (pySigma resolves the escapes). Numbers and booleans in an event compare as text
  ("4624", "true") against a string value.
- `|re` is RE2 syntax, searched (unanchored, as SigmaHQ rules are written), with `|i`, `|m`, `|s`.
- Numbers (`4624`, `|lt` `|lte` `|gt` `|gte`) accept numeric event values and numeric text.
- `|cidr` tests IPv4/IPv6 text; `null` is a missing or null field; `|exists` tells a present
  field (even null) from a missing one; `|fieldref` compares two fields' values as text
  (case-insensitive, with `|startswith`/`|endswith`/`|contains`); the time parts (`|hour`, ...)
  read ISO 8601 text without zone conversion.
- Keywords (values without a field) search `message` and `event.original` as substrings.

Invariants:
- Predicates never raise, whatever the document holds: types are checked, never assumed.
- Matching is linear in the event's size: every generated or user pattern is RE2, never `re`.
- What is not supported raises `RuleError` here, at compile time, so the rule is reported and
  skipped; there is no predicate that silently never (or always) matches. The error's
  `location.field` is the YAML key (`field|modifiers`) or "condition", for the loader's line.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.exceptions import SigmaConditionError, SigmaError
from sigma.modifiers import reverse_modifier_mapping
from sigma.rule import SigmaDetection, SigmaRule, SigmaRuleBase
from sigma.types import (
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaType,
)

from config.errors import SourceLocation
from detections.sigma.errors import RuleError
from detections.sigma.fields import ECS_FIELDS, KEYWORD_FIELDS, FieldMap, Reader, flat_view, path_reader
from detections.sigma.logsources import EventScope
from detections.sigma.prefilter import Requirement
from detections.sigma.values import (
    STAR,
    ValueRejected,
    ValueTest,
    as_text,
    flatten,
    is_per_value,
    value_test,
)
from pipeline.records import MISSING, Event, Severity

Predicate = Callable[[Event], bool]
FlatTest = Callable[[Mapping[str, Any]], bool]  # an event's `flat_view` -> matches? (what the engine runs)

DEFAULT_SEVERITY = Severity.MEDIUM  # a rule without `level`: neither buried nor paged


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """What an alert says about the rule that raised it."""

    rule_id: str
    title: str
    severity: Severity
    tags: tuple[str, ...]
    description: str
    source: str  # the file the rule came from

    @classmethod
    def of(cls, rule: SigmaRuleBase, source: str) -> RuleInfo:
        level = rule.level
        return cls(
            rule_id=rule_key(rule),
            title=rule.title,
            severity=Severity.from_label(level.name) if level is not None else DEFAULT_SEVERITY,
            tags=tuple(str(tag) for tag in rule.tags),
            description=(rule.description or "").strip(),
            source=source,
        )


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A single-event rule ready to run: which events it looks at, and the test itself.

    `emits_alerts` is False for a rule that only feeds correlations (Sigma's `generate: false`).
    `required` is a necessary condition for `test` (prefilter.py), None when none is known.
    """

    info: RuleInfo
    scope: EventScope
    test: FlatTest  # over the event's `flat_view`, which the engine builds once per event
    emits_alerts: bool = True
    required: Requirement | None = None
    fields: FieldMap = ECS_FIELDS  # how the rule's field names read (for exceptions compiled alike)

    def matches(self, event: Event) -> bool:
        """Whether the detection matches `event` (its scope is not checked)."""
        return self.test(flat_view(event.doc))


def rule_key(rule: SigmaRuleBase) -> str:
    """The id alerts carry: the rule's `id` (a UUID in practice), else its `name`, else its title."""
    if rule.id is not None:
        return str(rule.id)
    return rule.name or rule.title


def compile_detection(rule: SigmaRule, fields: FieldMap = ECS_FIELDS) -> Predicate:
    """`compile_test` over whole events (each read into its flat view first): for tests and tools."""
    test = compile_test(rule, fields)
    return lambda event: test(flat_view(event.doc))


def compile_test(rule: SigmaRule, fields: FieldMap = ECS_FIELDS) -> FlatTest:
    """One test for the rule's detection; several conditions are OR-ed, as Sigma says.

    `fields` says where each of the rule's field names is read in an event (the log source's map;
    names as written by default). Raises `RuleError` for a broken condition or a value type that
    is not supported.
    """
    trees = [_parse_condition(condition) for condition in rule.detection.parsed_condition]
    try:
        return _any_of([_compile_node(tree, fields) for tree in trees])
    except ValueRejected as e:
        raise RuleError(e.reason, SourceLocation(field=_key_of(rule, e.value))) from e
    except RecursionError as e:
        raise RuleError("condition is nested too deeply", SourceLocation(field="condition")) from e


def _parse_condition(condition: Any) -> Any:
    """pySigma's condition tree, or RuleError: pySigma raises more than SigmaError on odd input
    (a null or mapping `condition:` gives TypeError), and bad input must not take the load down."""
    where = SourceLocation(field="condition")
    try:
        return condition.parse()
    except SigmaError as e:
        raise RuleError(sigma_reason(e), where if isinstance(e, SigmaConditionError) else None) from e
    except RecursionError as e:
        raise RuleError("condition is nested too deeply", where) from e
    except Exception as e:
        raise RuleError(f"condition cannot be parsed: {type(e).__name__}: {e}", where) from e


def _key_of(rule: SigmaRule, value: object) -> str | None:
    """The YAML key (`field|modifiers`) of the detection item holding `value`; None for keywords."""
    stack: list[Any] = list(rule.detection.detections.values())
    while stack:
        node = stack.pop()
        if isinstance(node, SigmaDetection):
            stack.extend(node.detection_items)
            continue
        held = [item.values if isinstance(item, SigmaExpansion) else [item] for item in node.value]
        if any(v is value for values in held for v in values):
            modifiers = [reverse_modifier_mapping.get(m.__name__, m.__name__) for m in node.modifiers]
            return "|".join([node.field or "", *modifiers]) if node.field or modifiers else None
    return None


def sigma_reason(error: SigmaError) -> str:
    """pySigma's message without the " in <absolute path>" it appends; we print our own location."""
    return str(error.args[0]) if error.args else type(error).__name__


# --- the condition tree ---------------------------------------------------------------------------

def _compile_node(node: Any, fields: FieldMap) -> FlatTest:
    if isinstance(node, ConditionAND):
        return _all_of([_compile_node(arg, fields) for arg in node.args])
    if isinstance(node, ConditionOR):
        return _compile_or(node.args, fields)
    if isinstance(node, ConditionNOT):
        inner = _compile_node(node.args[0], fields)
        return lambda flat: not inner(flat)
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _compile_field(node.field, node.value, fields)
    if isinstance(node, ConditionValueExpression):
        return _keywords_predicate([node.value])
    if node is None:
        raise RuleError("condition selects no detection items", SourceLocation(field="condition"))
    raise RuleError(f"condition element {type(node).__name__} is not supported",
                    SourceLocation(field="condition"))


def _compile_or(args: Sequence[Any], fields: FieldMap) -> FlatTest:
    """OR, reading each field once: a value list (`f: [a, b, ...]`) or a keyword list becomes one
    lookup and one conversion to text, then a test per value. OR has no order to keep."""
    by_field: dict[str, list[SigmaType]] = {}
    keywords: list[SigmaType] = []
    others: list[FlatTest] = []
    for arg in args:
        if isinstance(arg, ConditionFieldEqualsValueExpression) and is_per_value(arg.value):
            by_field.setdefault(arg.field, []).append(arg.value)
        elif isinstance(arg, ConditionValueExpression):
            keywords.append(arg.value)
        else:
            others.append(_compile_node(arg, fields))
    grouped = [_field_predicate(fields.reader(field), value_test(values)) for field, values in by_field.items()]
    if keywords:
        grouped.append(_keywords_predicate(keywords))
    return _any_of(grouped + others)


def _all_of(predicates: Sequence[FlatTest]) -> FlatTest:
    if len(predicates) == 1:
        return predicates[0]
    frozen = tuple(predicates)
    return lambda flat: all(predicate(flat) for predicate in frozen)


def _any_of(predicates: Sequence[FlatTest]) -> FlatTest:
    if len(predicates) == 1:
        return predicates[0]
    frozen = tuple(predicates)
    return lambda flat: any(predicate(flat) for predicate in frozen)


# --- field lookup ---------------------------------------------------------------------------------

def _is_absent(value: Any) -> bool:
    return value is None or value is MISSING


def _field_predicate(read: Reader, test: ValueTest) -> FlatTest:
    def predicate(flat: Mapping[str, Any]) -> bool:
        value = read(flat)
        if isinstance(value, list):
            return any(test(item) for item in value)
        return value is not None and value is not MISSING and test(value)

    return predicate


# --- one field = one value ------------------------------------------------------------------------

def _compile_field(field: str, value: SigmaType, fields: FieldMap) -> FlatTest:
    if isinstance(value, SigmaExpansion):  # base64offset, windash: the variants are OR-ed
        return _any_of([_compile_field(field, item, fields) for item in value.values])
    read = fields.reader(field)
    if isinstance(value, SigmaNull):
        return lambda flat: _is_absent(read(flat))
    if isinstance(value, SigmaExists):
        wanted = bool(value.exists)
        return lambda flat: (read(flat) is not MISSING) is wanted
    if isinstance(value, SigmaFieldReference):
        return _fieldref_predicate(read, fields.reader(value.field), value)
    return _field_predicate(read, value_test([value]))



# --- field references and keywords ----------------------------------------------------------------

_REF_COMPARE: dict[tuple[bool, bool], Callable[[str, str], bool]] = {
    (False, False): operator.eq,
    (True, False): str.startswith,
    (False, True): str.endswith,
    (True, True): operator.contains,
}


def _texts(value: Any) -> list[str]:
    """A field value as lower-cased texts: none when missing or null, one per list element."""
    items = value if isinstance(value, list) else [value]
    return [text.lower() for text in map(as_text, items) if text is not None]


def _fieldref_predicate(read: Reader, read_other: Reader, ref: SigmaFieldReference) -> FlatTest:
    compare = _REF_COMPARE[(ref.starts_with, ref.ends_with)]

    def predicate(flat: Mapping[str, Any]) -> bool:
        lefts = _texts(read(flat))
        rights = _texts(read_other(flat)) if lefts else []
        return any(compare(left, right) for left in lefts for right in rights)

    return predicate


def _keywords_predicate(values: Sequence[SigmaType]) -> FlatTest:
    test = value_test([_as_keyword(value) for value in flatten(values)])
    return _any_of([_field_predicate(path_reader((field,)), test) for field in KEYWORD_FIELDS])


def _as_keyword(value: SigmaType) -> SigmaType:
    """A keyword as the value it tests: strings (and numbers, as text) are substrings, "*value*"."""
    if type(value) is SigmaNumber:
        value = SigmaString.from_str(str(value.number))
    if isinstance(value, SigmaString):
        return _surrounded_by_stars(value)
    if not isinstance(value, SigmaRegularExpression):
        raise ValueRejected(f"{type(value).__name__} keywords are not supported", value)
    return value


def _surrounded_by_stars(value: SigmaString) -> SigmaString:
    result = type(value)()  # keeps `cased`
    result.s = list(value.s)
    if not result.s or result.s[0] is not STAR:
        result.s.insert(0, STAR)
    if result.s[-1] is not STAR:
        result.s.append(STAR)
    return result
