"""Retention on the search store: whole daily indices older than the kept days are deleted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from config.tenants import TenantScope
from pipeline.errors import StoreError
from pipeline.records import Event
from pipeline.store.base import EventQuery
from pipeline.store.elastic import ElasticEventStore
from pipeline.store.elastic_retention import delete_expired, expired_indices
from tests.servers import search

search_server = search.search_server

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def test_a_day_expires_once_it_ended_more_than_the_kept_days_ago() -> None:
    names = ["g-events-hanoi-2026.11.20", "g-events-hanoi-2026.11.21", "g-events-hanoi-2026.11.22",
             "g-events-byt-2026.11.13", "g-events-other-tool", "g-events-x-2026.02.30"]
    assert expired_indices(names, 2, NOW) == ["g-events-byt-2026.11.13", "g-events-hanoi-2026.11.20"]
    assert expired_indices(names, 30, NOW) == []


@pytest.fixture
def store(search_server: search.SearchServer) -> Iterator[ElasticEventStore]:
    opened = ElasticEventStore.from_url(search_server.store_url(prefix="retention", refresh="wait_for"))
    yield opened
    opened.close()
    search_server.drop("retention")


def _event(day: datetime) -> Event:
    return Event.create({"@timestamp": day, "message": "x", "organization": {"id": "hanoi"}},
                        id_parts=[day.isoformat()])


def test_delete_expired_removes_old_days_and_keeps_the_rest(store: ElasticEventStore) -> None:
    store.write([_event(NOW - timedelta(days=d)) for d in (0, 1, 5, 10)])
    progress: list[int] = []
    deleted = delete_expired(store, 3, NOW, on_progress=progress.append)
    assert deleted == ["retention-events-hanoi-2026.11.13", "retention-events-hanoi-2026.11.18"]
    assert progress == [1, 1]
    assert store.count(TenantScope.everything(), EventQuery()) == 2
    assert delete_expired(store, 3, NOW, on_progress=progress.append) == []  # idempotent


def test_only_the_stores_own_indices_can_be_deleted(store: ElasticEventStore) -> None:
    with pytest.raises(StoreError, match="refusing to delete"):
        store.delete_index("other-events-*")
