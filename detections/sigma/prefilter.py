"""Compiled rules -> the few an event could match: a literal every match must contain, checked first.

Stage: inside matching (match.py), after the log source scope. In, at compile time: a rule's
detection (`required_literals`). Out: a `Requirement`, a disjunction of (field, literal) atoms
such that whenever the rule matches an event, at least one atom's literal is a substring of that
field's lower-cased text. Per event, `RulePrefilter.candidates` returns, in load order, the rules
whose requirement holds plus every rule with no requirement.

How literals are extracted from the condition tree:
- `f: value` (a `SigmaString`, cased or not): the longest run of plain ASCII text between
  wildcards, lower-cased. Equals, contains, startswith, endswith and inner wildcards all contain it.
- AND: the child requirement with the longest shortest literal (one child is enough).
- OR (and `1 of`, value lists, expansions such as windash and base64offset): the union of the
  children's atoms, or none when any child has none.
- Keywords (values without a field): the same literal, on `message` or `event.original`.
- NOT, regular expressions, numbers, CIDR, null, exists, field references: none.

Invariants (correctness first: a rule is skipped only when it cannot match):
- Atoms read a field with the rule's own `Reader` and turn values into text as compile.py does
  (`str`, numbers, booleans; a list matches when any element does).
- Case: only ASCII literals are kept, except for the plain shapes (`longest_literal`). Plain
  shapes (equals, contains, prefix, suffix) test
  `str.lower` text, as here; wildcard shapes are RE2 `(?i)`, whose simple case folding also
  matches U+212A (Kelvin sign, which `str.lower` turns into `k`) and U+017F (long s, which it
  leaves alone) to ASCII letters. So an event's text is lower-cased and, if not ASCII, its U+017F
  replaced by `s`: every text RE2 could match then contains the literal.
- Deterministic: candidates keep the rules' order, so alerts come out as without the prefilter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import re2
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaRule
from sigma.types import SigmaCasedString, SigmaExpansion, SigmaString, SpecialChars

from detections.sigma.fields import ECS_FIELDS, KEYWORD_FIELDS, FieldMap, Reader
from detections.sigma.rematch import LiteralMatcher, literal_set

if TYPE_CHECKING:  # compile.py imports `Requirement` from here at run time
    from detections.sigma.compile import CompiledRule


@dataclass(frozen=True, slots=True)
class Atom:
    """The lower-cased text of `field` (as `fields` reads it) contains `literal`."""

    field: str
    literal: str
    fields: FieldMap

    def reader(self) -> Reader:
        return self.fields.reader(self.field)


_NON_ASCII = re2.compile(r"[^\x00-\x7f]+")

Requirement = tuple[Atom, ...]  # at least one holds in every event the rule matches; () never used


def required_literals(rule: SigmaRule, fields: FieldMap) -> Requirement | None:
    """A necessary condition for `rule` to match (see the module docstring), or None if none is known.

    Never raises: a condition pySigma cannot parse gives None (compile.py reports it).
    """
    try:
        trees = [condition.parse() for condition in rule.detection.parsed_condition]
    except Exception:  # compile.py reports a broken condition; here it only means "no literal"
        return None
    try:
        return _any([_node(tree, fields) for tree in trees])
    except RecursionError:
        return None


def _node(node: Any, fields: FieldMap) -> Requirement | None:
    if isinstance(node, ConditionAND):
        found = [req for req in (_node(arg, fields) for arg in node.args) if req is not None]
        return max(found, key=_strength, default=None)
    if isinstance(node, ConditionOR):
        return _any([_node(arg, fields) for arg in node.args])
    if isinstance(node, ConditionFieldEqualsValueExpression) and node.field:
        return _value(node.field, node.value, fields)
    if isinstance(node, ConditionValueExpression):
        return _keyword(node.value)
    return None  # NOT and anything else: no literal


def _any(requirements: Sequence[Requirement | None]) -> Requirement | None:
    known = [req for req in requirements if req is not None]
    if not known or len(known) < len(requirements):
        return None
    atoms: dict[tuple[str, str, str], Atom] = {}
    for req in known:
        for atom in req:
            atoms.setdefault((atom.fields.name, atom.field, atom.literal), atom)
    return tuple(atoms.values())


def _strength(req: Requirement) -> tuple[int, int]:
    """Prefer the requirement whose weakest literal is longest, then the one with fewer atoms."""
    return (min(len(atom.literal) for atom in req), -len(req))


def _value(field: str, value: Any, fields: FieldMap) -> Requirement | None:
    if isinstance(value, SigmaExpansion):
        return _any([_value(field, item, fields) for item in value.values])
    # Exact types, as compile.py dispatches: regexes, numbers, null, field references... give none.
    if type(value) not in (SigmaString, SigmaCasedString):
        return None
    literal = longest_literal(value)
    if literal is None:
        return None
    return (Atom(field, literal, fields),)


def _keyword(value: Any) -> Requirement | None:
    """A keyword is a substring of `message` or `event.original` (compile.py): an atom on each."""
    if isinstance(value, SigmaExpansion):
        return _any([_keyword(item) for item in value.values])
    if type(value) not in (SigmaString, SigmaCasedString):
        return None
    literal = longest_literal(value)
    if literal is None:
        return None
    return tuple(Atom(field, literal, ECS_FIELDS) for field in KEYWORD_FIELDS)


def _plain_text(value: SigmaString) -> str | None:
    """The text of a value compile.py tests with `str` operations (equals, prefix, suffix,
    contains: wildcards `*` at the ends at most); None for any other shape."""
    parts = list(value.s)
    if parts and parts[0] is SpecialChars.WILDCARD_MULTI:
        parts = parts[1:]
    if parts and parts[-1] is SpecialChars.WILDCARD_MULTI:
        parts = parts[:-1]
    texts = [part for part in parts if isinstance(part, str)]
    return "".join(texts) if len(texts) == len(parts) else None


def longest_literal(value: SigmaString) -> str | None:
    """The longest ASCII run of `value`'s plain text, lower-cased; None if there is none.

    Runs end at wildcards, placeholders and, after lower-casing, non-ASCII characters (windash's
    en dash, say): a part of a run that every match contains is contained in every match too.
    Except for the plain shapes (`_plain_text`): compile.py tests those on `str.lower` text, as
    here, so the whole text is the literal, non-ASCII included, with U+017F folded as the event's
    text is. Not with a capital sigma, the one letter `str.lower` folds by its context.
    bench/sigma_engine.py: the emoji and homoglyph rules (hundreds of non-ASCII `contains`
    values) were otherwise evaluated on every process creation.
    """
    plain = _plain_text(value)
    if plain and not plain.isascii() and "\u03a3" not in plain:
        return plain.lower().replace("\u017f", "s")
    runs: list[str] = [""]
    for part in value.s:
        if isinstance(part, str):
            runs[-1] += part
        else:  # a wildcard or a placeholder (|expand, whose text is unknown)
            runs.append("")
    pieces = [piece for run in runs for piece in _NON_ASCII.split(run.lower())]
    best = max(pieces, key=len)
    return best or None


# --- the index ------------------------------------------------------------------------------------

def _texts(value: Any) -> list[str]:
    """A field value's texts as compile.py sees them, lower-cased and folded (module docstring)."""
    items = value if isinstance(value, list) else [value]
    texts = []
    for item in items:
        if isinstance(item, bool):
            texts.append("true" if item else "false")
        elif isinstance(item, (str, int, float)):
            text = str(item).lower()
            texts.append(text if text.isascii() else text.replace("\u017f", "s"))
    return texts


def literal_matcher(literals: Sequence[str]) -> LiteralMatcher:
    """All `literals` found in one linear pass (rematch.literal_set: an RE2 set of escaped
    literals, the job Aho-Corasick does); `in` per literal if RE2 refuses the set. Indices in any
    order.

    bench/sigma_engine.py, 2,837 rules: no prefilter 131 events/s; this prefilter 1,934 events/s
    (an `in` test per literal instead of the set spent ~0.6 ms per event on ~1,400 literals).
    """
    try:
        return literal_set(literals)
    except re2.error:  # over the memory budget: correct, only slower
        frozen = tuple(enumerate(literals))
        return lambda text: [i for i, literal in frozen if literal in text]


@dataclass(frozen=True, slots=True)
class _FieldIndex:
    """One field as one field map reads it: its literals, each with the rules that need it."""

    reader: Reader
    match: LiteralMatcher
    positions: tuple[tuple[int, ...], ...]  # per literal index: the positions of its rules


class RulePrefilter:
    """The rules of one scope, indexed by their required literals. Built once, read per event."""

    def __init__(self, rules: Sequence[CompiledRule], requirements: Sequence[Requirement | None]) -> None:
        self.rules = tuple(rules)
        self._always = frozenset(i for i, req in enumerate(requirements) if req is None)
        by_field: dict[tuple[FieldMap, str], dict[str, list[int]]] = {}
        for position, req in enumerate(requirements):
            for atom in req or ():
                # One read per (field map, field) and event, however many rules test the field.
                by_field.setdefault((atom.fields, atom.field), {}).setdefault(atom.literal, []).append(position)
        self._fields = tuple(_FieldIndex(fields.reader(field), literal_matcher(list(literals)),
                                         tuple(tuple(rules) for rules in literals.values()))
                             for (fields, field), literals in by_field.items())

    def candidates(self, flat: Mapping[str, Any]) -> Sequence[CompiledRule]:
        """The rules that could match the event whose `flat_view` this is, in their original order."""
        if not self._fields:
            return self.rules
        hit: set[int] = set(self._always)
        for index in self._fields:
            value = index.reader(flat)
            if value is None or isinstance(value, Mapping):
                continue
            for text in _texts(value):
                for found in index.match(text):
                    hit.update(index.positions[found])
        rules = self.rules
        return [rules[i] for i in sorted(hit)]
