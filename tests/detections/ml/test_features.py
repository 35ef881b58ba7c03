"""Window features on hand-checked windows, the window lifecycle, and fuzzed field values."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from detections.ml.features import (
    FEATURE_NAMES,
    EntityKind,
    FeatureRow,
    WindowFeaturizer,
    kinds_of,
    shannon_entropy,
    split_domain,
)
from tests.detections.ml.factory import DAY1, WINDOW, auth, dns, flow, make, normal_day, scan, spray, tunnel


def rows_of(events: list[Any], **kwargs: Any) -> list[FeatureRow]:
    featurizer = WindowFeaturizer(window=WINDOW, **kwargs)
    return featurizer.add(events) + featurizer.flush()


def named(row: FeatureRow) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES[row.kind], row.values, strict=True))


def only(rows: list[FeatureRow], kind: EntityKind) -> FeatureRow:
    [row] = [r for r in rows if r.kind is kind]
    return row


def test_feature_names_are_unique_per_kind_and_cover_every_kind() -> None:
    assert set(FEATURE_NAMES) == set(EntityKind)
    for names in FEATURE_NAMES.values():
        assert len(set(names)) == len(names)


def test_auth_window_counts_failures_users_and_success_after_failure() -> None:
    at = DAY1 + timedelta(hours=9)
    events = [auth(at, 0, "10.0.2.1", "alice", "failure"), auth(at + timedelta(seconds=5), 1, "10.0.2.1", "alice",
              "failure"), auth(at + timedelta(seconds=9), 2, "10.0.2.1", "alice", "success"),
              auth(at + timedelta(seconds=20), 3, "10.0.2.1", "bob", "failure")]
    rows = rows_of(events)
    assert named(only(rows, EntityKind.AUTH_SOURCE)) == {
        "auth_attempts": 4, "auth_failures": 3, "auth_failure_ratio": 0.75, "auth_distinct_users": 2,
        "auth_success_after_failures": 1}
    alice = [r for r in rows if r.kind is EntityKind.AUTH_USER and r.entity == "alice"][0]
    assert named(alice)["auth_distinct_sources"] == 1
    assert named(alice)["auth_success_after_failures"] == 1
    assert (alice.entity_field, alice.event_ids) == ("user.name", tuple(e.id for e in events[:3]))


def test_flow_window_sums_bytes_and_counts_destinations_ports_failures() -> None:
    at = DAY1 + timedelta(hours=10)  # Monday 10:00 UTC: business hours in UTC
    events = [flow(at, 0, "10.0.0.1", "192.0.2.1", 443, out=100, inb=1000),
              flow(at + timedelta(seconds=1), 1, "10.0.0.1", "192.0.2.1", 80, out=50, inb=10),
              flow(at + timedelta(seconds=2), 2, "10.0.0.1", "192.0.2.2", 443, out=0, inb=0, outcome="failure")]
    values = named(only(rows_of(events, timezone="UTC"), EntityKind.FLOW_SOURCE))
    assert values == {"flow_count": 3, "flow_bytes_out": 150, "flow_bytes_in": 1010, "flow_packets": 60,
                      "flow_distinct_destinations": 2, "flow_distinct_ports": 2, "flow_failed_ratio": 1 / 3,
                      "flow_new_destination_ratio": 0.0, "flow_off_hours_share": 0.0}


def test_off_hours_follow_the_configured_zone() -> None:
    at = DAY1 + timedelta(hours=14)  # 14:00 UTC is 21:00 in Hanoi
    values = named(only(rows_of([flow(at, 0, "10.0.0.1", "192.0.2.1", 443)], timezone="Asia/Ho_Chi_Minh"),
                        EntityKind.FLOW_SOURCE))
    assert values["flow_off_hours_share"] == 1.0


def test_new_destinations_are_counted_against_the_entity_history() -> None:
    first = [flow(DAY1, 0, "10.0.0.1", "192.0.2.1", 443), flow(DAY1, 1, "10.0.0.1", "192.0.2.2", 443)]
    later = DAY1 + WINDOW
    second = [flow(later, 2, "10.0.0.1", "192.0.2.1", 443), flow(later, 3, "10.0.0.1", "198.51.100.9", 443),
              flow(later, 4, "10.0.0.1", "198.51.100.10", 443)]
    rows = rows_of(first + second)
    assert [named(r)["flow_new_destination_ratio"] for r in rows] == [0.0, pytest.approx(2 / 3)]


def test_connection_state_marks_failed_flows() -> None:
    event = make(DAY1, 0, {"event.dataset": "zeek.flow", "source.ip": "10.0.0.1", "destination.ip": "192.0.2.1",
                           "network.connection.state": "REJ"})
    assert named(only(rows_of([event]), EntityKind.FLOW_SOURCE))["flow_failed_ratio"] == 1.0


def test_dns_window_measures_names_entropy_nxdomain_and_subdomains() -> None:
    events = [dns(DAY1, 0, "10.0.1.1", "www.example.com"), dns(DAY1, 1, "10.0.1.1", "aaaa.example.com", "NXDOMAIN"),
              dns(DAY1, 2, "10.0.1.1", "portal.hanoi.gov.vn")]
    values = named(only(rows_of(events), EntityKind.DNS_CLIENT))
    assert values["dns_queries"] == 3
    assert values["dns_nxdomain_ratio"] == pytest.approx(1 / 3)
    assert values["dns_max_name_length"] == len("portal.hanoi.gov.vn")
    assert values["dns_mean_name_length"] == pytest.approx((15 + 16 + 19) / 3)
    assert values["dns_max_entropy"] == pytest.approx(math.log2(6))  # "portal": 6 distinct characters
    assert values["dns_max_subdomains_per_domain"] == 2  # www and aaaa under example.com


@pytest.mark.parametrize(("name", "expected"), [
    ("a.b.example.com", ("a.b", "example.com")),
    ("portal.hanoi.gov.vn", ("portal", "hanoi.gov.vn")),
    ("example.com.", ("", "example.com")),
    ("localhost", ("", "localhost")),
])
def test_split_domain(name: str, expected: tuple[str, str]) -> None:
    assert split_domain(name) == expected


def test_shannon_entropy() -> None:
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == 2.0


def test_a_window_closes_when_time_moves_past_it_and_late_events_are_dropped() -> None:
    featurizer = WindowFeaturizer(window=WINDOW)
    assert featurizer.add([flow(DAY1, 0, "10.0.0.1", "192.0.2.1", 443)]) == []
    closed = featurizer.add([flow(DAY1 + WINDOW, 1, "10.0.0.2", "192.0.2.1", 443)])
    assert [(r.entity, r.start, r.end) for r in closed] == [("10.0.0.1", DAY1, DAY1 + WINDOW)]
    featurizer.add([flow(DAY1 + 2 * WINDOW, 2, "10.0.0.1", "192.0.2.1", 443),
                    flow(DAY1 + WINDOW, 3, "10.0.0.1", "192.0.2.1", 443)])  # late for 10.0.0.1's open window
    assert featurizer.late_events == 1


def test_open_windows_are_bounded() -> None:
    featurizer = WindowFeaturizer(window=WINDOW, max_open=2)
    rows = featurizer.add([flow(DAY1, i, f"10.0.0.{i}", "192.0.2.1", 443) for i in range(5)])
    assert len(rows) == 3 and len(featurizer.flush()) == 2


def test_events_of_other_kinds_feed_nothing() -> None:
    assert kinds_of(make(DAY1, 0, {"event.dataset": "system.syslog", "message": "hi"})) == ()
    assert rows_of([make(DAY1, 0, {"event.category": "authentication"})]) == []  # no source, no user


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
FIELDS = ["event.category", "event.dataset", "event.outcome", "event.type", "source.ip", "source.address",
          "user.name", "destination.ip", "destination.port", "source.bytes", "destination.bytes",
          "network.packets", "network.connection.state", "dns.question.name", "dns.response_code", "host.name"]
KINDS = [{"event.category": ["authentication"]}, {"event.dataset": "flow"}, {"dns.question.name": "x.example.com"}]


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KINDS), st.dictionaries(st.sampled_from(FIELDS), JSON),
                          st.integers(0, 3600)), max_size=12))
@example([({"event.dataset": "flow"}, {"source.ip": "10.0.0.1", "source.bytes": float("nan"),
                                      "destination.port": [443, "x"]}, 0)])
@example([({"dns.question.name": "x"}, {"source.ip": ["a"], "dns.question.name": "..."}, 0)])
def test_arbitrary_field_values_never_raise(events: list[tuple[dict[str, Any], dict[str, Any], int]]) -> None:
    built = [make(DAY1 + timedelta(seconds=offset), i, {**kind, **fields})
             for i, (kind, fields, offset) in enumerate(events)]
    for row in rows_of(sorted(built, key=lambda e: e.timestamp)):
        assert len(row.values) == len(FEATURE_NAMES[row.kind])
        assert all(math.isfinite(v) for v in row.values)


def test_a_syn_never_answered_counts_as_a_failed_flow() -> None:
    """The packet sensor's TCP history: `S` then `r` (rejected) or `S` alone (unanswered) failed; `Sh...` not."""
    events = [make(DAY1, i, {"event.dataset": "flow", "source.ip": "10.0.0.1", "destination.ip": f"10.0.0.{i + 2}",
                              "destination.port": 445, "govsoc.flow.history": history})
              for i, history in enumerate(["Sr", "S", "ShADadFf", "ShAr"])]
    row = only(rows_of(events), EntityKind.FLOW_SOURCE)
    assert named(row)["flow_failed_ratio"] == 0.5


def test_close_due_closes_only_windows_that_ended_before_the_grace() -> None:
    featurizer = WindowFeaturizer(window=WINDOW)
    assert featurizer.add([dns(DAY1 + timedelta(minutes=1), 0, "10.0.1.1", "a.example.com")]) == []
    assert featurizer.close_due(DAY1 + WINDOW, grace=timedelta(minutes=1)) == []
    [row] = featurizer.close_due(DAY1 + WINDOW + timedelta(minutes=1), grace=timedelta(minutes=1))
    assert (row.start, row.end, featurizer.open_windows) == (DAY1, DAY1 + WINDOW, 0)


def test_a_flooded_window_is_closed_early_and_rows_keep_few_ids() -> None:
    from detections.ml.features import WindowLimits

    events = [flow(DAY1 + timedelta(milliseconds=i), i, "10.0.0.1", f"10.9.0.{i % 200}", 80) for i in range(25)]
    featurizer = WindowFeaturizer(window=WINDOW, limits=WindowLimits(max_window_events=10, max_event_ids=3))
    rows = featurizer.add(events) + featurizer.flush()
    assert [named(r)["flow_count"] for r in rows] == [10.0, 10.0, 5.0]
    assert all(len(r.event_ids) == 3 for r in rows) and featurizer.closed_early == 2
    held = WindowFeaturizer(window=WINDOW, limits=WindowLimits(max_held_events=4))
    held.add([auth(DAY1, i, f"10.0.0.{i}", "u", "failure") for i in range(5)])
    assert held.held_events <= 4


def test_a_snapshot_restored_anywhere_gives_the_rows_of_one_pass() -> None:
    """Cuts inside windows of every kind (a scan, a tunnel, a spray in flight), JSON in between."""
    day = DAY1 + timedelta(days=1)
    events = sorted(normal_day(DAY1, seed=1) + normal_day(day, seed=2) + scan(day + timedelta(hours=3))
                    + tunnel(day + timedelta(hours=3, minutes=1)) + spray(day + timedelta(hours=3, minutes=2)),
                    key=lambda e: e.timestamp)
    whole = WindowFeaturizer(window=WINDOW, timezone="Asia/Ho_Chi_Minh")
    expected = whole.add(events) + whole.flush()
    cuts = [i for i, e in enumerate(events) if e.timestamp >= day + timedelta(hours=3, minutes=2, seconds=30)][:1]
    for cut in [len(events) // 3, *cuts]:
        first = WindowFeaturizer(window=WINDOW, timezone="Asia/Ho_Chi_Minh")
        rows = first.add(events[:cut])
        snapshot = json.loads(json.dumps(first.snapshot()))  # plain JSON values only
        assert len(snapshot["open"]) == first.open_windows > 0
        assert "organization" not in json.dumps(snapshot)  # no whole event in it
        second = WindowFeaturizer(window=WINDOW, timezone="Asia/Ho_Chi_Minh")
        second.restore(snapshot)
        assert second.held_events == first.held_events
        rows += second.add(events[cut:]) + second.flush()
        assert rows == expected


def test_a_snapshot_of_other_windows_or_a_malformed_one_is_refused_and_changes_nothing() -> None:
    featurizer = WindowFeaturizer(window=WINDOW)
    featurizer.add([flow(DAY1, 0, "10.0.0.1", "10.9.0.1", 80)])
    snapshot = featurizer.snapshot()
    other = WindowFeaturizer(window=timedelta(minutes=10))
    with pytest.raises(ValueError, match=r"window_s: the snapshot has 300.0 s windows, this featurizer 600 s"):
        other.restore(snapshot)
    broken = json.loads(json.dumps(snapshot))
    broken["open"][0]["state"][2] = ["many"]
    fresh = WindowFeaturizer(window=WINDOW)
    with pytest.raises(ValueError, match=r"open\[0\]: flow sums: expected 3 numbers"):
        fresh.restore(broken)
    assert fresh.open_windows == 0
