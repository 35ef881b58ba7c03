"""The service-watch worker step: a batch of `topics.EVENTS` messages -> alerts on `topics.ALERTS`.

Like `detections.stream.DetectStep`, a plain function of one batch (no loop, no sleep): the worker
commits its offset after the step returned. Messages of other datasets cost one JSON parse and are
skipped; a message that is not an event is logged and skipped (ingest validated it already).
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from config.errors import GovsocError
from detections.watch.detector import WatchDetector
from detections.watch.observe import DATASET
from pipeline.bus import Bus, Message, topics
from pipeline.records import Alert, Event

log = structlog.get_logger(__name__)


class WatchDetectStep:
    def __init__(self, detector: WatchDetector, bus: Bus) -> None:
        self._detector = detector
        self._bus = bus

    def __call__(self, messages: Sequence[Message]) -> list[Alert]:
        events: list[Event] = []
        for message in messages:
            try:
                event = Event.from_json(message.value)
            except GovsocError as e:
                log.warning("event_skipped", topic=message.topic, offset=message.offset, reason=str(e))
                continue
            if event.get("event.dataset") == DATASET:
                events.append(event)
        alerts = self._detector.process(events)
        if alerts:
            self._bus.publish(topics.ALERTS, [(a.tenant, a.to_json()) for a in alerts])
        return alerts
