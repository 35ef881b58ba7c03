"""Sigma detections compiled to predicates: the semantics of each value type and modifier.

Also the engine on single events (prefilter, entity, alert ids), which has no test module of its own yet.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st
from sigma.rule import SigmaRule
from sigma.types import SpecialChars

from detections.sigma.compile import compile_detection
from detections.sigma.errors import RuleError
from detections.sigma.load import load_rules
from detections.sigma.match import SigmaEngine
from pipeline.records import DetectionKind, Event, Severity

T0 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def make_event(n: int = 0, **doc: Any) -> Event:
    """An event with the mandatory fields plus `doc` (nested ECS, given as a dict)."""
    full = {"@timestamp": T0, "organization": {"id": "hanoi"}, **doc}
    return Event.create(full, id_parts=["compile-test", n])


def matcher(detection: str) -> Callable[..., bool]:
    """A predicate from an inline `detection:` block; call it with an event's fields."""
    rule = SigmaRule.from_dict({
        "title": "test", "logsource": {"product": "linux"}, "detection": yaml.safe_load(detection)})
    predicate = compile_detection(rule)
    return lambda **doc: predicate(make_event(**doc))


# --- strings ---------------------------------------------------------------------------------------

def test_plain_strings_match_whole_values_case_insensitively() -> None:
    match = matcher("sel: {process.name: SSHD}\ncondition: sel")
    assert match(process={"name": "sshd"})
    assert match(process={"name": "SsHd"})
    assert not match(process={"name": "sshd2"})
    assert not match(process={"name": None})
    assert not match(user={"name": "sshd"})


def test_cased_strings_match_case_sensitively() -> None:
    match = matcher("sel: {user.name|cased: Admin}\ncondition: sel")
    assert match(user={"name": "Admin"})
    assert not match(user={"name": "admin"})


@pytest.mark.parametrize("key, value, hits, misses", [
    ("f|contains", "EvIl", ["an evil thing", "EVIL"], ["evi l"]),
    ("f|startswith", "/tmp/", ["/TMP/x", "/tmp/"], ["x/tmp/"]),
    ("f|endswith", ".SH", ["run.sh", ".sh"], ["run.sh.bak"]),
    ("f", "a*c", ["ac", "abc", "a\nb\nc"], ["ab", "xac"]),
    ("f", "a?c", ["abc", "AXC"], ["ac", "abbc"]),
    ("f", "*", ["", "anything"], []),
    ("f", "?", ["x"], ["", "xy"]),
    ("f", "1.2.3.*", ["1.2.3.4"], ["1x2.3.4"]),  # a dot is literal, not a regex dot
    ("f", "(a+)+$", ["(A+)+$"], ["aaaa"]),  # regex syntax is literal text
    ("f", "*a*b*c*d*", ["xaxbxcxdx"], ["xaxbxdxcx"]),
    ("f|contains|cased", "Evil", ["an Evil thing"], ["an evil thing"]),
])
def test_wildcards_and_substring_modifiers(key: str, value: str, hits: list[str], misses: list[str]) -> None:
    match = matcher(yaml.safe_dump({"sel": {key: value}, "condition": "sel"}))
    for text in hits:
        assert match(f=text), text
    for text in misses:
        assert not match(f=text), text


@pytest.mark.parametrize("value, hits, misses", [
    (r"a\*c", ["a*c", "A*C"], ["abc"]),
    (r"a\?c", ["a?c"], ["abc"]),
    (r"C:\Windows\cmd.exe", [r"c:\windows\CMD.EXE"], [r"C:Windowscmd.exe"]),  # \W, \c stay backslashes
    (r"C:\Windows\*", [r"C:\Windows*"], [r"C:\Windows\cmd.exe"]),  # \* is a literal star
    (r"a\\*", ["a\\", "a\\bc"], ["abc"]),  # an escaped backslash, then a wildcard
])
def test_escapes(value: str, hits: list[str], misses: list[str]) -> None:
    match = matcher(yaml.safe_dump({"sel": {"f": value}, "condition": "sel"}))
    for text in hits:
        assert match(f=text), text
    for text in misses:
        assert not match(f=text), text


def escape_sigma(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")


@given(st.text(max_size=40))
@example("a\\*b?")
@example("\\")
def test_escaped_text_matches_exactly_itself(text: str) -> None:
    match = matcher(yaml.safe_dump({"sel": {"f|cased": escape_sigma(text)}, "condition": "sel"}))
    assert match(f=text)
    assert not match(f=text + "x")


ALPHABET = "ab.*+?()[]^$|\\{} \n"


@st.composite
def wildcard_parts(draw: st.DrawFn) -> list[str | SpecialChars]:
    pieces = draw(st.lists(st.one_of(
        st.text(alphabet=ALPHABET, min_size=1, max_size=4),
        st.sampled_from([SpecialChars.WILDCARD_MULTI, SpecialChars.WILDCARD_SINGLE])), max_size=6))
    merged: list[str | SpecialChars] = []
    for piece in pieces:
        if isinstance(piece, str) and merged and isinstance(merged[-1], str):
            merged[-1] += piece
        else:
            merged.append(piece)
    return merged


def reference_match(parts: list[str | SpecialChars], text: str) -> bool:
    """Python's `re` on the same parts: the slow, obviously right reading of Sigma wildcards."""
    regex = "".join(".*" if p is SpecialChars.WILDCARD_MULTI else "." if p is SpecialChars.WILDCARD_SINGLE
                    else re.escape(p) for p in parts)
    return re.fullmatch(regex, text, re.DOTALL | re.IGNORECASE) is not None


def as_sigma(parts: list[str | SpecialChars]) -> str:
    return "".join("*" if p is SpecialChars.WILDCARD_MULTI else "?" if p is SpecialChars.WILDCARD_SINGLE
                   else escape_sigma(p) for p in parts)


@given(wildcard_parts(), st.text(alphabet=ALPHABET + "AB", max_size=12))
def test_fast_paths_and_re2_agree_with_a_reference(parts: list[str | SpecialChars], text: str) -> None:
    match = matcher(yaml.safe_dump({"sel": {"f": as_sigma(parts)}, "condition": "sel"}))
    assert match(f=text) == reference_match(parts, text)


def test_non_string_event_values_compare_as_text() -> None:
    match = matcher("sel: {f: '4624'}\ncondition: sel")
    assert match(f=4624)
    assert matcher("sel: {f: 'true'}\ncondition: sel")(f=True)
    assert not match(f={"nested": "4624"})


# --- lists -----------------------------------------------------------------------------------------

def test_value_lists_are_or_and_all_makes_them_and() -> None:
    any_of = matcher("sel: {f: [one, two]}\ncondition: sel")
    all_of = matcher("sel: {f|contains|all: [one, two]}\ncondition: sel")
    assert any_of(f="two") and not any_of(f="three")
    assert all_of(f="one and two") and not all_of(f="one only")


def test_list_field_values_match_when_any_element_matches() -> None:
    match = matcher("sel: {event.category: authentication}\ncondition: sel")
    assert match(event={"category": ["session", "authentication"]})
    assert not match(event={"category": ["session"]})
    assert not match(event={"category": []})


def test_nested_documents_and_dotted_keys_are_both_read() -> None:
    match = matcher("sel: {winlog.event_data.Image|endswith: cmd.exe}\ncondition: sel")
    assert match(winlog={"event_data": {"Image": "C:\\cmd.exe"}})
    assert match(**{"winlog.event_data": {"Image": "C:\\cmd.exe"}})


# --- regular expressions ---------------------------------------------------------------------------

@pytest.mark.parametrize("key, pattern, hits, misses", [
    ("f|re", r"ab+c", ["xxabbbcxx"], ["ABC", "ac"]),  # searched, and case-sensitive by default
    ("f|re", r"^ab$", ["ab"], ["xab", "ab\nx"]),
    ("f|re|i", r"^ab$", ["AB"], ["xAB"]),
    ("f|re|m", r"^b$", ["a\nb\nc"], ["abc"]),
    ("f|re|s", r"a.c", ["a\nc"], []),
    ("f|re", r"a.c", ["abc"], ["a\nc"]),
    ("f|re", r"\d{3}-\d{4}", ["call 555-1234 now"], ["555-123"]),
])
def test_regular_expressions(key: str, pattern: str, hits: list[str], misses: list[str]) -> None:
    match = matcher(yaml.safe_dump({"sel": {key: pattern}, "condition": "sel"}))
    for text in hits:
        assert match(f=text), text
    for text in misses:
        assert not match(f=text), text


def test_catastrophic_patterns_run_in_linear_time() -> None:
    match = matcher(yaml.safe_dump({"sel": {"f|re": "^(a+)+$"}, "condition": "sel"}))
    assert not match(f="a" * 50_000 + "!")  # exponential with backtracking; instant with RE2


@pytest.mark.parametrize("pattern", [r"(?=a)b", r"(a)\1", r"(?<!a)b"])
def test_regex_features_re2_lacks_are_refused_at_compile_time(pattern: str) -> None:
    with pytest.raises(RuleError, match="not supported by RE2"):
        matcher(yaml.safe_dump({"sel": {"f|re": pattern}, "condition": "sel"}))


# --- numbers, booleans, time parts -----------------------------------------------------------------

def test_numbers() -> None:
    match = matcher("sel: {source.port: 22}\ncondition: sel")
    assert match(source={"port": 22}) and match(source={"port": "22"}) and match(source={"port": 22.0})
    assert not match(source={"port": 2222}) and not match(source={"port": "ssh"})
    assert not match(source={"port": True})


@pytest.mark.parametrize("modifier, hits, misses", [
    ("lt", [9, "9.5", -1], [10, 11]),
    ("lte", [10, "10"], [11]),
    ("gt", [11], [10, "x", None]),
    ("gte", [10, 10.0], [9.99]),
])
def test_numeric_comparisons(modifier: str, hits: list[Any], misses: list[Any]) -> None:
    match = matcher(f"sel: {{f|{modifier}: 10}}\ncondition: sel")
    for value in hits:
        assert match(f=value), value
    for value in misses:
        assert not match(f=value), value


def test_booleans() -> None:
    match = matcher("sel: {f: true}\ncondition: sel")
    assert match(f=True) and match(f="TRUE")
    assert not match(f=False) and not match(f=1)


def test_time_parts_read_iso_timestamps() -> None:
    match = matcher("sel: {'@timestamp|hour': 7, '@timestamp|minute|lt': 30}\ncondition: sel")
    assert match()  # T0 is 07:00Z
    assert not matcher("sel: {'@timestamp|hour': 8}\ncondition: sel")()


# --- addresses, null, exists, field references -----------------------------------------------------

@pytest.mark.parametrize("network, hits, misses", [
    ("10.0.0.0/8", ["10.1.2.3"], ["11.0.0.1", "not-an-ip", "10.1.2.3.4", ""]),
    ("2001:db8::/32", ["2001:db8::1"], ["2001:db9::1", "10.0.0.1"]),
])
def test_cidr(network: str, hits: list[str], misses: list[str]) -> None:
    match = matcher(f"sel: {{source.ip|cidr: '{network}'}}\ncondition: sel")
    for ip in hits:
        assert match(source={"ip": ip}), ip
    for ip in misses:
        assert not match(source={"ip": ip}), ip
    assert match(source={"ip": ["192.0.2.1", hits[0]]})


def test_null_is_a_missing_or_null_field() -> None:
    match = matcher("sel: {user.name: null}\ncondition: sel")
    assert match() and match(user={"name": None})
    assert not match(user={"name": "root"}) and not match(user={"name": ""})


def test_exists_tells_present_from_missing() -> None:
    present = matcher("sel: {user.name|exists: true}\ncondition: sel")
    absent = matcher("sel: {user.name|exists: false}\ncondition: sel")
    assert present(user={"name": None}) and present(user={"name": "x"}) and not present()
    assert absent() and not absent(user={"name": None})


def test_field_references() -> None:
    same = matcher("sel: {user.name|fieldref: user.target.name}\ncondition: sel")
    assert same(user={"name": "Bob", "target": {"name": "bob"}})
    assert not same(user={"name": "bob", "target": {"name": "alice"}})
    assert not same(user={"name": "bob"})
    prefix = matcher("sel: {url.path|fieldref|startswith: url.prefix}\ncondition: sel")
    assert prefix(url={"path": "/admin/x", "prefix": "/admin"})


def test_neq_negates_the_item() -> None:
    match = matcher("sel: {event.outcome|neq: success}\ncondition: sel")
    assert match(event={"outcome": "failure"})
    assert not match(event={"outcome": "success"})


def test_base64offset_and_windash_expansions_are_alternatives() -> None:
    b64 = matcher("sel: {f|base64offset|contains: 'http://'}\ncondition: sel")
    assert b64(f="powershell -enc aHR0cDovL2V2aWwuZXhhbXBsZQ==")  # base64("http://evil.example")
    dash = matcher("sel: {f|windash|contains: ' -enc '}\ncondition: sel")
    assert dash(f="x /enc y") and dash(f="x -enc y") and not dash(f="x enc y")


# --- keywords and conditions -----------------------------------------------------------------------

def test_keywords_search_message_and_original_as_substrings() -> None:
    match = matcher("keywords: ['Corrupted MAC on input', 'bad*string']\ncondition: keywords")
    assert match(message="sshd[1]: corrupted mac on input.")
    assert match(event={"original": "fatal: buffer_get_string: BAD STRING"})
    assert not match(message="nothing to see")
    assert not match(other="Corrupted MAC on input")


@pytest.mark.parametrize("condition, doc, expected", [
    ("a and not b", {"f": "x"}, True),
    ("a and not b", {"f": "x", "g": "y"}, False),
    ("a or b", {"g": "y"}, True),
    ("1 of sel_*", {"h": "z"}, True),
    ("all of sel_*", {"h": "z"}, False),
    ("all of them", {"f": "x", "g": "y", "h": "z", "i": "w"}, True),
    ("not (a or b)", {}, True),
])
def test_conditions(condition: str, doc: dict[str, str], expected: bool) -> None:
    detections = {"a": {"f": "x"}, "b": {"g": "y"}, "sel_1": {"h": "z"}, "sel_2": {"i": "w"}}
    match = matcher(yaml.safe_dump({**detections, "condition": condition}))
    assert match(**doc) is expected


def test_several_conditions_are_alternatives() -> None:
    match = matcher("a: {f: x}\nb: {g: y}\ncondition: [a, b]")
    assert match(f="x") and match(g="y") and not match()


@pytest.mark.parametrize("detection, reason", [
    ("sel: {f|expand: '%admins%'}\ncondition: sel", "placeholder %admins%"),
    ("sel: {f: x}\ncondition: sel and nope", "not defined"),
    ("sel: {f: x}\ncondition: sel and", "Expected"),
])
def test_what_cannot_be_honoured_is_refused(detection: str, reason: str) -> None:
    with pytest.raises(RuleError, match=reason):
        matcher(detection)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from("fgh"), inner, max_size=3),
    max_leaves=12)


@given(st.dictionaries(st.sampled_from(["f", "g", "h", "message"]), JSON, max_size=4))
def test_predicates_never_raise_whatever_the_document_holds(doc: dict[str, Any]) -> None:
    match = matcher("""
a: {f|contains: x, g|re: '^a.*', h|cidr: 10.0.0.0/8}
b: {f|gte: 3, g: null, h|exists: true}
c: {f|fieldref: g, g|hour: 7, h: [1, 'two', true]}
keywords: [evil]
condition: a or b or c or keywords
""")
    assert match(**doc) in (True, False)


# --- the engine on single events -------------------------------------------------------------------

RULE = """
title: Root login
id: 3f0b1c62-6bd1-4bd4-9a64-1d4b2c1f6a01
logsource: {product: linux, service: auth}
detection:
    sel: {user.name: root, event.outcome: success}
    condition: sel
level: critical
tags: [attack.t1078]
"""


def engine_for(tmp_path: Path, text: str) -> SigmaEngine:
    (tmp_path / "rule.yml").write_text(text)
    ruleset, errors = load_rules([tmp_path])
    assert errors == []
    return SigmaEngine(ruleset)


def auth_event(n: int, **doc: Any) -> Event:
    return make_event(n, event={"dataset": "system.auth", "outcome": "success"}, user={"name": "root"}, **doc)


def test_single_event_alert(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, RULE)
    event = auth_event(1, source={"address": "203.0.113.77"})
    [alert] = engine.process([event])
    assert (alert.kind, alert.rule_id, alert.rule_title) == (
        DetectionKind.SIGMA, "3f0b1c62-6bd1-4bd4-9a64-1d4b2c1f6a01", "Root login")
    assert (alert.severity, alert.tags) == (Severity.CRITICAL, ("attack.t1078",))
    assert alert.event_ids == (event.id,)
    assert (alert.tenant, alert.timestamp, alert.entity) == ("hanoi", T0, {"source.address": "203.0.113.77"})
    assert engine_for(tmp_path, RULE).process([event]) == [alert]  # same event, same alert id


@pytest.mark.parametrize("doc, entity", [
    ({"host": {"name": "web1"}, "source": {"address": "203.0.113.77"}}, {"host.name": "web1"}),
    ({"source": {"address": "203.0.113.77"}}, {"source.address": "203.0.113.77"}),
    ({}, {"user.name": "root"}),
])
def test_entity_is_the_first_of_host_source_user(tmp_path: Path, doc: dict[str, Any],
                                                 entity: dict[str, str]) -> None:
    [alert] = engine_for(tmp_path, RULE).process([auth_event(1, **doc)])
    assert alert.entity == entity


def test_rules_only_see_events_of_their_log_source(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, RULE)
    other = make_event(2, event={"dataset": "apache.access", "outcome": "success"}, user={"name": "root"})
    assert engine.process([other]) == []
    assert engine.matching_rules(other) == []
