"""Sigma values -> tests on one field value: the leaves of a compiled detection.

Stage: inside compile (compile.py). In: pySigma's typed values, modifiers already applied
(`SigmaString` parts and wildcards, `SigmaRegularExpression`, `SigmaCIDRExpression`, numbers,
booleans). Out: a `ValueTest` over one scalar field value (`value_test`), for every value of a
field OR-ed together.

Semantics (compile.py's docstring has the whole list): strings compare case-insensitively
(`str.lower`) unless `|cased`; `*` and `?` are wildcards; `|re` is RE2, searched; numbers compare
numerically with numeric text accepted; CIDR tests IPv4/IPv6 text.

How a field's values become one test (the hot loop of the engine):
- Equals, prefix, suffix and contains values (the shapes SigmaHQ rules use most) are grouped by
  shape: one set lookup for equals, one `str.startswith`/`str.endswith` over a tuple, and the
  contains values one `in` each when few, else one RE2 alternation (rematch.py). Everything else
  (inner wildcards, `?`, `|re`) is an RE2 group, and a field's groups run as one RE2 search.
- The value is turned into text once and lower-cased once for all case-insensitive values.
  bench/sigma_engine.py: testing each value with its own closure spent ~60 % of the engine's time
  on rules with long value lists (emoji, homoglyph and LOLBin lists, hundreds of values).

Invariants: tests never raise, whatever the value's type; every pattern is RE2 (linear time);
what cannot be honoured raises `ValueRejected` at compile time, naming the value.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from ipaddress import ip_address
from typing import Any, Literal

import re2
from sigma.types import (
    CompareOperators,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExpansion,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
    TimestampPart,
)

from detections.sigma.errors import RuleError
from detections.sigma.rematch import TextTest, compile_pattern, literals_searcher, searcher

ValueTest = Callable[[Any], bool]  # one scalar field value -> matches?
FEW_NEEDLES = 4  # up to this many contains values: `in` each (~0.1 us), beyond: one RE2 search (~1 us)


class ValueRejected(RuleError):
    """A value compiling refuses; `compile_detection` names the YAML key it came from."""

    def __init__(self, reason: str, value: object) -> None:
        super().__init__(reason)
        self.value = value


class _Unsupported(Exception):
    """A value the builders cannot honour; `value_test` says which value."""


def is_per_value(value: SigmaType) -> bool:
    """Whether `value` tests one field value at a time, so tests on one field can share a lookup."""
    if isinstance(value, SigmaExpansion):
        return all(is_per_value(item) for item in value.values)
    return type(value) in _TEXT_TESTS or type(value) in _VALUE_TESTS


def value_test(values: Sequence[SigmaType]) -> ValueTest:
    """A field value that any of `values` accepts (expansions included); the text tests share one
    conversion to text, and one lower-casing for the case-insensitive ones."""
    checks: list[_TextCheck] = []
    others: list[ValueTest] = []
    for value in flatten(values):
        # Exact types: an unknown subclass is refused, not guessed.
        text_builder, builder = _TEXT_TESTS.get(type(value)), _VALUE_TESTS.get(type(value))
        try:
            if text_builder is not None:
                checks.append(text_builder(value))
            elif builder is not None:
                others.append(builder(value))
            else:
                raise ValueRejected(f"{type(value).__name__} values are not supported", value)
        except _Unsupported as e:
            raise ValueRejected(str(e), value) from e
    tests = ([_text_checks(checks)] if checks else []) + others
    if len(tests) == 1:
        return tests[0]
    frozen = tuple(tests)
    return lambda found: any(test(found) for test in frozen)


def flatten(values: Sequence[SigmaType]) -> list[SigmaType]:
    """Values with expansions (base64offset, windash variants) spliced in: they are alternatives."""
    flat: list[SigmaType] = []
    for value in values:
        flat.extend(flatten(value.values) if isinstance(value, SigmaExpansion) else [value])
    return flat


def as_text(value: Any) -> str | None:
    """A scalar as the text string values compare with; None for null, lists and mappings."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return None


# --- text: equals, prefix, suffix, contains, wildcards, regular expressions ---------------------

Shape = Literal["equals", "prefix", "suffix", "contains", "any"]


@dataclass(frozen=True, slots=True)
class _TextCheck:
    """One value's check on a field's text: a `shape` with its `literal` (lower-cased unless
    cased, tested on the lower-cased text), else an RE2 `fragment` searched in the text as is."""

    shape: Shape | None = None
    literal: str = ""
    on_folded: bool = False
    fragment: str | None = None


def _text_checks(checks: Sequence[_TextCheck]) -> ValueTest:
    raw = _shapes_test([check for check in checks if check.shape is not None and not check.on_folded])
    folded = _shapes_test([check for check in checks if check.shape is not None and check.on_folded])
    fragments = [check.fragment for check in checks if check.fragment is not None]
    if fragments:
        raw = _either(raw, _regex_search(fragments))
    return _on_text(raw, folded)


def _either(first: TextTest | None, second: TextTest | None) -> TextTest | None:
    if first is None or second is None:
        return first or second
    return lambda text: first(text) or second(text)


def _shapes_test(checks: Sequence[_TextCheck]) -> TextTest | None:
    """One test for the shaped checks: a set, two tuples and the contains values (docstring)."""
    if not checks:
        return None
    if any(check.shape == "any" for check in checks):
        return lambda text: True
    by_shape: dict[Shape, list[str]] = {}
    for check in checks:
        by_shape.setdefault(check.shape or "any", []).append(check.literal)
    tests: list[TextTest] = []
    if "equals" in by_shape:
        tests.append(frozenset(by_shape["equals"]).__contains__)
    if "prefix" in by_shape:
        prefixes = tuple(dict.fromkeys(by_shape["prefix"]))
        tests.append(lambda text: text.startswith(prefixes))
    if "suffix" in by_shape:
        suffixes = tuple(dict.fromkeys(by_shape["suffix"]))
        tests.append(lambda text: text.endswith(suffixes))
    if "contains" in by_shape:
        tests.append(_contains_test(list(dict.fromkeys(by_shape["contains"]))))
    if len(tests) == 1:
        return tests[0]
    frozen = tuple(tests)
    return lambda text: any(test(text) for test in frozen)


def _contains_test(needles: list[str]) -> TextTest:
    if len(needles) == 1:
        needle = needles[0]
        return lambda text: needle in text
    if len(needles) > FEW_NEEDLES:
        try:
            return literals_searcher(needles)
        except re2.error:  # over RE2's memory budget: correct, only slower
            pass
    frozen = tuple(needles)
    return lambda text: any(needle in text for needle in frozen)


def _regex_search(fragments: Sequence[str]) -> TextTest:
    """All RE2 fragments of a field as one pattern: one linear pass over the text, whatever their
    number. Each fragment compiled alone already; together they may exceed RE2's memory budget."""
    try:
        return searcher("|".join(fragments))
    except re2.error:
        tests = tuple(searcher(fragment) for fragment in fragments)
    return lambda text: any(test(text) for test in tests)


def _on_text(raw: TextTest | None, folded: TextTest | None) -> ValueTest:
    """Tests on a value's text: `raw` on it as it is, `folded` on it lower-cased (computed once)."""
    def test(found: Any) -> bool:
        # `type(...) is str` first: nearly every value is text (bench/sigma_engine.py).
        text = found if type(found) is str else as_text(found)
        if text is None:
            return False
        if raw is not None and raw(text):
            return True
        return folded is not None and folded(text.lower())

    return test


def _string_test(value: SigmaString) -> _TextCheck:
    cased = isinstance(value, SigmaCasedString)
    parts = _string_parts(value)
    compared = parts if cased else [part.lower() if isinstance(part, str) else part for part in parts]
    shaped = _shape_of(compared)
    if shaped is not None:
        return _TextCheck(shaped[0], shaped[1], on_folded=not cased)
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


STAR = SpecialChars.WILDCARD_MULTI
_WILDCARD_REGEX = {SpecialChars.WILDCARD_MULTI: ".*", SpecialChars.WILDCARD_SINGLE: "."}


def _shape_of(parts: Sequence[str | SpecialChars]) -> tuple[Shape, str] | None:
    if all(isinstance(part, str) for part in parts):
        return "equals", "".join(str(part) for part in parts)
    if len(parts) == 1 and parts[0] is STAR:
        return "any", ""
    if len(parts) == 3 and parts[0] is STAR and parts[2] is STAR and isinstance(parts[1], str):
        return "contains", parts[1]
    if len(parts) == 2 and isinstance(parts[0], str) and parts[1] is STAR:
        return "prefix", parts[0]
    if len(parts) == 2 and parts[0] is STAR and isinstance(parts[1], str):
        return "suffix", parts[1]
    return None


def compile_re2(pattern: str) -> Any:
    """An RE2 pattern (linear-time matching), or `_Unsupported` naming what RE2 refused."""
    try:
        return compile_pattern(pattern)
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