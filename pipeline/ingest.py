"""Ingest: bus messages from sensors -> validated, enriched events in the store, and on to detection.

In: messages of `topics.RAW` (event JSON) and `topics.DEAD_LETTERS` (dead-letter JSON).
Out: events written to the EventStore and republished on `topics.EVENTS`; dead letters written.

`IngestStep` is the body of the worker loop, a function of one batch: it never raises for bad
content (a message that is not a valid event becomes a dead letter holding the message bytes and
the reason) and it publishes only after the store write returned, so a caller that commits its
consumer offset after the step gets at-least-once delivery with idempotent writes. Each event goes
on with its `Event` beside its bytes where the bus can carry it (`pipeline.bus.memory.publish_events`),
so the in-process detect step does not parse it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from config.errors import GovsocError
from pipeline.bus import Bus, Message, topics
from pipeline.bus.memory import publish_events
from pipeline.enrich import Enricher
from pipeline.errors import RefusedEvents, StoreError
from pipeline.records import DeadLetter, Event
from pipeline.store.base import EventStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class IngestResult:
    events: int
    new_events: int
    dead_letters: int


class IngestStep:
    def __init__(self, enricher: Enricher, store: EventStore, bus: Bus) -> None:
        self._enricher = enricher
        self._store = store
        self._bus = bus

    def __call__(self, messages: Sequence[Message]) -> IngestResult:
        events: list[Event] = []
        letters: list[DeadLetter] = []
        for message in messages:
            if message.topic == topics.DEAD_LETTERS:
                letters.append(self._dead_letter_of(message))
                continue
            try:
                events.append(self._enricher.enrich(Event.from_json(message.value)))
            except GovsocError as e:
                letters.append(_reject(message, str(e)))
        new, events = self._write(events, letters)
        if letters:
            self._store.write_dead_letters(letters)
            log.warning("dead_lettered", count=len(letters))
        if events:
            publish_events(self._bus, topics.EVENTS, [(e.tenant, e.to_json(), e) for e in events])
        return IngestResult(events=len(events), new_events=new, dead_letters=len(letters))

    def _write(self, events: list[Event], letters: list[DeadLetter]) -> tuple[int, list[Event]]:
        """Write the batch; events the store refuses for their content become dead letters.

        Returns (new ids, the events that were stored). One unstorable event must not take the
        good events of its batch down with it; but a store that is unavailable raises, so the
        batch is retried later (its offset is not committed) instead of being dead-lettered.
        """
        pending = events
        for _ in range(len(events) + 1):  # each round removes at least one refused event
            if not pending:
                return 0, pending
            try:
                return self._store.write(pending), pending
            except RefusedEvents as e:
                letters.extend(
                    DeadLetter.create(source=f"store:{event.tenant}", reason=e.reasons[event.id],
                                      raw=repr(dict(event.doc)).encode("utf-8", "backslashreplace"),
                                      tenant=event.tenant, position=event.id)
                    for event in pending if event.id in e.reasons)
                pending = [event for event in pending if event.id not in e.reasons]
                if e.written:
                    return e.new, pending
                if not e.reasons:
                    raise
        raise StoreError("the store kept refusing events without naming them")

    @staticmethod
    def _dead_letter_of(message: Message) -> DeadLetter:
        try:
            return DeadLetter.from_json(message.value)
        except (ValueError, KeyError, TypeError) as e:
            return _reject(message, f"malformed dead letter: {e}")


def _reject(message: Message, reason: str) -> DeadLetter:
    return DeadLetter.create(
        source=f"bus:{message.topic}/{message.partition}", reason=reason, raw=message.value,
        tenant=None, position=message.offset,
    )
