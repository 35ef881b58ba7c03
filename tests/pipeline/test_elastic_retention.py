"""Retention on the search store: a lifecycle policy where the cluster has ILM or ISM, else whole
daily indices older than the kept days deleted by name.

Against osmem-server (no ILM, no ISM) the by-name branch and the probe run; the policy branch runs
against a real cluster only (`RETENTION_CLUSTER_URL`), and its bodies are checked here."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from config.tenants import TenantScope
from pipeline.errors import StoreError
from pipeline.records import Event
from pipeline.store.base import EventQuery
from pipeline.store.elastic import ElasticEventStore
from pipeline.store.elastic_mapping import IndexNames
from pipeline.store.elastic_retention import (
    ILM_PROBE,
    ISM_PROBE,
    RetentionMode,
    RetentionReport,
    apply_retention,
    delete_expired,
    expired_indices,
    ilm_policy,
    ism_policy,
    lifecycle_api,
)
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


# --- the mechanism: asked of the cluster ---------------------------------------------------------

def test_the_test_server_answers_neither_lifecycle_api_so_setup_deletes_by_name(store: ElasticEventStore) -> None:
    """osmem-server has no ILM and no ISM (SERVERS.md): the branch that runs here."""
    assert store.has_api("/")  # the probe tells an API the server has ...
    assert not store.has_api(ILM_PROBE) and not store.has_api(ISM_PROBE)  # ... from ones it lacks
    assert lifecycle_api(store) is RetentionMode.DELETE
    store.write([_event(NOW - timedelta(days=d)) for d in (0, 10)])
    report = apply_retention(store, 3, NOW, on_progress=lambda n: None)
    assert report == RetentionReport(RetentionMode.DELETE, deleted=["retention-events-hanoi-2026.11.13"])
    assert apply_retention(store, 3, NOW, on_progress=lambda n: None).deleted == []  # idempotent


def test_index_settings_reach_the_template_and_every_existing_index(store: ElasticEventStore,
                                                                   search_server: search.SearchServer) -> None:
    """The ILM branch's attach step (`set_event_index_settings`), with a setting every server takes."""
    store.write([_event(NOW)])
    store.set_event_index_settings({"index.refresh_interval": "7s"})
    template = search_server.request("GET", "/_index_template/retention-events")
    assert template["index_templates"][0]["index_template"]["template"]["settings"]["index"]["refresh_interval"] == "7s"
    settings = search_server.request("GET", "/retention-events-hanoi-2026.11.23/_settings")
    assert settings["retention-events-hanoi-2026.11.23"]["settings"]["index"]["refresh_interval"] == "7s"


def test_the_policies_delete_a_day_when_the_name_based_deletion_would() -> None:
    ilm = ilm_policy(30)["policy"]["phases"]
    assert ilm["delete"] == {"min_age": "31d", "actions": {"delete": {}}}  # from the day's start: its end + 30 d
    ism = ism_policy(30, "g-events-*")["policy"]
    assert ism["states"][0]["transitions"] == [{"state_name": "delete", "conditions": {"min_index_age": "31d"}}]
    assert ism["ism_template"] == [{"index_patterns": ["g-events-*"], "priority": 100}]
    # ILM parses the origination date from names matching `^.*-{yyyy.MM.dd}(-digits)?$`
    # (elastic/elasticsearch#46755): ours do, so a backfilled index ages from its day, not its creation.
    assert re.fullmatch(r".*-\d{4}\.\d{2}\.\d{2}(-\d+)?", str(IndexNames("g").events("hanoi", NOW)))


CLUSTER = os.environ.get("RETENTION_CLUSTER_URL")  # an Elasticsearch or OpenSearch with ILM or ISM


@pytest.mark.skipif(CLUSTER is None, reason="the test servers have no ILM/ISM: set RETENTION_CLUSTER_URL to a "
                                            "real cluster (elasticsearch://… or opensearch://…?prefix=…)")
def test_a_cluster_with_a_lifecycle_api_gets_the_policy_idempotently() -> None:
    opened = ElasticEventStore.from_url(str(CLUSTER))
    try:
        report = apply_retention(opened, 30, NOW, on_progress=lambda n: None)
        assert report.mode in (RetentionMode.ILM, RetentionMode.ISM) and report.deleted == []
        path = f"/_ilm/policy/{report.policy}" if report.mode is RetentionMode.ILM else \
            f"/_plugins/_ism/policies/{report.policy}"
        assert opened.cluster_request("read the policy", "GET", path) is not None
        assert apply_retention(opened, 30, NOW, on_progress=lambda n: None) == report
    finally:
        opened.close()
