"""The shared records: validation, deterministic ids, JSON round trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import ParseError
from pipeline.ids import stable_id
from pipeline.records import Alert, DeadLetter, Event, get_path, set_path
from tests.factories import make_alert, make_event


def test_event_id_is_deterministic_and_tenant_bound() -> None:
    assert make_event("hanoi", 1).id == make_event("hanoi", 1).id
    assert make_event("hanoi", 1).id != make_event("danang", 1).id


def test_event_round_trips_through_json() -> None:
    event = make_event(source__ip="203.0.113.77", event__category=["authentication"])
    again = Event.from_json(event.to_json())
    assert again == event
    assert again.get("source.ip") == "203.0.113.77"


def test_timestamp_is_normalised_to_utc() -> None:
    local = datetime(2026, 11, 23, 14, 0, tzinfo=timezone(timedelta(hours=7)))
    event = make_event(at=local)
    assert event.timestamp == datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    assert event.doc["@timestamp"] == "2026-11-23T07:00:00.000000Z"


@pytest.mark.parametrize("doc, reason", [
    ({"organization": {"id": "x"}, "event": {"id": "1"}}, "@timestamp: missing"),
    ({"@timestamp": "2026-11-23T07:00:00", "organization": {"id": "x"}, "event": {"id": "1"}}, "no zone"),
    ({"@timestamp": "yesterday", "organization": {"id": "x"}, "event": {"id": "1"}}, "not an ISO 8601"),
    ({"@timestamp": "2026-11-23T07:00:00Z", "event": {"id": "1"}}, "organization.id: missing"),
    ({"@timestamp": "2026-11-23T07:00:00Z", "organization": {"id": "x"}}, "event.id: missing"),
])
def test_invalid_documents_are_refused_with_the_field(doc: dict[str, object], reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        Event.from_document(doc)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_an_event_or_a_parse_error(data: bytes) -> None:
    try:
        Event.from_json(data)
    except ParseError:
        pass


def test_get_path_handles_nested_and_dotted_keys() -> None:
    doc: dict[str, object] = {}
    set_path(doc, "winlog.event_data.Image", "C:\\x.exe")
    assert get_path(doc, "winlog.event_data.Image") == "C:\\x.exe"
    assert get_path({"winlog.event_data": {"Image": "y"}}, "winlog.event_data.Image") == "y"
    assert get_path(doc, "winlog.missing") is None


def test_stable_id_separates_parts() -> None:
    assert stable_id("ab", "c") != stable_id("a", "bc")
    assert len(stable_id("x")) == 32


def test_alert_round_trips_through_json() -> None:
    alert = make_alert(security_level=4)
    assert Alert.from_json(alert.to_json()) == alert


def test_dead_letter_keeps_raw_bytes() -> None:
    letter = DeadLetter.create(source="f.log", reason="bad", raw=b"\xff\x00junk", tenant=None, position=3)
    assert DeadLetter.from_json(letter.to_json()) == letter
    assert letter.id == DeadLetter.create(source="f.log", reason="bad", raw=b"\xff\x00junk", tenant=None,
                                          position=3, received=letter.received).id
