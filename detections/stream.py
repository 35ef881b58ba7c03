"""The detection worker's steps: events from the bus -> alerts -> incidents.

- `DetectStep`: a batch of `topics.EVENTS` messages -> the Sigma engine, the threat-intel
  matcher, the ML feed and the service-watch detector (the `service_watch` check events: outages,
  certificates, DNS, defacement) -> alerts published on `topics.ALERTS`, each carrying the asset and
  security level enrichment found on its events; intel matches are recorded as sightings after
  publishing. `tick(now)` publishes the ML alerts of windows closed on the clock. A message that
  carries its decoded event (`Message.event`: the in-process bus, from the ingest step) is not
  parsed again; any other is decoded and validated from its bytes.
- `IncidentStep`: a batch of `topics.ALERTS` messages -> `IncidentService.ingest`.

Both are plain functions of one batch (no loop, no sleeping), so tests drive them directly and
the worker loop commits offsets only after a step returns (at-least-once).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

import structlog

from config.errors import GovsocError
from detections.incidents import IncidentService
from detections.intel import IntelFeed
from detections.ml import MlFeed
from detections.sigma.match import SigmaEngine
from detections.watch import WatchDetector
from pipeline.bus import Bus, Message, topics
from pipeline.records import Alert, Event, Incident

log = structlog.get_logger(__name__)


class DetectStep:
    def __init__(self, engine: SigmaEngine, bus: Bus, intel: IntelFeed | None = None,
                 ml: MlFeed | None = None, watch: WatchDetector | None = None) -> None:
        self._engine = engine
        self._bus = bus
        self._intel = intel
        self._ml = ml
        self._watch = watch

    def __call__(self, messages: Sequence[Message]) -> list[Alert]:
        events: list[Event] = []
        for message in messages:
            if message.event is not None:  # the same event its bytes encode, already validated
                events.append(message.event)
                continue
            try:
                events.append(Event.from_json(message.value))
            except GovsocError as e:  # ingest validated it already; a bad one here is a bug upstream
                log.warning("event_skipped", topic=message.topic, offset=message.offset, reason=str(e))
        raised = self._engine.process(events)
        if self._intel is not None:
            raised = [*raised, *self._intel.process(events)]
        if self._ml is not None:
            raised = [*raised, *self._ml.process(events)]
        if self._watch is not None:
            raised = [*raised, *self._watch.process(events)]
        alerts = [_with_asset(alert, events) for alert in raised]
        if alerts:
            self._bus.publish(topics.ALERTS, [(a.tenant, a.to_json()) for a in alerts])
            if self._intel is not None:
                self._intel.record(alerts)  # sightings, once the alerts are on the bus
        return alerts

    def tick(self, now: datetime) -> list[Alert]:
        """ML alerts of windows closed on the clock (a tenant that fell quiet), published on `topics.ALERTS`."""
        if self._ml is None:
            return []
        alerts = self._ml.flush(now)
        if alerts:
            self._bus.publish(topics.ALERTS, [(a.tenant, a.to_json()) for a in alerts])
        return alerts


def _with_asset(alert: Alert, events: Sequence[Event]) -> Alert:
    wanted = set(alert.event_ids)
    for event in reversed(events):
        if event.id in wanted:
            asset = event.get("govsoc.asset")
            if isinstance(asset, dict):
                return dataclasses.replace(alert, asset_id=asset.get("id"), security_level=asset.get("security_level"))
    return alert


class IncidentStep:
    def __init__(self, service: IncidentService) -> None:
        self._service = service

    def __call__(self, messages: Sequence[Message]) -> list[Incident]:
        alerts: list[Alert] = []
        for message in messages:
            try:
                alerts.append(Alert.from_json(message.value))
            except (ValueError, KeyError, TypeError) as e:
                log.warning("alert_skipped", topic=message.topic, offset=message.offset, reason=str(e))
        return self._service.ingest(alerts)
