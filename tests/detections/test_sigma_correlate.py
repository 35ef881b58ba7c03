"""Streaming correlations: windows, groups, tenants, resets, determinism and bounded state.

The event_count tests run govsoc's shipped rules (ssh_auth_failure + ssh_brute_force: 5 failures
from one source.address within 5 minutes); the other types use inline rules.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from detections.sigma.load import builtin_rules_dir, load_rules
from detections.sigma.match import SigmaEngine
from pipeline.records import Alert, DetectionKind, Event, Severity

T0 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
BRUTE_FORCE_ID = "5aedc90e-e0f8-4d6e-b8ce-6a49557584fe"
ATTACKER = "203.0.113.77"


def sshd_event(n: int, second: float, *, source: str | None = ATTACKER, tenant: str = "hanoi",
               outcome: str = "failure", user: str = "root") -> Event:
    """An sshd login event as govsoc's auth log parser writes it; `n` makes its id."""
    verb = "Failed password" if outcome == "failure" else "Accepted password"
    line = f"sshd[{1000 + n}]: {verb} for {user} from {source} port 51234 ssh2"
    doc: dict[str, Any] = {
        "@timestamp": T0 + timedelta(seconds=second),
        "organization": {"id": tenant},
        "event": {"dataset": "system.auth", "module": "system", "category": ["authentication"],
                  "type": ["start"], "outcome": outcome, "action": "ssh_login", "original": line},
        "process": {"name": "sshd", "pid": 1000 + n},
        "user": {"name": user},
        "host": {"hostname": "combo"},
        "message": line,
    }
    if source is not None:
        doc["source"] = {"address": source, "ip": source, "port": 51234}
    return Event.create(doc, id_parts=["sshd-test", n])


def failures(seconds: list[float], *, first: int = 0, **kwargs: Any) -> list[Event]:
    return [sshd_event(first + i, second, **kwargs) for i, second in enumerate(seconds)]


def builtin_engine(**kwargs: Any) -> SigmaEngine:
    ruleset, errors = load_rules([builtin_rules_dir()])
    assert errors == []
    return SigmaEngine(ruleset, **kwargs)


def engine_for(tmp_path: Path, *documents: str) -> SigmaEngine:
    (tmp_path / "rules.yml").write_text("---\n".join(documents))
    ruleset, errors = load_rules([tmp_path])
    assert errors == []
    return SigmaEngine(ruleset)


def ids(events: list[Event]) -> tuple[str, ...]:
    return tuple(event.id for event in events)


# --- event_count: the shipped brute-force rule ----------------------------------------------------

def test_five_failures_within_five_minutes_raise_one_alert() -> None:
    events = failures([0, 60, 120, 180, 240])
    [alert] = builtin_engine().process(events)
    entity = {"source.address": ATTACKER}
    assert alert == Alert(
        id=Alert.make_id("hanoi", BRUTE_FORCE_ID, entity, events[0].id), tenant="hanoi",
        timestamp=T0 + timedelta(seconds=240), kind=DetectionKind.SIGMA_CORRELATION, rule_id=BRUTE_FORCE_ID,
        rule_title="SSH Brute Force From One Source", severity=Severity.HIGH, event_ids=ids(events),
        entity=entity, tags=("attack.credential-access", "attack.t1110.001"), description=alert.description)
    assert alert.description.startswith("Five or more SSH authentication failures")


def test_below_the_threshold_nothing_fires_and_single_failures_stay_quiet() -> None:
    assert builtin_engine().process(failures([0, 1, 2, 3])) == []


def test_the_window_is_five_minutes_inclusive() -> None:
    assert len(builtin_engine().process(failures([0, 75, 150, 225, 300]))) == 1
    assert builtin_engine().process(failures([0, 75, 150, 225, 300.5])) == []


def test_the_window_slides() -> None:
    engine = builtin_engine()
    events = failures([0, 100, 200, 300, 301, 302])
    assert engine.process(events[:5]) == []  # at 301 the failure at 0 has left the window
    [alert] = engine.process(events[5:])  # correlation state carries over batches
    assert alert.event_ids == ids(events[1:6])


def test_each_source_is_its_own_group() -> None:
    other = "198.51.100.9"
    events = [e for pair in zip(failures([0, 1, 2, 3]), failures([0, 1, 2, 3], first=10, source=other),
                                strict=True) for e in pair]
    engine = builtin_engine()
    assert engine.process(events) == []
    [alert] = engine.process(failures([4], first=20, source=other))
    assert alert.entity == {"source.address": other}
    assert alert.event_ids == (*ids(events[1::2]), alert.event_ids[-1])


def test_tenants_never_share_a_group() -> None:
    hanoi, danang = failures([0, 1, 2]), failures([0, 1, 2], tenant="danang")
    engine = builtin_engine()
    assert engine.process(hanoi + danang) == []  # 6 failures from one address, but 3 per tenant
    alerts = engine.process(failures([3, 4], first=3) + failures([3, 4], first=3, tenant="danang"))
    assert [(a.tenant, a.entity) for a in alerts] == [("hanoi", {"source.address": ATTACKER}),
                                                      ("danang", {"source.address": ATTACKER})]
    assert alerts[0].id != alerts[1].id


def test_firing_resets_the_group() -> None:
    events = failures([float(i) for i in range(10)])
    assert len(builtin_engine().process(events[:9])) == 1
    first, second = builtin_engine().process(events)
    assert (first.event_ids, second.event_ids) == (ids(events[:5]), ids(events[5:]))


def test_alert_ids_are_deterministic_and_a_replay_raises_nothing_new() -> None:
    events = failures([float(i) for i in range(12)]) + failures([0, 1, 2, 3, 4], first=50, source="192.0.2.1")
    engine = builtin_engine()
    once = engine.process(events)
    assert len(once) == 3
    assert [a.id for a in builtin_engine().process(events)] == [a.id for a in once]  # e.g. after a restart
    assert engine.process(events) == []  # redelivered to the same engine: every event was counted already
    [later] = engine.process(failures([12, 13, 14], first=12))  # new events still count
    assert later.event_ids == ids(failures([10, 11, 12, 13, 14], first=10))


def test_a_redelivered_event_is_not_counted_twice() -> None:
    events = failures([0, 1, 2, 3])
    assert builtin_engine().process(events + events[2:]) == []


def test_events_without_the_group_by_field_are_not_counted() -> None:
    assert builtin_engine().process(failures([0, 1, 2, 3, 4], source=None)) == []


def test_late_events_outside_the_window_are_ignored() -> None:
    engine = builtin_engine()
    assert engine.process(failures([1000, 1001, 1002, 1003])) == []
    assert engine.process(failures([0], first=9)) == []  # 1000 s late: outside the window
    [alert] = engine.process(failures([990], first=10))  # late, but inside it: counts, in time order
    assert alert.event_ids[0] == failures([990], first=10)[0].id


def test_state_is_bounded_by_evicting_the_least_recently_used_group() -> None:
    sources = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    round_robin = [sshd_event(10 * i + j, i, source=source)
                   for i in range(4) for j, source in enumerate(sources)]
    fifth = sshd_event(99, 5, source=sources[0])
    small = builtin_engine(max_groups=2)
    assert small.process(round_robin) == []
    assert small.correlation_groups == 2 and small.evicted_groups > 0
    assert small.process([fifth]) == []  # its four earlier failures were evicted with its group
    roomy = builtin_engine(max_groups=3)
    assert roomy.process(round_robin) == [] and roomy.evicted_groups == 0
    [alert] = roomy.process([fifth])
    assert alert.entity == {"source.address": sources[0]}


# --- the other types, inline rules ----------------------------------------------------------------

FAILURE = """title: failure
id: 11111111-1111-4111-8111-111111111111
name: failure
logsource: {product: linux, service: auth}
detection:
    sel: {event.outcome: failure, process.name: sshd}
    condition: sel
level: low
"""
SUCCESS = FAILURE.replace("failure", "success").replace("11111111-1111", "22222222-2222")


def correlation(kind: str, rules: str, condition: str = "", *, timespan: str = "10m", extra: str = "") -> str:
    return (f"title: {kind} test\nid: 33333333-3333-4333-8333-333333333333\nname: corr\n"
            f"correlation:\n    type: {kind}\n    rules: [{rules}]\n    group-by: [source.address]\n"
            f"    timespan: {timespan}\n{condition}{extra}level: high\n")


def test_gt_needs_one_more_than_its_count(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, FAILURE, correlation("event_count", "failure", "    condition: {gt: 2}\n"))
    assert engine.process(failures([0, 1])) == []
    assert len(engine.process(failures([2], first=2))) == 1


def test_value_count_counts_distinct_values(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, FAILURE,
                        correlation("value_count", "failure", "    condition: {gte: 3, field: user.name}\n"))
    events = [sshd_event(i, i, user=user) for i, user in enumerate(["root", "admin", "root", "admin"])]
    assert engine.process(events) == []
    [alert] = engine.process([sshd_event(9, 9, user="oracle")])
    assert alert.event_ids == (events[2].id, events[3].id, sshd_event(9, 9, user="oracle").id)


def test_temporal_needs_every_rule_in_any_order(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, FAILURE, SUCCESS, correlation("temporal", "failure, success"))
    success, failure = sshd_event(1, 0, outcome="success"), sshd_event(2, 60)
    assert engine.process([success]) == []
    [alert] = engine.process([failure])
    assert alert.event_ids == (success.id, failure.id)


def test_temporal_ordered_needs_the_order(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, FAILURE, SUCCESS, correlation("temporal_ordered", "failure, success"))
    assert engine.process([sshd_event(1, 0, outcome="success"), sshd_event(2, 60)]) == []
    [alert] = engine.process([sshd_event(3, 120, outcome="success")])
    assert alert.event_ids == (sshd_event(2, 60).id, sshd_event(3, 120, outcome="success").id)


def test_temporal_ordered_steps_must_fall_in_one_window(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, FAILURE, SUCCESS, correlation("temporal_ordered", "failure, success"))
    assert engine.process([sshd_event(1, 0), sshd_event(2, 601, outcome="success")]) == []


BRUTE_FORCE = correlation("event_count", "failure", "    condition: {gte: 5}\n", timespan="5m").replace(
    "name: corr", "name: brute_force").replace("33333333-3333", "44444444-4444")
BRUTE_FORCE_THEN_SUCCESS = (
    "title: SSH brute force followed by a successful login\nid: 55555555-5555-4555-8555-555555555555\n"
    "name: brute_force_success\ncorrelation:\n    type: temporal_ordered\n    rules: [brute_force, success]\n"
    "    group-by: [source.address]\n    timespan: 30m\n    generate: true\nlevel: critical\n")


def test_a_correlation_of_a_correlation(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, FAILURE, SUCCESS, BRUTE_FORCE, BRUTE_FORCE_THEN_SUCCESS)
    attempts = failures([0, 10, 20, 30, 40])
    [brute] = engine.process(attempts)  # still alerts: the chain says `generate: true`
    login = sshd_event(9, 1200, outcome="success")
    success, chain = engine.process([login])
    assert (success.kind, success.rule_title) == (DetectionKind.SIGMA, "success")  # generate: true again
    assert chain.rule_title == "SSH brute force followed by a successful login"
    assert (chain.severity, chain.entity) == (Severity.CRITICAL, {"source.address": ATTACKER})
    assert chain.event_ids == (*brute.event_ids, login.id)


def test_a_login_before_the_brute_force_is_no_chain(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, FAILURE, SUCCESS, BRUTE_FORCE, BRUTE_FORCE_THEN_SUCCESS)
    alerts = engine.process([sshd_event(9, 0, outcome="success"), *failures([10, 20, 30, 40, 50])])
    assert [a.rule_title for a in alerts] == ["success", "event_count test"]


def test_aliases_group_different_fields_of_different_rules(tmp_path: Path) -> None:
    aliases = "    aliases:\n        peer: {failure: source.address, success: user.name}\n"
    aliased = correlation("temporal", "failure, success", extra=aliases).replace("[source.address]", "[peer]")
    engine = engine_for(tmp_path, FAILURE, SUCCESS, aliased)
    [alert] = engine.process([sshd_event(1, 0), sshd_event(2, 1, outcome="success", user=ATTACKER)])
    assert alert.entity == {"peer": ATTACKER}


def test_alerts_carry_at_most_a_thousand_event_ids(tmp_path: Path) -> None:
    big = correlation("event_count", "failure", "    condition: {gte: 1200}\n")
    engine = engine_for(tmp_path, FAILURE, big)
    events = failures([i / 10 for i in range(1200)])
    [alert] = engine.process(events)
    assert alert.event_ids == ids(events[:1000])
    assert alert.id == Alert.make_id("hanoi", "33333333-3333-4333-8333-333333333333",
                                     {"source.address": ATTACKER}, events[0].id)


@pytest.mark.parametrize("condition", ["    condition: {lt: 3}\n", "    condition: {eq: 3}\n"])
def test_conditions_that_need_the_window_to_close_are_refused(tmp_path: Path, condition: str) -> None:
    (tmp_path / "rules.yml").write_text(FAILURE + "---\n" + correlation("event_count", "failure", condition))
    ruleset, [error] = load_rules([tmp_path])
    assert "needs the window to close" in error.reason
    assert ruleset.correlations == ()
