"""The literal prefilter: which literal a rule's every match must contain, and that skipping on it
changes no alert (the same (rule, event) pairs as evaluating every rule, on SigmaHQ's regression
events with every Windows rule loaded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sigma.rule import SigmaRule

from detections.sigma import RuleSet, SigmaEngine, load_rules
from detections.sigma.fields import ECS_FIELDS, flat_view, windows_fields
from detections.sigma.prefilter import Requirement, literal_matcher, required_literals
from sensors.windows import WindowsSource, read_windows_file
from tests.factories import make_event

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
WINDOWS_RULE_DIRS = [DATA / "sigma" / name
                     for name in ("rules/windows", "rules-emerging-threats", "rules-threat-hunting")]
REGRESSION = DATA / "sigma-regression"


def literals(detection: str) -> set[tuple[str, str]] | None:
    """The (field, literal) atoms required by a rule with this detection (YAML, indented 2)."""
    rule = SigmaRule.from_yaml(f"title: t\nlogsource: {{product: test}}\ndetection:\n{detection}")
    required: Requirement | None = required_literals(rule, ECS_FIELDS)
    return None if required is None else {(atom.field, atom.literal) for atom in required}


# --- extraction -----------------------------------------------------------------------------------

def test_and_of_shapes_keeps_the_longest_literal_case_folded() -> None:
    assert literals("""  sel:
    Image|endswith: '\\WhoAmI.EXE'
    CommandLine|contains: 'ALL'
    ParentImage|startswith: 'C:\\Win'
    User: 'SYSTEM'
  condition: sel""") == {("Image", "\\whoami.exe")}


@pytest.mark.parametrize(("value", "literal"), [
    ("'Mimikatz'", "mimikatz"),  # equals
    ("'*sekurlsa::*'", "sekurlsa::"),  # contains
    ("'*a*logonpasswords*b'", "logonpasswords"),  # inner wildcards: the longest run
    ("'Ab?cdef*'", "cdef"),  # ? splits runs too
])
def test_one_string_value_gives_its_longest_plain_run(value: str, literal: str) -> None:
    assert literals(f"  sel: {{CommandLine: {value}}}\n  condition: sel") == {("CommandLine", literal)}


def test_or_branches_give_every_literal_and_a_value_list_too() -> None:
    assert literals("""  a: {Image|endswith: ['\\x.exe', '\\yy.exe']}
  b: {CommandLine|contains: 'evil'}
  condition: a or b""") == {("Image", "\\x.exe"), ("Image", "\\yy.exe"), ("CommandLine", "evil")}


@pytest.mark.parametrize("detection", [
    "  a: {Image|endswith: '\\x.exe'}\n  b: {EventID: 1}\n  condition: a or b",  # a number: no literal
    "  a: {Image|endswith: '\\x.exe'}\n  b: {User: '*'}\n  condition: 1 of them",  # '*' has none
    "  sel: {CommandLine|re: 'mimi.*katz'}\n  condition: sel",  # |re gives none
    "  sel: {CommandLine: null}\n  condition: sel",
    "  sel: {Image|endswith: '\\x.exe'}\n  condition: not sel",  # a negation requires nothing
    "  sel: ['evil', '*']\n  condition: sel",  # a keyword '*' has none
    "  sel: {CommandLine|contains: '\u00e9?\u00e9'}\n  condition: sel",  # non-ASCII in a wildcard shape
])
def test_no_literal_when_some_match_need_not_contain_one(detection: str) -> None:
    assert literals(detection) is None


def test_negations_are_ignored_and_the_rest_still_counts() -> None:
    assert literals("""  sel: {Image|endswith: '\\rundll32.exe'}
  filter: {CommandLine|contains: 'shell32.dll'}
  condition: sel and not filter""") == {("Image", "\\rundll32.exe")}


def test_contains_all_needs_one_literal_and_windash_needs_any_variant() -> None:
    assert literals("  sel: {CommandLine|contains|all: ['ab', 'abcd']}\n  condition: sel") == {
        ("CommandLine", "abcd")}
    found = literals("  sel: {CommandLine|windash|contains: ' -enc '}\n  condition: sel")
    # plain shapes keep their non-ASCII text: the en dash, em dash and horizontal bar variants
    assert found == {("CommandLine", f" {dash}enc ") for dash in "-/\u2013\u2014\u2015"}


def test_non_ascii_splits_runs_in_wildcard_shapes_and_stays_whole_in_plain_ones() -> None:
    assert literals("  sel: {CommandLine|contains: 'Caf\u00e9*Latte'}\n  condition: sel") == {
        ("CommandLine", "latte")}
    assert literals("  sel: {CommandLine|contains: 'Caf\u00e9Latte'}\n  condition: sel") == {
        ("CommandLine", "caf\u00e9latte")}
    assert literals("  sel: {CommandLine|contains: 'Bu\u017fS'}\n  condition: sel") == {
        ("CommandLine", "buss")}  # long s folded as the event's text is
    # a capital sigma lower-cases by its context: only the ASCII run is kept
    assert literals("  sel: {CommandLine|contains: '\u03a3\u03a3x'}\n  condition: sel") == {("CommandLine", "x")}


def test_keywords_need_their_literal_in_the_message_or_the_original() -> None:
    assert literals("  sel: ['Evil', 'bad*x']\n  condition: sel") == {
        ("message", "evil"), ("event.original", "evil"), ("message", "bad"), ("event.original", "bad")}


def test_the_literal_matcher_finds_every_literal_in_one_pass() -> None:
    match = literal_matcher(["whoami", ".exe", "a+b", "\\temp\\", "zzz"])
    assert sorted(match("c:\\windows\\temp\\whoami.exe a+b")) == [0, 1, 2, 3]
    assert list(match("nothing here")) == []


# --- the engine with and without it ---------------------------------------------------------------

def _rule_file(tmp_path: Path, detection: str) -> RuleSet:
    (tmp_path / "r.yml").write_text(
        f"title: t\nid: 8d1a0f5e-0000-4000-8000-000000000001\nlogsource: {{product: linux}}\n"
        f"detection:\n{detection}", encoding="utf-8")
    ruleset, errors = load_rules([tmp_path])
    assert not errors
    return ruleset


def _fires(ruleset: RuleSet, **fields: Any) -> tuple[bool, bool]:
    event = make_event(event={"dataset": "system.auth"}, **fields)
    return tuple(bool(SigmaEngine(ruleset, use_prefilter=on).matching_rules(event))  # type: ignore[return-value]
                 for on in (True, False))


@pytest.mark.parametrize(("text", "fires"), [
    ("x MIMI y SekurLSA z", True),
    ("x mimi y \u017fekurlsa z", True),  # RE2 folds the long s to s; so must the prefilter
    ("x mimi y", False),
])
def test_wildcard_shapes_fire_alike_with_and_without_the_prefilter(tmp_path: Path, text: str, fires: bool) -> None:
    ruleset = _rule_file(tmp_path, "  sel: {process.command_line: '*mimi*sekurlsa*'}\n  condition: sel")
    assert _fires(ruleset, process={"command_line": text}) == (fires, fires)


def test_list_values_and_numbers_are_read_as_the_predicate_reads_them(tmp_path: Path) -> None:
    ruleset = _rule_file(tmp_path, "  sel: {process.args|contains: '4624'}\n  condition: sel")
    assert _fires(ruleset, process={"args": ["a", 14624]}) == (True, True)
    assert _fires(ruleset, process={"args": [{"x": "4624"}]}) == (False, False)


def test_the_windows_field_map_reads_the_same_fields() -> None:
    rule = SigmaRule.from_yaml("title: t\nlogsource: {category: process_creation, product: windows}\n"
                               "detection:\n  sel: {Image|endswith: '\\cmd.exe'}\n  condition: sel")
    required = required_literals(rule, windows_fields("process_creation", "sysmon"))
    assert required is not None
    (atom,) = required
    doc = {"winlog": {"event_data": {"Image": "C:\\Windows\\CMD.exe"}}}
    assert atom.reader()(flat_view(doc)) == "C:\\Windows\\CMD.exe"


@pytest.mark.skipif(not REGRESSION.is_dir(), reason="../shared/data (SigmaHQ rules and regression data) is not present")
def test_the_prefilter_changes_no_alert_on_the_regression_events() -> None:
    ruleset, _errors = load_rules(WINDOWS_RULE_DIRS)
    source = WindowsSource(tenant="regression", sensor="test")
    events = [event for path in sorted(REGRESSION.rglob("*.json"))
              for batch in read_windows_file(path, source) for event in batch.events]
    assert len(events) > 140
    pairs = []
    for on in (True, False):
        engine = SigmaEngine(ruleset, use_prefilter=on)
        pairs.append({(alert.rule_id, alert.event_ids) for alert in engine.process(events)})
    assert pairs[0] == pairs[1]
    assert len(pairs[0]) >= 140
