"""A real MISP event export (CIRCL OSINT, via PyMISP's test data): `to_ids` attributes become indicators
that match events carrying them; tags give TLP, confidence and context; feeds are read by manifest."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detections.intel import ImportOptions, IndicatorType, IntelMatcher, Tlp, export_misp, import_file, import_misp
from tests.detections.intel.intel_factories import TREE, event_carrying, indicator

DATA = Path(__file__).parents[2] / "data" / "intel"
SEDNIT = DATA / "misp-event-sednit-excerpt.json"
NOW = datetime(2026, 11, 23, 7, tzinfo=UTC)


def load() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(SEDNIT.read_text(encoding="utf-8"))
    return doc


def test_every_to_ids_attribute_of_a_matchable_type_matches_an_event_carrying_it() -> None:
    result = import_misp(load(), ImportOptions(publisher="national", path=str(SEDNIT)))
    assert result.issues == []
    assert {i.type for i in result.indicators} == {IndicatorType.DOMAIN, IndicatorType.SHA1, IndicatorType.IPV4}
    assert len(result.indicators) == 12  # 3 domains, 3 file objects' sha1, 3 domain-ip objects x 2
    assert result.context_objects == 7  # link, text, filenames, states: kept out of matching
    matcher = IntelMatcher(result.indicators, TREE)
    for n, ind in enumerate(result.indicators):
        alerts = matcher.process([event_carrying(ind, "btc", NOW, n)])
        assert [a.rule_id for a in alerts] == [f"intel:{ind.id}"]


def test_tags_give_tlp_source_and_context() -> None:
    ind = import_misp(load(), ImportOptions(publisher="national")).indicators[0]
    assert ind.tlp is Tlp.CLEAR  # tlp:white on the event
    assert ind.source == "MISP CIRCL"
    assert "threat-actor: Sofacy" in ind.context
    assert ind.name == "OSINT - Sednit update: How Fancy Bear Spent the Year"


def test_attribute_tags_override_the_event_and_bad_values_are_issues() -> None:
    event = {"Event": {"info": "t", "Tag": [{"name": "tlp:green"}], "Attribute": [
        {"type": "ip-dst|port", "value": "203.0.113.77|22", "to_ids": True,
         "Tag": [{"name": "tlp:amber"}, {"name": 'osint:certainty="90"'}]},
        {"type": "md5", "value": "nothex", "to_ids": True, "uuid": "u-1"},
        {"type": "domain", "value": "skip.example", "to_ids": True, "deleted": True},
    ]}}
    result = import_misp(event, ImportOptions(publisher="national", path="feed.json"))
    [ind] = result.indicators
    assert (ind.type, ind.value, ind.tlp, ind.confidence) == (IndicatorType.IPV4, "203.0.113.77", Tlp.AMBER, 90)
    [problem] = result.issues
    assert str(problem).startswith("feed.json Attribute[1] u-1: md5 'nothex'")


def test_a_feed_manifest_brings_in_its_events(tmp_path: Path) -> None:
    event = load()
    uuid = event["Event"]["uuid"]
    (tmp_path / f"{uuid}.json").write_text(json.dumps(event), encoding="utf-8")
    manifest = {uuid: {"info": event["Event"]["info"], "Orgc": event["Event"]["Orgc"]},
                "00000000-0000-0000-0000-000000000000": {"info": "missing"}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    result = import_file(tmp_path / "manifest.json", ImportOptions(publisher="national"))
    assert len(result.indicators) == 12
    [missing] = result.issues
    assert "00000000-0000-0000-0000-000000000000.json, which is missing" in str(missing)


def test_export_is_a_misp_event_that_imports_back() -> None:
    made = [indicator(IndicatorType.IPV4, "203.0.113.77", tlp=Tlp.AMBER),
            indicator(IndicatorType.DOMAIN, "evil.example"), indicator(IndicatorType.SHA256, "a" * 64),
            indicator(IndicatorType.JA4, "t13d1516h2_8daaf6152771_b186095e22b6")]
    event = export_misp(made, "Incident 42", now=NOW)
    assert event["Event"]["Tag"] == [{"name": "tlp:amber"}]
    again = import_misp(event, ImportOptions(publisher="national", source="test"))
    assert [(i.type, i.value, i.tlp) for i in again.indicators] == [(i.type, i.value, i.tlp) for i in made[:3]]
    assert export_misp(made, "Incident 42", now=NOW) == event  # deterministic uuids
