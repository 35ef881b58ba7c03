"""Correlation snapshots: a restored engine raises exactly the alerts the original would have.

The property, on the Sigma specification's example and on random streams of every correlation
type (and a correlation of a correlation): process a prefix, take `snapshot()`, send it through
JSON, `restore` it into a fresh engine, feed the rest; the alerts (ids and content) equal those of
one engine that saw the whole stream. Streams are out of order by at most `JITTER`, within the
`lateness` the snapshot assumes (snapshot.py), and repeat some events (redeliveries).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from detections.sigma.load import load_rules
from detections.sigma.match import SigmaEngine
from detections.sigma.snapshot import FORMAT, VERSION, SnapshotError
from pipeline.records import Alert, Event
from sensors.parsers.windows import parse_windows_json, windows_document
from tests.detections.test_sigma_correlation_spec import SPEC_EXAMPLE, logon

T0 = datetime(2026, 11, 23, 7, tzinfo=UTC)
JITTER = timedelta(minutes=10)  # how far back an event may arrive behind the newest one
LATENESS = JITTER  # what the snapshots assume (>= JITTER: exact; equal, to test the edge)

RULES = """\
title: Failed logon
id: 0f1a0000-0000-4000-8000-000000000001
name: failed
logsource: {product: windows, service: security}
detection: {selection: {EventID: 4625}, condition: selection}
---
title: Successful logon
id: 0f1a0000-0000-4000-8000-000000000002
name: success
logsource: {product: windows, service: security}
detection: {selection: {EventID: 4624}, condition: selection}
---
title: Three failures of a user
id: 0f1a0000-0000-4000-8000-000000000003
name: failures
correlation: {type: event_count, rules: [failed], group-by: [User], timespan: 5m, condition: {gte: 3}}
level: medium
---
title: Failures from three addresses
id: 0f1a0000-0000-4000-8000-000000000004
correlation:
    type: value_count
    rules: [failed]
    group-by: [User]
    timespan: 10m
    condition: {gte: 3, field: IpAddress}
level: high
---
title: A failure and a success
id: 0f1a0000-0000-4000-8000-000000000005
correlation: {type: temporal, rules: [failed, success], group-by: [User], timespan: 2m}
level: low
---
title: A failure, then a success
id: 0f1a0000-0000-4000-8000-000000000006
correlation: {type: temporal_ordered, rules: [failed, success], group-by: [User], timespan: 3m}
level: low
---
title: Three failures, then a success
id: 0f1a0000-0000-4000-8000-000000000007
correlation: {type: temporal_ordered, rules: [failures, success], group-by: [User], timespan: 10m, generate: true}
level: high
"""


def engine_of(tmp_path: Path, text: str, **expiry: Any) -> SigmaEngine:
    rules = tmp_path / "rules"
    rules.mkdir(parents=True, exist_ok=True)
    (rules / "rules.yml").write_text(text)
    ruleset, errors = load_rules([rules])
    assert errors == []
    return SigmaEngine(ruleset, **expiry)


def logon_from(n: int, code: int, user: str, address: str, at: datetime) -> Event:
    system: dict[str, Any] = {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}}, "EventID": code,
        "Channel": "Security", "Computer": "dc01.mof.example", "EventRecordID": n,
        "TimeCreated": {"#attributes": {"SystemTime": at.strftime("%Y-%m-%dT%H:%M:%SZ")}},
    }
    data = {"User": user, "IpAddress": address}
    doc = windows_document(parse_windows_json({"Event": {"System": system, "EventData": data}}))
    doc["organization"] = {"id": "btc"}
    return Event.create(doc, id_parts=["snapshot", n])


def as_json(alerts: list[Alert]) -> list[bytes]:
    return [alert.to_json() for alert in alerts]


def restored_run(make: Any, events: list[Event], split: int, batch: int = 3,
                 lateness: timedelta = LATENESS) -> list[Alert]:
    """Alerts of `events[:split]` on one engine, then of the rest on a fresh engine restored from
    its snapshot (sent through JSON bytes, as a checkpoint is)."""
    first = make()
    alerts = [alert for i in range(0, split, batch) for alert in first.process(events[i:min(i + batch, split)])]
    snapshot = orjson.loads(orjson.dumps(first.snapshot(lateness=lateness)))
    second = make()
    second.restore(snapshot)
    return alerts + [alert for i in range(split, len(events), batch) for alert in second.process(events[i:i + batch])]


def test_the_spec_example_fires_the_same_after_a_restore_at_every_point(tmp_path: Path) -> None:
    (tmp_path / "spec.yml").write_text(SPEC_EXAMPLE)
    ruleset, errors = load_rules([tmp_path])
    assert errors == []
    events = ([logon(i, 4625, "alice", i * 10) for i in range(10)] + [logon(100, 4624, "alice", 150)]
              + [logon(200 + i, 4625, "bob", 160 + i * 5) for i in range(12)] + [logon(300, 4624, "bob", 260)])
    expected = SigmaEngine(ruleset).process(events)
    assert sum(a.rule_id == "b180ead8-d58f-40b2-ae54-c8940995b9b6" for a in expected) == 2
    for split in range(len(events) + 1):
        assert as_json(restored_run(lambda: SigmaEngine(ruleset), events, split, batch=2)) == as_json(expected)


_STEPS = st.lists(st.tuples(st.sampled_from([4624, 4625, 4625]), st.sampled_from(["alice", "bob", "chi"]),
                            st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]),
                            st.integers(0, 60), st.integers(0, int(JITTER.total_seconds())),
                            st.integers(0, 9)),
                  min_size=1, max_size=120)


def stream(steps: list[tuple[int, str, str, int, int, int]]) -> list[Event]:
    """Events of `steps` (code, user, address, seconds after the previous, seconds late, repeat?):
    a repeat (1 in 5) sends one of the last five events again, as a redelivery does."""
    events: list[Event] = []
    base = T0
    for n, (code, user, address, gap, late, repeat) in enumerate(steps):
        base += timedelta(seconds=gap)
        if repeat < 2 and events:
            events.append(events[-1 - gap % min(5, len(events))])
        else:
            events.append(logon_from(n, code, user, address, base - timedelta(seconds=late)))
    return events


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("snapshot")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=_STEPS, where=st.floats(0, 1))
@example(steps=[(4625, "alice", "10.0.0.1", 10, 0, 5)] * 3 + [(4624, "alice", "10.0.0.1", 10, 0, 5)], where=0.5)
def test_a_restored_engine_raises_exactly_the_original_alerts(rules_dir: Path, steps: list[Any], where: float) -> None:
    ruleset = engine_of(rules_dir, RULES).ruleset
    events = stream(steps)
    expected = SigmaEngine(ruleset).process(events)
    split = round(where * len(events))
    assert as_json(restored_run(lambda: SigmaEngine(ruleset), events, split)) == as_json(expected)


def test_a_snapshot_is_plain_json_with_ids_and_times_not_events(tmp_path: Path) -> None:
    engine = engine_of(tmp_path, RULES)
    engine.process([logon_from(i, 4625, "alice", f"10.0.0.{i}", T0 + timedelta(seconds=i)) for i in range(2)])
    snapshot = engine.snapshot()
    assert snapshot["format"] == FORMAT and snapshot["version"] == VERSION
    assert orjson.loads(orjson.dumps(snapshot)) == snapshot  # only str, int, list, dict, None
    text = orjson.dumps(snapshot).decode()
    assert "dc01.mof.example" not in text and "winlog" not in text  # no event documents
    assert "10.0.0.1" in text  # the value_count window's values are kept


def test_groups_past_their_window_and_the_lateness_are_dropped_here_and_in_the_snapshot(tmp_path: Path) -> None:
    engine = engine_of(tmp_path, RULES, recent_hits=-1)  # old in arrival at once (test_sigma_snapshot_replay: why both)
    engine.process([logon_from(1, 4625, "alice", "10.0.0.1", T0)])
    assert engine.correlation_groups == 4  # event_count, value_count, temporal, temporal_ordered
    engine.process([logon_from(2, 4625, "bob", "10.0.0.1", T0 + timedelta(hours=2))])
    snapshot = engine.snapshot(lateness=LATENESS)
    assert {tuple(group[2]) for group in snapshot["groups"]} == {("bob",)}
    assert engine.correlation_groups == 4  # alice's groups are gone from the engine too
    assert len(engine.snapshot(T0 + timedelta(days=1))["groups"]) == 0  # a `now` far ahead expires all


def test_the_engines_lateness_setting_keeps_groups_that_far_behind(tmp_path: Path) -> None:
    """`detections.correlation_lateness` reaches the correlator: with 3 h, alice's groups two
    hours behind bob's hit stay; a snapshot's own `lateness` never goes below the engine's."""
    engine = engine_of(tmp_path, RULES, recent_hits=-1, lateness=timedelta(hours=3))
    engine.process([logon_from(1, 4625, "alice", "10.0.0.1", T0)])
    engine.process([logon_from(2, 4625, "bob", "10.0.0.1", T0 + timedelta(hours=2))])
    assert {tuple(group[2]) for group in engine.snapshot()["groups"]} == {("alice",), ("bob",)}
    assert {tuple(group[2]) for group in engine.snapshot(lateness=timedelta(0))["groups"]} == {("alice",), ("bob",)}


def test_a_changed_correlation_starts_empty_and_the_others_keep_their_windows(tmp_path: Path) -> None:
    engine = engine_of(tmp_path, RULES)
    engine.process([logon_from(i, 4625, "alice", "10.0.0.1", T0 + timedelta(seconds=i)) for i in range(2)])
    snapshot = engine.snapshot()
    changed = engine_of(tmp_path / "b", RULES.replace("condition: {gte: 3}}", "condition: {gte: 4}}"))
    assert changed.restore(snapshot) == 1  # the event_count group: its threshold changed
    assert changed.correlation_groups == engine.correlation_groups - 1


@pytest.mark.parametrize(("change", "where"), [
    ({"format": "pickle"}, "snapshot.format"),
    ({"version": 99}, "snapshot.version"),
    ({"groups": [["x", "btc", ["alice"]]]}, "snapshot.groups[0]"),
    ({"evicted": "0"}, "snapshot.evicted"),
])
def test_a_malformed_snapshot_is_refused_with_the_field_and_changes_nothing(
        tmp_path: Path, change: dict[str, Any], where: str) -> None:
    engine = engine_of(tmp_path, RULES)
    engine.process([logon_from(1, 4625, "alice", "10.0.0.1", T0)])
    snapshot = {**engine.snapshot(), **change}
    with pytest.raises(SnapshotError, match="^" + re.escape(where)):
        engine.restore(snapshot)
    assert engine.correlation_groups == 4


def test_a_bad_hit_deep_in_a_window_names_its_path(tmp_path: Path) -> None:
    engine = engine_of(tmp_path, RULES)
    engine.process([logon_from(1, 4625, "alice", "10.0.0.1", T0)])
    snapshot = engine.snapshot()
    count = next(n for n, group in enumerate(snapshot["groups"]) if "hits" in group[3])
    snapshot["groups"][count][3]["hits"][0] = ["yesterday", ["id"]]
    with pytest.raises(SnapshotError, match=rf"snapshot\.groups\[{count}\]\.window\.hits\[0\]"):
        engine.restore(snapshot)


def test_a_hit_as_late_as_the_lateness_still_meets_its_window_after_a_restore(tmp_path: Path) -> None:
    """The edge of expiry: a group is kept while a hit `LATENESS` behind the newest can reach it."""
    ruleset = engine_of(tmp_path, RULES).ruleset
    events = [logon_from(1, 4625, "alice", "10.0.0.1", T0),
              logon_from(2, 4625, "alice", "10.0.0.2", T0 + timedelta(minutes=1)),
              logon_from(3, 4625, "bob", "10.0.0.1", T0 + timedelta(minutes=12)),
              logon_from(4, 4625, "alice", "10.0.0.3", T0 + timedelta(minutes=12) - LATENESS)]
    expected = SigmaEngine(ruleset).process(events)
    assert {a.rule_title for a in expected} >= {"Failures from three addresses", "Three failures of a user"}
    assert as_json(restored_run(lambda: SigmaEngine(ruleset), events, 3)) == as_json(expected)
