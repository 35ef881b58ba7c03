"""Reading check events that came over the wire: wrong types read as absent, never raise."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from config.watch import ServiceWatchSettings, WatchTarget
from detections.watch import Observation, WatchDetector, WatchDetectStep, judge_availability
from pipeline.bus import topics
from pipeline.bus.memory import MemoryBus
from pipeline.records import Event

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                  max_size=4), max_leaves=20)


def event(**watch: Any) -> Event:
    doc: dict[str, Any] = {"@timestamp": datetime(2026, 11, 23, tzinfo=UTC), "organization": {"id": "hanoi"},
                           "event": {"dataset": "service_watch", "outcome": "success"}, "observer": {"name": "s1"},
                           "govsoc": {"watch": {"target": "portal", **watch}}}
    return Event.create(doc, id_parts=("t", str(watch)))


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["page", "tls", "ttfb_ms", "kind"]), JSON, max_size=4))
def test_malformed_watch_fields_never_raise(fields: dict[str, Any]) -> None:
    obs = Observation.of(event(**fields))
    assert obs is not None
    target = WatchTarget(id="portal", tenant="hanoi", url="https://portal.hanoi.example/")
    judge_availability(obs, target)


def test_other_datasets_are_not_observations() -> None:
    doc: dict[str, Any] = {"@timestamp": datetime(2026, 11, 23, tzinfo=UTC), "organization": {"id": "hanoi"},
                           "event": {"dataset": "auth"}}
    assert Observation.of(Event.create(doc, id_parts=("x",))) is None


def test_the_worker_step_publishes_alerts_for_watch_events_only() -> None:
    bus = MemoryBus()
    settings_ = ServiceWatchSettings.model_validate({"outage": {"consecutive_failures": 1}, "targets": [
        {"id": "portal", "tenant": "hanoi", "url": "https://portal.hanoi.example/"}]})
    down = event(kind="url")
    doc = dict(down.doc)
    doc["event"] = {**doc["event"], "outcome": "failure"}
    doc["error"] = {"type": "tcp", "message": "refused"}
    bus.publish(topics.EVENTS, [("hanoi", Event.from_document(doc).to_json())])
    consumer = bus.consumer([topics.EVENTS], "watch")
    alerts = WatchDetectStep(WatchDetector(settings_), bus)(consumer.poll(100, 0))
    assert [a.rule_id for a in alerts] == ["govsoc-watch-outage"]
    published = bus.consumer([topics.ALERTS], "check").poll(100, 0)
    assert len(published) == 1
