"""Differential test: the engine against pySigma's SQLite backend, rule by rule, on real events.

Corpus: every regression event of ../shared/data/sigma-regression (the .json renderings, read as
`govsoc detect` reads them) and loghub's Linux (auth) and Apache (error log) samples, parsed by
our sensors. Rules: every rule of ../shared/data/sigma that loads.

For each rule and each kind of event it runs on (a `CompiledRule`), the events of that kind are
loaded into SQLite the way Zircolite loads them: one row per event, one `TEXT COLLATE NOCASE`
column per Sigma field name, holding the value the rule's field map reads for that name (so the
field *mapping* is the same on both sides: it is tested by test_sigma_regression.py; this test is
about *matching*: modifiers, wildcards, escapes, case, null, numbers, conditions). The rule is
converted by pySigma's SQLite backend and its SQL must select exactly the events the engine's
`CompiledRule.matches` accepts. `REGEXP` is Python's `re.search`, as in Zircolite.

Rules left out, each with its reason:
- the backend does not convert them (the reason is the backend's error; `NOT_CONVERTED` lists the
  kinds of reason expected, and any other fails the test);
- `DIFFERENT_SEMANTICS`: rules whose SQL and Sigma's semantics differ on this corpus, each with
  the explanation. Strict: a rule listed there that starts agreeing fails the test, so the table
  stays true.
Run with `-s` to print the full left-out list.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from sigma.backends.sqlite.sqlite import sqliteBackend
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import SigmaFieldReference

from detections.sigma import CompiledRule, load_rules, sources_for
from detections.sigma.dispatch import scope_matches
from detections.sigma.fields import FieldMap, flat_view
from pipeline.records import MISSING, Event
from sensors.files import FileSource, read_log_file
from sensors.windows import WindowsSource, read_windows_file

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
RULES = DATA / "sigma"
REGRESSION = DATA / "sigma-regression"
LOGHUB = [(DATA / "loghub" / "Linux" / "Linux_2k.log", "auth"), (DATA / "loghub" / "Apache" / "Apache_2k.log",
                                                                   "apache_error")]

# Kinds of the backend's refusals (a prefix of its message) -> why the rule cannot be compared.
NOT_CONVERTED: dict[str, str] = {
    "Value-only string expressions": "keyword (full-text) searches: the backend has no full-text column",
    "ORing CIDR": "CIDR values: SQLite has no network type",
    "CIDR values": "CIDR values: SQLite has no network type",
    "Field references": "|fieldref: not supported by the backend",
    "Field reference": "|fieldref: not supported by the backend",
    "Correlation": "correlation rules: compared by test_sigma_correlate.py instead",
    "Comparison operator": "|lt/|gt on values the backend refuses",
    "Regular expression flag": "|re flags (|i, |m, |s): the backend has no flag syntax",
    "Case-sensitive": "|cased on wildcards: the backend has no case-sensitive LIKE with wildcards",
    "Timestamp part": "time-part modifiers (|hour, ...): not supported by the backend",
    "null value": "null in a value list: not supported by the backend",
    "Expansion": "|expand placeholders: not supported by the backend",
}

# Rule id -> why SQL and Sigma's semantics differ for it on this corpus (left out of the comparison).
DIFFERENT_SEMANTICS: dict[str, str] = {}

pytestmark = pytest.mark.skipif(not REGRESSION.is_dir() or not RULES.is_dir(),
                                reason="../shared/data (SigmaHQ rules and regression data) is not present")


def corpus() -> list[Event]:
    windows = WindowsSource(tenant="differential", sensor="test")
    events = [event for path in sorted(REGRESSION.rglob("*.json"))
              for batch in read_windows_file(path, windows) for event in batch.events]
    for path, text_format in LOGHUB:
        source = FileSource(tenant="differential", sensor="test", format=text_format)
        events.extend(event for batch in read_log_file(path, source) for event in batch.events)
    return events


def _field_names(rule: SigmaRule) -> set[str]:
    names: set[str] = set()
    stack: list[Any] = list(rule.detection.detections.values())
    while stack:
        node = stack.pop()
        if isinstance(node, SigmaDetection):
            stack.extend(node.detection_items)
        elif isinstance(node, SigmaDetectionItem):
            names.update([node.field] if node.field else [])
            names.update(value.field for value in node.value if isinstance(value, SigmaFieldReference))
    return names


def _sql_value(value: Any) -> Any:
    if value is MISSING or value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return orjson.dumps(value).decode()  # lists and objects: JSON text, as Zircolite flattens them


def _regexp(pattern: str, value: Any) -> bool:
    return value is not None and re.search(pattern, str(value)) is not None


class _Tables:
    """One SQLite table per field map, like Zircolite's: a row per event of the corpus that some
    rule with that map runs on, a column per Sigma field name those rules use."""

    def __init__(self, events: list[Event]) -> None:
        self._flats = [(event, flat_view(event.doc)) for event in events]
        self._dbs: dict[str, sqlite3.Connection] = {}

    def in_scope(self, compiled: CompiledRule) -> list[Event]:
        return [event for event, flat in self._flats if scope_matches(compiled.scope, flat)]

    def build(self, fields: FieldMap, names: set[str], events: dict[str, Event]) -> None:
        db = self._dbs[fields.name] = sqlite3.connect(":memory:")
        db.create_function("regexp", 2, _regexp, deterministic=True)
        columns = ["_id", *sorted(names)]
        db.execute(f"CREATE TABLE logs ({', '.join(_quoted(c) + ' TEXT COLLATE NOCASE' for c in columns)})")
        readers = [fields.reader(name) for name in columns[1:]]
        rows = []
        for event in events.values():
            flat = flat_view(event.doc)
            rows.append([event.id, *(_sql_value(read(flat)) for read in readers)])
        db.executemany(f"INSERT INTO logs VALUES ({', '.join('?' for _ in columns)})", rows)

    def select(self, fields: FieldMap, sql: str) -> set[str]:
        """The ids the backend's `sql` selects from the table of `fields`."""
        query = sql.replace("SELECT * FROM logs", "SELECT _id FROM logs", 1)
        return {row[0] for row in self._dbs[fields.name].execute(query)}


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _reason_kind(error: Exception) -> str | None:
    text = str(error)
    return next((kind for kind in NOT_CONVERTED if kind.lower() in text.lower()), None)


@dataclass
class _Form:
    """One compiled form of a converted rule, with what it needs for the comparison."""

    rule_id: str
    compiled: CompiledRule
    fields: FieldMap
    sql: str
    events: list[Event]


def _comparisons(events: list[Event]) -> Iterator[tuple[str, str, set[str], set[str]]]:
    """(rule id, "compared", engine's ids, SQL's ids) per compiled form with events of its log
    source in the corpus; (rule id, reason, ...) for a rule left out."""
    ruleset, _errors = load_rules([RULES])
    backend: Any = sqliteBackend()  # type: ignore[no-untyped-call]  # the package has no type hints
    tables = _Tables(events)
    by_source: dict[str, list[CompiledRule]] = {}
    for compiled in ruleset.rules:
        by_source.setdefault(compiled.info.source, []).append(compiled)
    forms: list[_Form] = []
    columns: dict[str, tuple[FieldMap, set[str], dict[str, Event]]] = {}
    for source, compiled_forms in by_source.items():
        scoped = [(compiled, tables.in_scope(compiled)) for compiled in compiled_forms]
        rule_id = compiled_forms[0].info.rule_id
        if not any(in_scope for _compiled, in_scope in scoped):
            yield rule_id, "no event of its log source in the corpus", set(), set()
            continue
        rule = SigmaRule.from_yaml(Path(source).read_text(encoding="utf-8"))
        try:
            (sql,) = backend.convert_rule(rule)
        except Exception as e:  # the backend's refusals are exceptions of several classes
            yield rule_id, f"not converted: {type(e).__name__}: {e}", set(), set()
            continue
        logsource = rule.logsource
        sources = sources_for(logsource.category, logsource.product, logsource.service)
        for (compiled, in_scope), log_source in zip(scoped, sources, strict=True):
            forms.append(_Form(rule_id, compiled, log_source.fields, str(sql), in_scope))
            table = columns.setdefault(log_source.fields.name, (log_source.fields, set(), {}))
            table[1].update(_field_names(rule))
            table[2].update((event.id, event) for event in in_scope)
    for fields, names, table_events in columns.values():
        tables.build(fields, names, table_events)
    for form in forms:
        ours = {event.id for event in form.events if form.compiled.matches(event)}
        theirs = tables.select(form.fields, form.sql) & {event.id for event in form.events}
        yield form.rule_id, "compared", ours, theirs


def test_the_engine_selects_what_the_sqlite_backend_selects() -> None:
    events = corpus()
    assert len(events) > 2000
    left_out: dict[str, str] = {}
    differing: dict[str, tuple[set[str], set[str]]] = {}
    compared: set[str] = set()
    unexercised: set[str] = set()
    matched_pairs = 0
    for rule_id, how, ours, theirs in _comparisons(events):
        if how == "no event of its log source in the corpus":
            unexercised.add(rule_id)
            continue
        if how != "compared":
            left_out[rule_id] = how
            continue
        compared.add(rule_id)
        matched_pairs += len(ours)
        if ours != theirs:
            previous = differing.get(rule_id, (set(), set()))
            differing[rule_id] = (previous[0] | (ours - theirs), previous[1] | (theirs - ours))
    unexplained_refusals = {rule_id: reason for rule_id, reason in left_out.items()
                            if _reason_kind(Exception(reason)) is None}
    for rule_id, reason in sorted(left_out.items()):
        print(f"left out {rule_id}: {reason[:160]}")  # noqa: T201  (the listing `-s` shows)
    for rule_id, reason in DIFFERENT_SEMANTICS.items():
        print(f"left out {rule_id}: {reason}")  # noqa: T201
    kinds = Counter(_reason_kind(Exception(reason)) for reason in left_out.values())
    print(f"compared {len(compared)} rules, {matched_pairs} (rule, event) matches; "  # noqa: T201
          f"{len(unexercised)} rules have no event of their log source here; left out: {dict(kinds)}")
    assert not unexplained_refusals
    assert {rule_id: sorted(sides[0])[:3] + sorted(sides[1])[:3] for rule_id, sides in differing.items()
            if rule_id not in DIFFERENT_SEMANTICS} == {}
    assert set(DIFFERENT_SEMANTICS) <= set(differing), "a rule listed as different now agrees"
    assert len(compared) > 1500
    assert matched_pairs >= 140
