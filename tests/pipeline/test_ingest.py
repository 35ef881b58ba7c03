"""The ingest step on its own: bad messages become dead letters, good ones are stored and passed on."""

from __future__ import annotations

from pathlib import Path

from config.settings import TenantConfig
from config.tenants import TenantScope, TenantTree
from pipeline.bus import topics
from pipeline.bus.base import Message
from pipeline.bus.memory import MemoryBus
from pipeline.enrich import Enricher
from pipeline.ingest import IngestStep
from pipeline.records import DeadLetter
from pipeline.store.base import EventQuery
from pipeline.store.registry import open_event_store
from tests.factories import make_event

TREE = TenantTree.from_config([TenantConfig(id="national", name="N", kind="national"),
                               TenantConfig(id="hanoi", name="HN", parent="national")])
ALL = TenantScope.everything()


def message(offset: int, value: bytes, topic: str = topics.RAW) -> Message:
    return Message(topic=topic, partition=0, offset=offset, key=None, value=value)


def test_bad_messages_are_dead_lettered_and_the_good_ones_around_them_stored(tmp_path: Path) -> None:
    store, bus = open_event_store(f"sqlite:///{tmp_path / 'e.db'}"), MemoryBus()
    step = IngestStep(Enricher(TREE), store, bus)
    letter = DeadLetter.create(source="auth.log", reason="not syslog", raw=b"junk", tenant="hanoi", position=7)
    batch = [
        message(0, make_event("hanoi", 0).to_json()),
        message(1, b"{not json"),
        message(2, make_event("nowhere", 2).to_json()),  # a tenant nobody configured
        message(3, b'{"@timestamp": "2026-11-23T07:00:00Z"}'),
        message(4, letter.to_json(), topics.DEAD_LETTERS),
        message(5, make_event("hanoi", 5).to_json()),
    ]
    result = step(batch)
    assert (result.events, result.new_events, result.dead_letters) == (2, 2, 4)
    assert store.count(ALL, EventQuery()) == 2
    reasons = sorted(d.reason for d in store.dead_letters(ALL))
    assert any("not JSON" in r for r in reasons) and any("unknown tenant 'nowhere'" in r for r in reasons)
    assert "not syslog" in reasons
    passed_on = bus.consumer([topics.EVENTS], "t").poll(100)
    assert len(passed_on) == 2
    assert step(batch).new_events == 0  # redelivery: idempotent
    assert store.count(ALL, EventQuery()) == 2
    store.close()


def test_an_unavailable_store_raises_and_dead_letters_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    store = open_event_store(url)
    store.close()  # a store that cannot take writes at all
    step = IngestStep(Enricher(TREE), store, MemoryBus())
    import pytest

    from pipeline.errors import StoreError

    with pytest.raises(StoreError, match="closed"):
        step([message(0, make_event("hanoi", 0).to_json())])
    again = open_event_store(url)
    assert again.count_dead_letters(ALL) == 0
    again.close()


def test_an_event_the_store_refuses_is_dead_lettered_and_its_batch_stored(tmp_path: Path) -> None:
    store = open_event_store(f"sqlite:///{tmp_path / 'e.db'}")
    step = IngestStep(Enricher(TREE), store, MemoryBus())
    bad = make_event("hanoi", 1, message="lone surrogate \ud800")  # not encodable as JSON
    letters: list[DeadLetter] = []
    new, stored = step._write([make_event("hanoi", 0), bad, make_event("hanoi", 2)], letters)
    assert (new, len(stored)) == (2, 2)
    assert [d.tenant for d in letters] == ["hanoi"] and "not storable" in letters[0].reason
    store.close()
