"""The engine's fast paths change no result: the flat view reads what `records.lookup` reads, the
log-source index picks the rules the scopes pick, and grouped value tests accept what one test
per value accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sigma.rule import SigmaRule

from detections.sigma import SigmaEngine, load_rules
from detections.sigma.compile import CompiledRule, compile_detection
from detections.sigma.dispatch import RuleIndex, scope_matches
from detections.sigma.fields import flat_view
from detections.sigma.logsources import EventScope
from pipeline.records import MISSING, lookup
from sensors.windows import WindowsSource, read_windows_file
from tests.factories import make_event

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
WINDOWS_RULE_DIRS = [DATA / "sigma" / name
                     for name in ("rules/windows", "rules-emerging-threats", "rules-threat-hunting")]
REGRESSION = DATA / "sigma-regression"

# --- the flat view --------------------------------------------------------------------------------

_keys = st.sampled_from(["a", "b", "a.b", "b.c", "c", "a.b.c", ""])
_docs = st.recursive(st.one_of(st.none(), st.integers(), st.text(max_size=3)),
                     lambda inner: st.dictionaries(_keys, inner, max_size=4), max_leaves=12)


def _names(doc: Any, prefix: str = "") -> set[str]:
    names: set[str] = set()
    if isinstance(doc, dict):
        for key, value in doc.items():
            names.add(prefix + key)
            names |= _names(value, prefix + key + ".")
    return names


@given(st.dictionaries(_keys, _docs, max_size=4))
@example({"a": {"b": {"c": 1}}, "a.b": {"c": 2}})  # one name, two ways: lookup decides
@example({"a.b": 1, "a": {"b": 2}})
def test_the_flat_view_reads_what_lookup_reads(doc: dict[str, Any]) -> None:
    flat = flat_view(doc)
    for name in _names(doc) | {"a.b.c", "a.c", "x", "a..b"}:
        assert flat.get(name, MISSING) == lookup(doc, name), name
        assert (name in flat) == (lookup(doc, name) is not MISSING)


# --- the log-source index -------------------------------------------------------------------------

def _rule(n: int, scope: EventScope) -> CompiledRule:
    rule = SigmaRule.from_yaml(f"title: r{n}\nlogsource: {{product: test}}\ndetection:\n"
                               "  sel: {message|contains: x}\n  condition: sel")
    from detections.sigma.compile import RuleInfo, compile_test

    return CompiledRule(RuleInfo.of(rule, f"r{n}.yml"), scope, compile_test(rule))


SCOPES = [EventScope("winlog.channel", "Security", codes=frozenset({"4688"})),
          EventScope("winlog.channel", "Security"),
          EventScope("winlog.channel", "Security", codes=frozenset({"4624", "4688"})),
          EventScope("event.dataset", "system.auth"),
          EventScope("event.dataset", "system.", is_prefix=True),
          EventScope("winlog.channel", "System", codes=frozenset({"7045"}))]


@pytest.mark.parametrize("fields", [
    {"winlog__channel": "Security", "event__code": "4688"},
    {"winlog__channel": "Security", "event__code": "4624"},
    {"winlog__channel": "Security", "event__code": "1"},
    {"winlog__channel": "Security", "event__code": 4688},
    {"winlog__channel": "Security", "event__code": ["4688"]},
    {"winlog__channel": "Security"},
    {"winlog__channel": "System", "event__code": "7045"},
    {"winlog__channel": "security", "event__code": "4688"},
    {"event__dataset": "system.auth", "winlog__channel": "Security", "event__code": "4688"},
    {"event__dataset": "system.syslog"},
    {"event__dataset": ["system.auth"]},
])
def test_the_index_picks_the_rules_the_scopes_pick_in_load_order(fields: dict[str, Any]) -> None:
    rules = [_rule(n, scope) for n, scope in enumerate(SCOPES * 2)]
    event = make_event(message="x", **fields)
    flat = flat_view(event.doc)
    expected = [rule for rule in rules if scope_matches(rule.scope, flat)]
    assert list(RuleIndex(rules).candidates(flat)) == expected
    assert list(RuleIndex(rules, use_prefilter=False).candidates(flat)) == expected


@pytest.mark.skipif(not REGRESSION.is_dir(), reason="../shared/data (SigmaHQ rules and regression data) is not present")
def test_the_engine_matches_what_every_rule_on_every_event_matches() -> None:
    ruleset, _errors = load_rules(WINDOWS_RULE_DIRS)
    source = WindowsSource(tenant="regression", sensor="test")
    events = [event for path in sorted(REGRESSION.rglob("*.json"))
              for batch in read_windows_file(path, source) for event in batch.events]
    engine = SigmaEngine(ruleset)
    for event in events:
        brute = [rule for rule in ruleset.rules if rule.scope.matches(event) and rule.matches(event)]
        assert engine.matching_rules(event) == brute, event.id


# --- grouped value tests --------------------------------------------------------------------------

NEEDLES = ["mimikatz", "sekurlsa", "😈", "ＡＢＣ", "\\temp\\", "-enc", "ı", "İstanbul"]


@settings(deadline=None)  # each example compiles a dozen rules with pySigma: slow on a loaded machine
@given(st.text(alphabet=st.sampled_from(list("aAbİıı😈ＡＢＣｂ-\\tempncmikaszul ")), max_size=24))
@example("xx MIMIKATZ yy")
@example("İSTANBUL")
@example("ａｂｃ")
def test_many_values_on_one_field_accept_what_each_value_accepts(text: str) -> None:
    def one(modifier: str, value: str) -> bool:
        rule = SigmaRule.from_dict({"title": "t", "logsource": {"product": "linux"},
                                    "detection": {"sel": {f"process.name{modifier}": value}, "condition": "sel"}})
        return compile_detection(rule)(make_event(process__name=text))

    for modifier in ("|contains", "|startswith", "|endswith", "", "|contains|cased"):
        rule = SigmaRule.from_dict({"title": "t", "logsource": {"product": "linux"},
                                    "detection": {"sel": {f"process.name{modifier}": NEEDLES}, "condition": "sel"}})
        grouped = compile_detection(rule)(make_event(process__name=text))
        assert grouped == any(one(modifier, needle) for needle in NEEDLES), modifier


# --- RE2 on bytes ---------------------------------------------------------------------------------

@given(st.text(max_size=30))
@example("a\ud800b")  # a lone surrogate: UTF-8 cannot hold it, the search must not raise
@example("xx\u00e9MIMI")
def test_raw_re2_calls_agree_with_the_public_api(text: str) -> None:
    from detections.sigma.rematch import literal_set, searcher

    pattern = "(?i)mimi|\u00e9m|b$"
    search = searcher(pattern)
    literals = ["ab", "\u00e9", "mimi", "b"]
    found = set(literal_set(literals)(text))
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        assert isinstance(search(text), bool)  # the public API raises on such text; ours answers
        return
    import re2

    assert search(text) == (re2.search(pattern, text) is not None)
    assert found == {i for i, literal in enumerate(literals) if literal in text}
