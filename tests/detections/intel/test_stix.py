"""The STIX 2.1 specification's example bundles: every supported indicator matches an event carrying
it, and none does after its valid_until; unsupported patterns are issues naming the object."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from detections.intel import ImportOptions, IndicatorType, IntelMatcher, Tlp, export_stix, import_stix
from detections.intel.stix import pattern_values
from pipeline.records import DetectionKind, parse_iso
from tests.detections.intel.intel_factories import TREE, event_carrying, indicator

DATA = Path(__file__).parents[2] / "data" / "intel"
SPEC_BUNDLES = sorted(DATA.glob("stix-*.json"))
SUPPORTED_IN_SPEC = {  # file -> indicators the importer must find (one per comparison of an OR pattern)
    "stix-indicator-for-c2-ip-address.json": 1, "stix-indicator-to-campaign-relationship.json": 1,
    "stix-indicators-for-C2-with-COA.json": 2, "stix-malicious-email-indicator-with-attachment.json": 0,
    "stix-poisonivy-excerpt.json": 37,
}


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def with_valid_until(bundle: dict[str, Any], days: int) -> dict[str, Any]:
    changed = copy.deepcopy(bundle)
    for obj in changed["objects"]:
        if obj.get("type") == "indicator":
            until = parse_iso(obj["valid_from"]) + timedelta(days=days)
            obj["valid_until"] = until.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return changed


def test_every_spec_file_is_covered() -> None:
    assert {p.name for p in SPEC_BUNDLES} == set(SUPPORTED_IN_SPEC)


@pytest.mark.parametrize("path", SPEC_BUNDLES, ids=lambda p: p.name)
def test_spec_indicators_match_while_valid_and_not_after(path: Path) -> None:
    bundle = with_valid_until(load(path), days=30)
    result = import_stix(bundle, ImportOptions(publisher="national", path=str(path)))
    assert len(result.indicators) == SUPPORTED_IN_SPEC[path.name]
    matcher = IntelMatcher(result.indicators, TREE)
    for n, ind in enumerate(result.indicators):
        assert ind.valid_from is not None and ind.valid_until is not None
        during = event_carrying(ind, "danang", ind.valid_from + timedelta(days=1), n)
        after = event_carrying(ind, "danang", ind.valid_until, n)
        alerts = matcher.process([during])
        assert ind.id in {a.rule_id.removeprefix("intel:") for a in alerts}, ind
        assert all(a.kind is DetectionKind.INTEL and a.tenant == "danang" for a in alerts)
        assert matcher.process([after]) == []


def test_unsupported_patterns_are_issues_naming_file_and_object() -> None:
    path = DATA / "stix-malicious-email-indicator-with-attachment.json"
    result = import_stix(load(path), ImportOptions(publisher="national", path=str(path)))
    assert len(result.issues) == 2
    text = str(result.issues[0])
    assert path.name in text and "indicator--8cf9236f-1b96-493d-98be-0c1c1e8b62d7" in text and "Matches" in text


def test_context_source_and_kill_chain_are_kept() -> None:
    path = DATA / "stix-indicators-for-C2-with-COA.json"
    result = import_stix(load(path), ImportOptions(publisher="national"))
    first = result.indicators[0]
    assert first.source == "The MITRE Corporation - DHS Support Team"
    assert first.context == ("malware: Poison Ivy",)
    assert first.stix_id == "indicator--53fe3b22-0201-47cf-85d0-97c02164528d"
    assert result.context_objects == 6


def test_or_pattern_gives_one_indicator_per_value_with_the_same_stix_id() -> None:
    result = import_stix(load(DATA / "stix-poisonivy-excerpt.json"), ImportOptions(publisher="national"))
    microsoft = [i for i in result.indicators if i.stix_id and "microsofta.byinter.net" in
                 {j.value for j in result.indicators if j.stix_id == i.stix_id}]
    assert len(microsoft) == 11
    assert {i.type for i in microsoft} == {IndicatorType.DOMAIN, IndicatorType.IPV4}


@pytest.mark.parametrize(("pattern", "reason"), [
    ("[ipv4-addr:value = '198.51.100.1'] AND [url:value = 'http://a.example/']", "AndObservationExpression"),
    ("[file:name = 'x.exe']", "file:name"),
    ("[ipv4-addr:value != '198.51.100.1']", "negated"),
    ("[ipv4-addr:value = '1.2.3.4'] WITHIN 5 SECONDS", "Qualified"),
    ("not a pattern", "not a valid STIX 2.1 pattern"),
])
def test_patterns_that_cannot_be_matched_value_by_value_are_refused(pattern: str, reason: str) -> None:
    from detections.intel import IntelError

    with pytest.raises(IntelError, match=reason):
        pattern_values(pattern)


@pytest.mark.parametrize(("pattern", "expected"), [
    ("[(ipv4-addr:value = '198.51.100.4' OR ipv4-addr:value = '198.51.100.5')]",
     [(IndicatorType.IPV4, "198.51.100.4"), (IndicatorType.IPV4, "198.51.100.5")]),
    ("([ipv4-addr:value = '198.51.100.4'] OR [domain-name:value = 'A.example'])",
     [(IndicatorType.IPV4, "198.51.100.4"), (IndicatorType.DOMAIN, "A.example")]),
    ("[email-message:to_refs[*].value = 'x@y.example']", [(IndicatorType.EMAIL, "x@y.example")]),
    ("[network-traffic:extensions.'http-request-ext'.request_header.'User-Agent' = 'Evil']",
     [(IndicatorType.USER_AGENT, "Evil")]),
    ("[x-ja3:value = 'e7d705a3286e19ea42f587b344ee6865']", [(IndicatorType.JA3, "e7d705a3286e19ea42f587b344ee6865")]),
])
def test_or_trees_parentheses_and_reference_paths(pattern: str, expected: list[tuple[IndicatorType, str]]) -> None:
    assert pattern_values(pattern) == expected


def test_issubset_is_a_network_and_network_traffic_refs_are_addresses() -> None:
    assert pattern_values("[ipv4-addr:value ISSUBSET '198.51.100.0/24']") == [(IndicatorType.CIDR, "198.51.100.0/24")]
    assert pattern_values("[network-traffic:dst_ref.value = '2001:db8::7']") == [(IndicatorType.IPV6, "2001:db8::7")]


def test_export_round_trips_every_type_and_tlp() -> None:
    made = [
        indicator(IndicatorType.IPV4, "203.0.113.77", tlp=Tlp.CLEAR, kill_chain=("lockheed:delivery",)),
        indicator(IndicatorType.IPV6, "2001:db8::77", tlp=Tlp.GREEN),
        indicator(IndicatorType.CIDR, "198.51.100.0/24", tlp=Tlp.AMBER),
        indicator(IndicatorType.DOMAIN, "evil.example", tlp=Tlp.AMBER_STRICT),
        indicator(IndicatorType.URL, "http://evil.example/it's", tlp=Tlp.RED),
        indicator(IndicatorType.MD5, "0" * 32), indicator(IndicatorType.SHA1, "1" * 40),
        indicator(IndicatorType.SHA256, "2" * 64), indicator(IndicatorType.EMAIL, "a@evil.example"),
        indicator(IndicatorType.JA3, "3" * 32), indicator(IndicatorType.JA4, "t13d1516h2_8daaf6152771_b186095e22b6"),
        indicator(IndicatorType.USER_AGENT, "EvilBot/1.0"),
    ]
    again = import_stix(export_stix(made), ImportOptions(publisher="national", source="test"))
    assert again.issues == []
    assert [(i.type, i.value, i.tlp, i.kill_chain) for i in again.indicators] == [
        (i.type, i.value, i.tlp, i.kill_chain) for i in made]
