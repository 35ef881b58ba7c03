"""Hypothesis: arbitrary JSON given to the importers yields indicators or located issues, never a crash."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from detections.intel import ImportOptions, IntelError, import_document, import_misp, import_stix

OPTIONS = ImportOptions(publisher="national", path="fuzz.json")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
stix_indicator = st.fixed_dictionaries({
    "type": st.just("indicator"), "spec_version": st.just("2.1"),
    "id": st.just("indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"),
    "created": st.just("2026-01-01T00:00:00Z"), "modified": st.just("2026-01-01T00:00:00Z"),
    "pattern_type": st.sampled_from(["stix", "snort"]), "valid_from": st.just("2026-01-01T00:00:00Z"),
    "pattern": st.text(max_size=60) | st.builds(lambda t, v: f"[{t}:value = '{v}']",
                                                st.sampled_from(["ipv4-addr", "domain-name", "url", "email-addr"]),
                                                st.text(max_size=20)),
}, optional={"valid_until": json_values, "confidence": json_values, "object_marking_refs": json_values,
             "kill_chain_phases": json_values})
misp_attribute = st.fixed_dictionaries({
    "type": st.sampled_from(["ip-dst", "domain|ip", "md5", "filename|sha256", "url", "email", "text"]),
    "value": json_values, "to_ids": st.booleans()}, optional={"Tag": json_values, "uuid": json_values})


def check(result: Any) -> None:
    assert all(isinstance(issue, IntelError) and "fuzz.json" in str(issue) for issue in result.issues)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
@example({"type": "bundle", "objects": [None, 1, {"type": "indicator"}]})
@example({"Event": {"info": "x", "Attribute": [{"type": "ip-dst", "value": None, "to_ids": True}]}})
def test_any_json_is_imported_or_refused_with_a_location(doc: object) -> None:
    check(import_document(doc, OPTIONS))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(stix_indicator | json_values, max_size=4))
@example([{"type": "indicator", "spec_version": "2.1", "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
           "created": "2026-01-01T00:00:00Z", "modified": "2026-01-01T00:00:00Z", "pattern_type": "stix",
           "valid_from": "2026-01-01T00:00:00Z", "pattern": ""}])  # stix2patterns: UnboundLocalError
def test_stix_bundles_of_odd_objects(objects: list[Any]) -> None:
    check(import_stix({"type": "bundle", "objects": objects}, OPTIONS))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(misp_attribute, max_size=5), json_values)
def test_misp_events_of_odd_attributes(attributes: list[Any], tags: object) -> None:
    check(import_misp({"Event": {"info": "fuzz", "Tag": tags, "Attribute": attributes}}, OPTIONS))
