"""The intel store on a real SQLite file: the SQL sharing rules agree with `can_see` for every reader,
sightings stay with the sighting tenant, the publisher and their ancestors, and writes are idempotent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from config.tenants import TenantScope
from detections.intel import (
    IndicatorQuery,
    IndicatorType,
    IntelError,
    IntelMatcher,
    IntelStore,
    Tlp,
    can_see,
    near_tenants,
    sightings_of,
)
from tests.detections.intel.intel_factories import TENANTS, TREE, indicator
from tests.factories import T0, make_event

I = IndicatorType  # noqa: E741


@pytest.fixture
def store(tmp_path: Path) -> Iterator[IntelStore]:
    opened = IntelStore(tmp_path / "intel.db", TREE)
    yield opened
    opened.close()


def every_marking() -> list:  # type: ignore[type-arg]
    made = []
    for n, publisher in enumerate(TENANTS):
        for tlp in Tlp:
            made.append(indicator(I.IPV4, f"203.0.113.{n * 10 + list(Tlp).index(tlp)}", publisher=publisher, tlp=tlp,
                                  recipients=("byt",) if tlp is Tlp.RED else (),
                                  shared_with=("danang",) if tlp in (Tlp.AMBER, Tlp.AMBER_STRICT) else ()))
    return made


SCOPES = [TREE.scope(t) for t in TENANTS] + [TenantScope.everything()]


@pytest.mark.parametrize("scope", SCOPES, ids=lambda s: s.root)
def test_sql_sharing_agrees_with_can_see(store: IntelStore, scope: TenantScope) -> None:
    made = every_marking()
    store.publish(made)
    near = near_tenants(scope, TREE)
    expected = {i.id for i in made if can_see(i, scope, near)}
    assert {i.id for i in store.indicators(scope, IndicatorQuery(limit=1000))} == expected
    assert store.count_indicators(scope) == len(expected)
    for ind in made:
        assert (store.indicator(scope, ind.id) is not None) == (ind.id in expected)


def test_the_rules_in_words(store: IntelStore) -> None:
    amber = indicator(I.IPV4, "203.0.113.1", publisher="btc", tlp=Tlp.AMBER)
    red = indicator(I.IPV4, "203.0.113.2", publisher="hanoi", tlp=Tlp.RED, recipients=("danang",))
    shared = indicator(I.IPV4, "203.0.113.3", publisher="hanoi", tlp=Tlp.AMBER, shared_with=("danang",))
    down = indicator(I.IPV4, "203.0.113.4", publisher="national", tlp=Tlp.AMBER_STRICT)
    store.publish([amber, red, shared, down])

    def sees(tenant: str) -> set[str]:
        return {i.value for i in store.indicators(TREE.scope(tenant))}

    assert sees("byt") == {"203.0.113.4"}  # a sibling never sees btc's AMBER; national's reaches down
    assert sees("btc") == {"203.0.113.1", "203.0.113.4"}
    assert sees("national") == {"203.0.113.1", "203.0.113.3", "203.0.113.4"}  # all but RED not addressed to it
    assert sees("danang-haichau") == {"203.0.113.3", "203.0.113.4"}  # widened to danang's subtree
    assert "203.0.113.2" in sees("danang") and "203.0.113.2" not in sees("danang-haichau")


def test_publish_is_an_idempotent_upsert_and_refuses_unknown_tenants(store: IntelStore) -> None:
    ind = indicator(I.DOMAIN, "evil.example")
    store.publish([ind, ind])
    store.publish([ind])
    assert store.count_indicators(TenantScope.everything()) == 1
    with pytest.raises(IntelError, match="unknown tenant 'nowhere'"):
        store.publish([indicator(I.DOMAIN, "x.example", publisher="nowhere")])


def test_active_at_filters_by_validity(store: IntelStore) -> None:
    store.publish([indicator(I.IPV4, "203.0.113.9", valid_from=T0, valid_until=T0 + timedelta(hours=1))])
    everything = TenantScope.everything()
    assert store.count_indicators(everything, IndicatorQuery(active_at=T0)) == 1
    assert store.count_indicators(everything, IndicatorQuery(active_at=T0 + timedelta(hours=1))) == 0


def test_sightings_go_up_the_tree_never_to_a_sibling(store: IntelStore) -> None:
    ind = indicator(I.IPV4, "203.0.113.77", publisher="hanoi", tlp=Tlp.GREEN)
    store.publish([ind])
    matcher = IntelMatcher(store.matchable(TenantScope.everything()), TREE)
    events = [make_event("danang-haichau", 1, source__ip="203.0.113.77"),
              make_event("danang-haichau", 2, source__ip="203.0.113.77"),
              make_event("btc", 3, source__ip="203.0.113.77")]
    alerts = matcher.process(events)
    assert store.record_sightings(sightings_of(alerts)) == 3
    assert store.record_sightings(sightings_of(matcher.matches(events))) == 0  # redelivered: counted once

    def seen(tenant: str) -> set[tuple[str, int]]:
        return {(s.tenant, s.count) for s in store.sightings(TREE.scope(tenant))}

    assert seen("national") == {("danang-haichau", 2), ("btc", 1)}
    assert seen("danang") == {("danang-haichau", 2)}
    assert seen("hanoi") == {("danang-haichau", 2), ("btc", 1)}  # the publisher sees where it was sighted
    assert seen("hanoi-bavi") == set()  # below the publisher, not above it
    assert seen("byt") == set() and seen("danang-haichau") == {("danang-haichau", 2)}
    [first] = store.sightings(TREE.scope("danang"))
    assert (first.first_seen, first.last_seen) == (events[0].timestamp, events[1].timestamp)


def test_sightings_of_an_amber_indicator_stay_within_the_tlp(store: IntelStore) -> None:
    ind = indicator(I.IPV4, "203.0.113.78", publisher="btc", tlp=Tlp.AMBER, shared_with=("danang",))
    store.publish([ind])
    alerts = IntelMatcher(store.matchable(TREE.scope("danang")), TREE).process(
        [make_event("danang", 1, source__ip="203.0.113.78"), make_event("byt", 2, source__ip="203.0.113.78")])
    assert {a.tenant for a in alerts} == {"danang"}  # byt's event is not matched: not shared with it
    store.record_sightings(sightings_of(alerts))
    assert [s.tenant for s in store.sightings(TREE.scope("btc"))] == ["danang"]
    assert store.sightings(TREE.scope("byt")) == []
    assert store.sightings(TREE.scope("hanoi")) == []


def test_matchable_includes_red_for_named_tenants_only(store: IntelStore) -> None:
    red = indicator(I.IPV4, "203.0.113.5", publisher="national", tlp=Tlp.RED, recipients=("hanoi-bavi",))
    store.publish([red])
    assert [i.id for i in store.matchable(TREE.scope("hanoi"))] == [red.id]
    assert list(store.matchable(TREE.scope("danang"))) == []
    assert [i.id for i in store.matchable(TenantScope.everything())] == [red.id]


def test_the_feed_reloads_when_something_is_published(store: IntelStore) -> None:
    from detections.intel import IntelFeed

    now = [0.0]
    feed = IntelFeed(store, TREE, check_every_s=30.0, clock=lambda: now[0])
    event = make_event("btc", 1, source__ip="203.0.113.77")
    assert feed.process([event]) == []
    store.publish([indicator(I.IPV4, "203.0.113.77")])
    assert feed.process([event]) == []  # not checked again before 30 s
    now[0] = 30.0
    assert len(feed.process([event])) == 1
    assert store.revision() == 1 and feed.refresh() is False
    assert feed.record(feed.process([event])) == 1
    assert [s.count for s in store.sightings(TREE.scope("btc"))] == [1]
