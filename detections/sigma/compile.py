"""Sigma detections -> Python predicates over one event.

Stage: after loading, before matching. In: a pySigma `SigmaRule`, whose modifiers pySigma has
already applied into typed values (`SigmaString` parts and wildcards, `SigmaRegularExpression`,
`SigmaCIDRExpression`, ...). Out: a `Predicate` (`Callable[[Event], bool]`), and the `RuleInfo`
every alert of the rule repeats.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from ipaddress import ip_address
from typing import Any

import re2
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
    CompareOperators,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
    TimestampPart,
)

from config.errors import SourceLocation
from detections.sigma.errors import RuleError
from detections.sigma.fields import ECS_FIELDS, FieldMap, Reader, path_reader
from detections.sigma.logsources import EventScope
from detections.sigma.prefilter import Requirement
from pipeline import ecs
from pipeline.records import MISSING, Event, Severity

Predicate = Callable[[Event], bool]
ValueTest = Callable[[Any], bool]  # one scalar field value -> matches?
TextTest = Callable[[str], bool]  # a value's text (lower-cased for case-insensitive tests) -> matches?

KEYWORD_FIELDS = (ecs.MESSAGE, ecs.EVENT_ORIGINAL)
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
    `required` is a necessary condition for `predicate` (prefilter.py), None when none is known.
    """

    info: RuleInfo
    scope: EventScope
    predicate: Predicate
    emits_alerts: bool = True
    required: Requirement | None = None


def rule_key(rule: SigmaRuleBase) -> str:
    """The id alerts carry: the rule's `id` (a UUID in practice), else its `name`, else its title."""
    if rule.id is not None:
        return str(rule.id)
    return rule.name or rule.title


def compile_detection(rule: SigmaRule, fields: FieldMap = ECS_FIELDS) -> Predicate:
    """One predicate for the rule's detection; several conditions are OR-ed, as Sigma says.

    `fields` says where each of the rule's field names is read in an event (the log source's map;
    names as written by default). Raises `RuleError` for a broken condition or a value type that
    is not supported.
    """
    trees = [_parse_condition(condition) for condition in rule.detection.parsed_condition]
    try:
        return _any_of([_compile_node(tree, fields) for tree in trees])
    except _ValueRejected as e:
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


class _ValueRejected(RuleError):
    """A value compiling refuses; `compile_detection` names the YAML key it came from."""

    def __init__(self, reason: str, value: object) -> None:
        super().__init__(reason)
        self.value = value


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

def _compile_node(node: Any, fields: FieldMap) -> Predicate:
    if isinstance(node, ConditionAND):
        return _all_of([_compile_node(arg, fields) for arg in node.args])
    if isinstance(node, ConditionOR):
        return _compile_or(node.args, fields)
    if isinstance(node, ConditionNOT):
        inner = _compile_node(node.args[0], fields)
        return lambda event: not inner(event)
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _compile_field(node.field, node.value, fields)
    if isinstance(node, ConditionValueExpression):
        return _keywords_predicate([node.value])
    if node is None:
        raise RuleError("condition selects no detection items", SourceLocation(field="condition"))
    raise RuleError(f"condition element {type(node).__name__} is not supported",
                    SourceLocation(field="condition"))


def _compile_or(args: Sequence[Any], fields: FieldMap) -> Predicate:
    """OR, reading each field once: a value list (`f: [a, b, ...]`) or a keyword list becomes one
    lookup and one conversion to text, then a test per value. OR has no order to keep."""
    by_field: dict[str, list[SigmaType]] = {}
    keywords: list[SigmaType] = []
    others: list[Predicate] = []
    for arg in args:
        if isinstance(arg, ConditionFieldEqualsValueExpression) and _is_per_value(arg.value):
            by_field.setdefault(arg.field, []).append(arg.value)
        elif isinstance(arg, ConditionValueExpression):
            keywords.append(arg.value)
        else:
            others.append(_compile_node(arg, fields))
    grouped = [_field_predicate(fields.reader(field), _value_test(values)) for field, values in by_field.items()]
    if keywords:
        grouped.append(_keywords_predicate(keywords))
    return _any_of(grouped + others)


def _all_of(predicates: Sequence[Predicate]) -> Predicate:
    if len(predicates) == 1:
        return predicates[0]
    frozen = tuple(predicates)
    return lambda event: all(predicate(event) for predicate in frozen)


def _any_of(predicates: Sequence[Predicate]) -> Predicate:
    if len(predicates) == 1:
        return predicates[0]
    frozen = tuple(predicates)
    return lambda event: any(predicate(event) for predicate in frozen)


# --- field lookup ---------------------------------------------------------------------------------

def _is_absent(value: Any) -> bool:
    return value is None or value is MISSING


def _field_predicate(read: Reader, test: ValueTest) -> Predicate:
    def predicate(event: Event) -> bool:
        value = read(event.doc)
        if isinstance(value, list):
            return any(test(item) for item in value)
        return value is not None and value is not MISSING and test(value)

    return predicate


# --- one field = one value ------------------------------------------------------------------------

def _compile_field(field: str, value: SigmaType, fields: FieldMap) -> Predicate:
    if isinstance(value, SigmaExpansion):  # base64offset, windash: the variants are OR-ed
        return _any_of([_compile_field(field, item, fields) for item in value.values])
    read = fields.reader(field)
    if isinstance(value, SigmaNull):
        return lambda event: _is_absent(read(event.doc))
    if isinstance(value, SigmaExists):
        wanted = bool(value.exists)
        return lambda event: (read(event.doc) is not MISSING) is wanted
    if isinstance(value, SigmaFieldReference):
        return _fieldref_predicate(read, fields.reader(value.field), value)
    return _field_predicate(read, _value_test([value]))


def _is_per_value(value: SigmaType) -> bool:
    """Whether `value` tests one field value at a time, so tests on one field can share a lookup."""
    if isinstance(value, SigmaExpansion):
        return all(_is_per_value(item) for item in value.values)
    return type(value) in _TEXT_TESTS or type(value) in _VALUE_TESTS


def _value_test(values: Sequence[SigmaType]) -> ValueTest:
    """A field value that any of `values` accepts (expansions included); the text tests share one
    conversion to text, and one lower-casing for the case-insensitive ones."""
    checks: list[_TextCheck] = []
    others: list[ValueTest] = []
    for value in _flatten(values):
        # Exact types: an unknown subclass is refused, not guessed.
        text_builder, builder = _TEXT_TESTS.get(type(value)), _VALUE_TESTS.get(type(value))
        try:
            if text_builder is not None:
                checks.append(text_builder(value))
            elif builder is not None:
                others.append(builder(value))
            else:
                raise _ValueRejected(f"{type(value).__name__} values are not supported", value)
        except _Unsupported as e:
            raise _ValueRejected(str(e), value) from e
    tests = ([_text_checks(checks)] if checks else []) + others
    return tests[0] if len(tests) == 1 else lambda found: any(test(found) for test in tests)


def _text_checks(checks: Sequence[_TextCheck]) -> ValueTest:
    raw = [check.test for check in checks if check.test is not None and not check.on_folded]
    folded = [check.test for check in checks if check.test is not None and check.on_folded]
    fragments = [check.fragment for check in checks if check.fragment is not None]
    if fragments:
        raw.append(_regex_search(fragments))
    return _on_text(raw, folded)


def _regex_search(fragments: Sequence[str]) -> TextTest:
    """All RE2 fragments of a field as one pattern: one linear pass over the text, whatever their
    number. Each fragment compiled alone already; together they may exceed RE2's memory budget."""
    try:
        patterns = [compile_re2("|".join(fragments))]
    except _Unsupported:
        patterns = [compile_re2(fragment) for fragment in fragments]
    if len(patterns) == 1:
        pattern = patterns[0]
        return lambda text: pattern.search(text) is not None
    return lambda text: any(pattern.search(text) is not None for pattern in patterns)


def _flatten(values: Sequence[SigmaType]) -> list[SigmaType]:
    """Values with expansions (base64offset, windash variants) spliced in: they are alternatives."""
    flat: list[SigmaType] = []
    for value in values:
        flat.extend(_flatten(value.values) if isinstance(value, SigmaExpansion) else [value])
    return flat


class _Unsupported(Exception):
    """A value the builders cannot honour; `_value_test` says which value."""


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return None


def _on_text(raw: Sequence[TextTest], folded: Sequence[TextTest]) -> ValueTest:
    """Tests on a value's text: `raw` ones as it is, `folded` ones lower-cased (computed once)."""
    raw_tests, folded_tests = tuple(raw), tuple(folded)

    def test(found: Any) -> bool:
        text = _as_text(found)
        if text is None:
            return False
        if any(text_test(text) for text_test in raw_tests):
            return True
        if folded_tests:
            lowered = text.lower()
            return any(text_test(lowered) for text_test in folded_tests)
        return False

    return test


@dataclass(frozen=True, slots=True)
class _TextCheck:
    """One value's check on a field's text: a Python test for the shapes rules use most (equals,
    contains, prefix, suffix), else an RE2 group; a field's groups run as one RE2 search."""

    test: TextTest | None = None
    on_folded: bool = False  # `test` wants the text lower-cased
    fragment: str | None = None  # searched in the text as it is


def _string_test(value: SigmaString) -> _TextCheck:
    cased = isinstance(value, SigmaCasedString)
    parts = _string_parts(value)
    shape = _shape_test(parts if cased else [part.lower() if isinstance(part, str) else part for part in parts])
    if shape is not None:
        return _TextCheck(shape, on_folded=not cased)
    body = "".join(_WILDCARD_REGEX[p] if isinstance(p, SpecialChars) else re2.escape(p) for p in parts)
    return _TextCheck(fragment=_fragment("s" if cased else "si", rf"\A(?:{body})\z"))


def _string_parts(value: SigmaString) -> list[str | SpecialChars]:
    """The string's parts with neighbouring text merged; placeholders (`|expand`) are refused."""
    parts: list[str | SpecialChars] = []
    for part in value.s:
        if isinstance(part, SpecialChars):
            parts.append(part)
        elif isinstance(part, str):
            if parts and isinstance(parts[-1], str):
                parts[-1] += part
            else:
                parts.append(part)
        else:
            raise _Unsupported(f"placeholder %{part.name}% (|expand) is not supported")
    return parts


_STAR = SpecialChars.WILDCARD_MULTI
_WILDCARD_REGEX = {SpecialChars.WILDCARD_MULTI: ".*", SpecialChars.WILDCARD_SINGLE: "."}


def _shape_test(parts: Sequence[str | SpecialChars]) -> TextTest | None:
    if all(isinstance(part, str) for part in parts):
        return "".join(str(part) for part in parts).__eq__
    if len(parts) == 1 and parts[0] is _STAR:
        return lambda text: True
    if len(parts) == 3 and parts[0] is _STAR and parts[2] is _STAR and isinstance(parts[1], str):
        needle = parts[1]
        return lambda text: needle in text
    if len(parts) == 2 and isinstance(parts[0], str) and parts[1] is _STAR:
        prefix = parts[0]
        return lambda text: text.startswith(prefix)
    if len(parts) == 2 and parts[0] is _STAR and isinstance(parts[1], str):
        suffix = parts[1]
        return lambda text: text.endswith(suffix)
    return None


def compile_re2(pattern: str) -> Any:
    """An RE2 pattern (linear-time matching), or `_Unsupported` naming what RE2 refused."""
    options = re2.Options()
    options.log_errors = False  # RE2 would print to stderr; the reason goes into the RuleError
    try:
        return re2.compile(pattern, options)
    except re2.error as e:
        detail = e.args[0].decode(errors="replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        raise _Unsupported(f"regular expression {pattern!r} is not supported by RE2: {detail}") from e


_REGEX_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: "i",
    SigmaRegularExpressionFlag.MULTILINE: "m",
    SigmaRegularExpressionFlag.DOTALL: "s",
}


def _regex_test(value: SigmaRegularExpression) -> _TextCheck:
    if not isinstance(value.regexp, SigmaString):  # pySigma lets `f|re: null` or `f|re: 5` through
        raise _Unsupported(f"a regular expression must be a string, not {value.regexp!r}")
    if value.regexp.contains_placeholder():
        raise _Unsupported("placeholders (|expand) in regular expressions are not supported")
    flags = "".join(sorted(_REGEX_FLAGS[flag] for flag in value.flags))
    return _TextCheck(fragment=_fragment(flags, str(value.regexp)))


def _fragment(flags: str, pattern: str) -> str:
    """`pattern` as a group with its own flags, checked alone so an error names this value."""
    compile_re2(pattern if not flags else f"(?{flags}){pattern}")
    return f"(?{flags}:{pattern})" if flags else f"(?:{pattern})"


def _cidr_test(value: SigmaCIDRExpression) -> ValueTest:
    network = value.network

    def test(found: Any) -> bool:
        if not isinstance(found, str):
            return False
        try:
            return ip_address(found) in network
        except ValueError:
            return False

    return test


def _bool_test(value: SigmaBool) -> ValueTest:
    wanted = value.boolean
    text = "true" if wanted else "false"
    return lambda found: found is wanted if isinstance(found, bool) else (
        isinstance(found, str) and found.lower() == text)


# --- numbers and time parts -----------------------------------------------------------------------

Number = int | float
NumberReader = Callable[[Any], Number | None]


def _as_number(value: Any) -> Number | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
        try:
            return float(value)
        except ValueError:
            return None
    return None


_TIME_PARTS: dict[TimestampPart, Callable[[datetime], int]] = {
    TimestampPart.MINUTE: lambda ts: ts.minute,
    TimestampPart.HOUR: lambda ts: ts.hour,
    TimestampPart.DAY: lambda ts: ts.day,
    TimestampPart.WEEK: lambda ts: ts.isocalendar().week,
    TimestampPart.MONTH: lambda ts: ts.month,
    TimestampPart.YEAR: lambda ts: ts.year,
}


def _number_reader(value: SigmaNumber) -> NumberReader:
    """How to read a comparable number from an event value: the value itself, or a time part."""
    if not isinstance(value, SigmaTimestampPart):
        return _as_number
    part = _TIME_PARTS[value.timestamp_part]

    def read(found: Any) -> Number | None:
        if isinstance(found, datetime):
            return part(found)
        if isinstance(found, str):
            try:
                return part(datetime.fromisoformat(found))
            except ValueError:
                return None
        return None

    return read


_COMPARE: dict[CompareOperators, Callable[[Number, Number], bool]] = {
    CompareOperators.LT: operator.lt,
    CompareOperators.LTE: operator.le,
    CompareOperators.GT: operator.gt,
    CompareOperators.GTE: operator.ge,
    CompareOperators.NEQ: operator.ne,
}


def _number_test(value: SigmaNumber | SigmaCompareExpression) -> ValueTest:
    """Equality for a plain number, else the `|lt`... comparison; both on numbers or time parts."""
    if isinstance(value, SigmaCompareExpression):
        number, compare = value.number, _COMPARE[value.op]
    else:
        number, compare = value, operator.eq
    read, target = _number_reader(number), number.number

    def test(found: Any) -> bool:
        number = read(found)
        return number is not None and compare(number, target)

    return test


_TEXT_TESTS: dict[type, Callable[[Any], _TextCheck]] = {
    SigmaString: _string_test,
    SigmaCasedString: _string_test,
    SigmaRegularExpression: _regex_test,
}
_VALUE_TESTS: dict[type, Callable[[Any], ValueTest]] = {
    SigmaCIDRExpression: _cidr_test,
    SigmaNumber: _number_test,
    SigmaTimestampPart: _number_test,
    SigmaCompareExpression: _number_test,
    SigmaBool: _bool_test,
}


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
    return [text.lower() for text in map(_as_text, items) if text is not None]


def _fieldref_predicate(read: Reader, read_other: Reader, ref: SigmaFieldReference) -> Predicate:
    compare = _REF_COMPARE[(ref.starts_with, ref.ends_with)]

    def predicate(event: Event) -> bool:
        lefts = _texts(read(event.doc))
        rights = _texts(read_other(event.doc)) if lefts else []
        return any(compare(left, right) for left in lefts for right in rights)

    return predicate


def _keywords_predicate(values: Sequence[SigmaType]) -> Predicate:
    test = _value_test([_as_keyword(value) for value in _flatten(values)])
    return _any_of([_field_predicate(path_reader((field,)), test) for field in KEYWORD_FIELDS])


def _as_keyword(value: SigmaType) -> SigmaType:
    """A keyword as the value it tests: strings (and numbers, as text) are substrings, "*value*"."""
    if type(value) is SigmaNumber:
        value = SigmaString.from_str(str(value.number))
    if isinstance(value, SigmaString):
        return _surrounded_by_stars(value)
    if not isinstance(value, SigmaRegularExpression):
        raise _ValueRejected(f"{type(value).__name__} keywords are not supported", value)
    return value


def _surrounded_by_stars(value: SigmaString) -> SigmaString:
    result = type(value)()  # keeps `cased`
    result.s = list(value.s)
    if not result.s or result.s[0] is not _STAR:
        result.s.insert(0, _STAR)
    if result.s[-1] is not _STAR:
        result.s.append(_STAR)
    return result
