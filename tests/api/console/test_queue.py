"""The queue's filters and SLA arithmetic, on real incidents in a real SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from api.console.queue import NO_DEADLINE, PAGE_SIZE, QueueFilters, load_queue, sla_badge, time_left
from config.settings import IncidentSettings
from config.tenants import TenantScope
from pipeline.records import Incident, IncidentState, Severity
from pipeline.store.base import IncidentStore
from pipeline.store.registry import open_incident_store
from tests.factories import T0

SETTINGS = IncidentSettings()
EVERYTHING = TenantScope.everything()


def incident(n: int, **changes: object) -> Incident:
    at = T0 - timedelta(minutes=n)
    values: dict[str, object] = dict(
        id=f"inc-{n:04d}", tenant="hanoi", title=f"case {n}", severity=Severity(1 + n % 4),
        state=IncidentState.NEW, rule_id=f"rule-{n % 3}", entity={"source.ip": "203.0.113.7"}, first_seen=at,
        last_seen=at, alert_count=1, created=at, updated=at)
    values.update(changes)
    return Incident(**values)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[IncidentStore]:
    found = open_incident_store(f"sqlite:///{tmp_path / 'q.db'}")
    for n in range(120):
        found.save_incident(incident(n, assignee="lan" if n % 10 == 0 else None,
                                     state=IncidentState.RESOLVED if n % 4 == 3 else IncidentState.NEW), [])
    yield found
    found.close()


def test_filters_from_the_url_drop_what_they_do_not_know() -> None:
    filters = QueueFilters.from_query({"severity": "bogus", "sort": "random", "page": "-3", "period": "1y"},
                                      ["new", "nonsense"])
    assert filters.states == (IncidentState.NEW,) and filters.min_severity is None
    assert filters.sort == "newest" and filters.page == 1 and filters.period == "" and not filters.needs_scan


def test_the_first_page_and_counts(store: IncidentStore) -> None:
    page = load_queue(store, EVERYTHING, QueueFilters(), SETTINGS, T0)
    assert page.total == 120 and len(page.rows) == PAGE_SIZE and page.pages == 3
    assert page.counts["new"] == 90 and page.counts["resolved"] == 30
    assert [r.incident.id for r in page.rows[:2]] == ["inc-0000", "inc-0001"]


def test_assignee_period_and_paging(store: IncidentStore) -> None:
    mine = load_queue(store, EVERYTHING, QueueFilters(assignee="lan"), SETTINGS, T0)  # user names are exact
    assert mine.total == 12 and all(r.incident.assignee == "lan" for r in mine.rows)
    recent = load_queue(store, EVERYTHING, QueueFilters(period="24h"), SETTINGS, T0)
    assert recent.total == 120
    later = load_queue(store, EVERYTHING, QueueFilters(period="24h"), SETTINGS, T0 + timedelta(hours=25))
    assert later.total == 0
    third = load_queue(store, EVERYTHING, QueueFilters(page=3), SETTINGS, T0)
    assert len(third.rows) == 20


def test_sorting_by_severity_and_deadline(store: IncidentStore) -> None:
    by_severity = load_queue(store, EVERYTHING, QueueFilters(sort="severity"), SETTINGS, T0)
    assert by_severity.rows[0].incident.severity is Severity.CRITICAL
    by_deadline = load_queue(store, EVERYTHING, QueueFilters(sort="deadline"), SETTINGS, T0)
    lefts = [time_left(r.incident, SETTINGS, T0) for r in by_deadline.rows]
    assert lefts == sorted(lefts)
    oldest = load_queue(store, EVERYTHING, QueueFilters(sort="oldest"), SETTINGS, T0)
    assert oldest.rows[0].incident.id == "inc-0119"


def test_sla_badges_count_down_and_go_overdue() -> None:
    fresh = incident(0, severity=Severity.CRITICAL)
    badge = sla_badge(fresh, SETTINGS, T0)
    assert badge is not None and badge.status.value in ("running", "due_soon")
    assert badge.remaining == time_left(fresh, SETTINGS, T0) > timedelta(0)
    late = sla_badge(fresh, SETTINGS, T0 + timedelta(days=30))
    assert late is not None and late.status.value == "overdue" and late.remaining < timedelta(0)
    assert sla_badge(incident(1, state=IncidentState.CLOSED), SETTINGS, T0) is None
    assert time_left(incident(1, state=IncidentState.CLOSED), SETTINGS, T0) == NO_DEADLINE
    responded = incident(2, responded=T0)
    assert sla_badge(responded, SETTINGS, T0).remaining == time_left(responded, SETTINGS, T0)  # type: ignore[union-attr]
