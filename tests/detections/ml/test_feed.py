"""MlFeed, online: cold start, reload when the registry changes (at most every check), the clock's
flush for a quiet tenant (with the window's asset), bounded windows, drift per feature, a refused
file, snapshot and restore for checkpoints, and the detect step."""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from config.settings import AssetConfig, TenantConfig, TenantKind
from config.tenants import TenantTree
from detections.intel import IntelFeed
from detections.ml import EntityKind, MlConfig, MlFeed, MlStateError, ModelRegistry, collect, train_and_save
from detections.sigma.load import RuleSet
from detections.sigma.match import SigmaEngine
from detections.stream import DetectStep
from pipeline.bus import Bus, Message, topics
from pipeline.bus.memory import MemoryBus
from pipeline.enrich import Enricher
from pipeline.records import Alert, DetectionKind, Event
from tests.detections.ml.factory import DAY1, DAY2, TENANT, normal_day, scan, spray, tunnel

ATTACK_AT = DAY2 + timedelta(hours=10, minutes=1)
TRAINED_AT = DAY2
ENRICHER = Enricher(TenantTree.from_config([
    TenantConfig(id="national", name="N", kind=TenantKind.NATIONAL),
    TenantConfig(id=TENANT, name="HN", parent="national", assets=(
        AssetConfig(id="ws-05", name="Workstation 5", kind="workstation", addresses=("10.0.0.5",), security_level=3),
        AssetConfig(id="dns-clients", name="Office LAN", kind="network", addresses=("10.0.1.0/24",),
                    security_level=4))),
]))
"""The real enricher: 10.0.0.5 (the scanner) and the DNS clients are assets of the tenant."""


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry holding the factory tenant's four models, trained on DAY1."""
    models = tmp_path_factory.mktemp("models")
    found = collect(TENANT, [normal_day(DAY1, seed=1)], MlConfig(), "UTC")
    outcomes = train_and_save(found, ModelRegistry(models), MlConfig(), now=TRAINED_AT, source="test")
    assert all(o.model is not None for o in outcomes)
    return models


@pytest.fixture(scope="module")
def day2() -> list[Event]:
    return normal_day(DAY2, seed=2)


def feed_of(models: Path, clock: Clock | None = None, **config: object) -> MlFeed:
    return MlFeed(ModelRegistry(models), [TENANT, "danang"], MlConfig.model_validate(config),
                  clock=clock or Clock())


def upto(events: Sequence[Event], at: datetime) -> list[Event]:
    return [e for e in events if e.timestamp < at]


def test_a_tenant_without_models_raises_nothing_and_says_cold_start(tmp_path: Path, day2: list[Event]) -> None:
    feed = feed_of(tmp_path / "models")
    assert feed.process(day2 + scan(ATTACK_AT)) == [] and feed.flush(DAY2 + timedelta(days=1)) == []
    status = {(s.tenant, s.kind): s for s in feed.status()}
    assert len(status) == 2 * len(EntityKind)
    flows = status[(TENANT, EntityKind.FLOW_SOURCE)]
    assert flows.state == "cold start" and flows.windows > 100 and flows.alerts == 0
    assert "no model: no ML alerts" in flows.detail and "govsoc ml train" in flows.detail
    assert status[("danang", EntityKind.DNS_CLIENT)].windows == 0


def test_models_saved_while_running_score_after_the_next_check(tmp_path: Path, trained_dir: Path,
                                                               day2: list[Event]) -> None:
    models, clock = tmp_path / "models", Clock()
    feed = feed_of(models, clock, check_every_s=30)
    feed.process(upto(day2, DAY2 + timedelta(hours=9)))
    registry = ModelRegistry(models)
    for kind in EntityKind:  # a training finishes meanwhile
        model = ModelRegistry(trained_dir).load(TENANT, kind)
        assert model is not None
        registry.save(model)
    clock.now = 10.0
    before = [e for e in day2 if DAY2 + timedelta(hours=9) <= e.timestamp < ATTACK_AT]
    feed.process(before)
    assert feed.models == {}  # not looked at yet: checks are at most every 30 s
    clock.now = 31.0
    rest = sorted([e for e in day2 if e.timestamp >= ATTACK_AT] + scan(ATTACK_AT), key=lambda e: e.timestamp)
    alerts = feed.process(rest) + feed.flush(DAY2 + timedelta(days=2))
    assert len(feed.models) == len(EntityKind)
    [found] = [a for a in alerts if a.entity == {"source.ip": "10.0.0.5"} and a.timestamp >= ATTACK_AT
               and a.timestamp < ATTACK_AT + timedelta(minutes=5)]
    assert (found.kind, found.rule_id, found.tenant) == (DetectionKind.ML, "ml.flow_source", TENANT)
    assert "Why: flow_distinct_destinations" in found.description and "typical" in found.description
    assert found.event_ids and set(found.event_ids) <= {e.id for e in rest}
    status = {(s.tenant, s.kind): s for s in feed.status()}
    assert status[(TENANT, EntityKind.FLOW_SOURCE)].state == "scoring"
    assert status[(TENANT, EntityKind.FLOW_SOURCE)].alerts >= 1
    assert status[("danang", EntityKind.FLOW_SOURCE)].state == "cold start"


def test_flush_scores_the_last_window_of_a_tenant_that_fell_quiet(trained_dir: Path) -> None:
    feed = feed_of(trained_dir, flush_grace=timedelta(minutes=1))
    attack = tunnel(ATTACK_AT)
    assert feed.process(attack) == []  # the window is still open: nothing came after it
    end = ATTACK_AT.replace(minute=5, second=0)
    assert feed.flush(end) == []  # within the grace period
    [alert] = feed.flush(end + timedelta(minutes=1))
    assert alert.rule_id == "ml.dns_client" and alert.entity == {"source.ip": "10.0.1.3"}
    assert feed.featurizer.open_windows == 0


def test_windows_stay_within_the_memory_bounds(trained_dir: Path) -> None:
    feed = feed_of(trained_dir, max_window_events=100, max_held_events=250)
    alerts = feed.process(scan(ATTACK_AT, targets=1_000))
    assert feed.featurizer.held_events <= 250
    assert feed.featurizer.closed_early >= 9
    assert alerts and all(len(a.event_ids) <= 100 for a in alerts)


def test_drift_is_small_on_a_normal_day_and_names_the_feature_that_moved(trained_dir: Path,
                                                                          day2: list[Event]) -> None:
    feed = feed_of(trained_dir)
    feed.process(day2)
    assert feed.drift(TENANT, EntityKind.FLOW_SOURCE)[0].shift < 1.0
    assert feed.drift("danang", EntityKind.FLOW_SOURCE) == ()
    heavier = [Event.from_document({**e.doc, "source": {**e.doc["source"], "bytes": e.doc["source"]["bytes"] * 50}})
               for e in normal_day(DAY2 + timedelta(days=1), seed=3) if e.get("event.dataset") == "flow"]
    feed.process(heavier)
    feed.flush(DAY2 + timedelta(days=3))
    moved = feed.drift(TENANT, EntityKind.FLOW_SOURCE)
    assert moved[0].feature == "flow_bytes_out" and moved[0].shift > 3.0
    [status] = [s for s in feed.status() if s.tenant == TENANT and s.kind is EntityKind.FLOW_SOURCE]
    assert status.max_drift == moved[0].shift


def test_a_file_altered_by_one_byte_is_refused_and_the_previous_model_keeps_scoring(tmp_path: Path,
                                                                                     trained_dir: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    original = ModelRegistry(trained_dir).load(TENANT, EntityKind.FLOW_SOURCE)
    assert original is not None
    path = registry.save(original)
    clock = Clock()
    feed = MlFeed(registry, [TENANT], MlConfig(check_every_s=0), clock=clock)
    assert feed.refresh() and (TENANT, EntityKind.FLOW_SOURCE) in feed.models
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    assert feed.refresh()
    assert feed.models[(TENANT, EntityKind.FLOW_SOURCE)] is not None
    [status] = [s for s in feed.status() if s.kind is EntityKind.FLOW_SOURCE]
    assert status.state == "scoring" and "refused" in status.detail and "checksum mismatch" in status.detail
    fresh = MlFeed(registry, [TENANT], MlConfig(), clock=clock)  # a restart: nothing to fall back on
    [status] = [s for s in fresh.status() if s.kind is EntityKind.FLOW_SOURCE]
    assert status.state == "refused" and "checksum mismatch" in status.detail
    assert fresh.process(scan(ATTACK_AT)) + fresh.flush(ATTACK_AT + timedelta(hours=1)) == []


def test_a_model_trained_on_other_windows_is_refused(tmp_path: Path, day2: list[Event]) -> None:
    config = MlConfig(window=timedelta(minutes=10))
    found = collect(TENANT, [day2], config, "UTC")
    train_and_save(found, ModelRegistry(tmp_path), config, now=TRAINED_AT, source="test")
    feed = feed_of(tmp_path)
    assert feed.models == {}
    assert {s.state for s in feed.status() if s.tenant == TENANT} == {"refused"}
    assert all("trained on 600 s windows, the feed uses 300 s" in s.detail for s in feed.status() if s.tenant == TENANT)


def test_disabled_feed_does_nothing(trained_dir: Path) -> None:
    feed = feed_of(trained_dir, enabled=False)
    assert feed.process(scan(ATTACK_AT)) == [] and feed.flush(ATTACK_AT + timedelta(hours=1)) == []


class _DetectStepWithMl(DetectStep):
    """The detect step with the lines proposed for detections/stream.py (`ml=`), until it has them."""

    def __init__(self, engine: SigmaEngine, bus: Bus, intel: IntelFeed | None = None,
                 ml: MlFeed | None = None) -> None:
        super().__init__(engine, bus, intel=intel)
        self._ml = ml

    def __call__(self, messages: Sequence[Message]) -> list[Alert]:
        alerts = super().__call__(messages)
        if self._ml is None:
            return alerts
        events = [Event.from_json(m.value) for m in messages]
        raised = self._ml.process(events)
        if raised:
            self._bus.publish(topics.ALERTS, [(a.tenant, a.to_json()) for a in raised])
        return [*alerts, *raised]


def detect_step(bus: Bus, feed: MlFeed) -> DetectStep:
    engine = SigmaEngine(RuleSet())
    if "ml" in inspect.signature(DetectStep).parameters:  # once stream.py takes the feed
        return DetectStep(engine, bus, ml=feed)  # type: ignore[call-arg, unused-ignore]
    return _DetectStepWithMl(engine, bus, ml=feed)


def test_the_detect_step_publishes_the_feeds_alerts(trained_dir: Path, day2: list[Event]) -> None:
    bus = MemoryBus()
    step = detect_step(bus, feed_of(trained_dir))
    events = sorted(upto(day2, ATTACK_AT + timedelta(minutes=30)) + scan(ATTACK_AT), key=lambda e: e.timestamp)
    bus.publish(topics.EVENTS, [(e.tenant, e.to_json()) for e in events])
    consumer = bus.consumer([topics.EVENTS], "detect")
    raised: list[Alert] = []
    while batch := consumer.poll(500):
        raised.extend(step(batch))
        consumer.commit()
    published = [Alert.from_json(m.value) for m in bus.consumer([topics.ALERTS], "check").poll(1000)]
    assert {a.id for a in published} == {a.id for a in raised}
    assert any(a.rule_id == "ml.flow_source" and a.entity == {"source.ip": "10.0.0.5"} for a in published)


def test_flushed_alerts_carry_the_asset_of_the_windows_events(trained_dir: Path) -> None:
    feed = feed_of(trained_dir)
    assert feed.process([ENRICHER.enrich(e) for e in tunnel(ATTACK_AT)]) == []
    [flushed] = feed.flush(ATTACK_AT + timedelta(minutes=10))  # no batch of events to look the asset up in
    assert (flushed.rule_id, flushed.asset_id, flushed.security_level) == ("ml.dns_client", "dns-clients", 4)
    later = tunnel(ATTACK_AT + timedelta(minutes=9))[:1]  # closes the scan's window: event-driven
    scanned = feed.process([ENRICHER.enrich(e) for e in scan(ATTACK_AT) + later])
    assert [(a.rule_id, a.asset_id, a.security_level) for a in scanned] == [("ml.flow_source", "ws-05", 3)]
    unenriched = feed_of(trained_dir)
    unenriched.process(tunnel(ATTACK_AT))
    assert [(a.asset_id, a.security_level) for a in unenriched.flush(ATTACK_AT + timedelta(minutes=10))] == [
        (None, None)]


def test_a_restored_snapshot_raises_the_alerts_of_one_uninterrupted_feed(trained_dir: Path,
                                                                           day2: list[Event]) -> None:
    attacks = scan(ATTACK_AT) + tunnel(ATTACK_AT + timedelta(minutes=1)) + spray(ATTACK_AT + timedelta(minutes=2))
    events = [ENRICHER.enrich(e) for e in sorted(day2 + attacks, key=lambda e: e.timestamp)]
    end = DAY2 + timedelta(days=1, hours=1)
    whole = feed_of(trained_dir)
    expected = whole.process(events) + whole.flush(end)
    assert {a.rule_id for a in expected} >= {"ml.flow_source", "ml.dns_client"}
    assert any(a.asset_id == "ws-05" for a in expected)
    for cut in (ATTACK_AT + timedelta(minutes=2, seconds=30), DAY2 + timedelta(hours=17, seconds=90)):
        first = feed_of(trained_dir)
        alerts = first.process(upto(events, cut))
        text = json.dumps(first.snapshot())  # JSON as it is: str, int, float, list, dict only
        assert first.featurizer.open_windows > 0 and "organization" not in text  # windows, not events
        second = feed_of(trained_dir)
        second.restore(json.loads(text))
        alerts += second.process([e for e in events if e.timestamp >= cut]) + second.flush(end)
        assert [a.to_json() for a in alerts] == [a.to_json() for a in expected]
        assert [(s.windows, s.alerts) for s in second.status()] == [(s.windows, s.alerts) for s in whole.status()]


def test_a_snapshot_of_another_version_or_a_broken_one_is_refused_with_the_field(trained_dir: Path) -> None:
    feed = feed_of(trained_dir)
    feed.process(scan(ATTACK_AT, targets=20))
    snapshot = feed.snapshot()
    fresh = feed_of(trained_dir)
    with pytest.raises(MlStateError, match="version 99, this govsoc reads 1"):
        fresh.restore({**snapshot, "version": 99})
    broken = json.loads(json.dumps(snapshot))
    broken["featurizer"]["open"][0]["event_ids"] = "abc"
    with pytest.raises(MlStateError, match=r"featurizer.open\[0\]: event_ids: expected a list of strings"):
        fresh.restore(broken)
    assert fresh.featurizer.open_windows == 0


def test_a_partition_taken_over_mid_day_raises_the_ml_alerts_of_one_uninterrupted_feed(
        trained_dir: Path, day2: list[Event]) -> None:
    """Scale-out: each partition of a detect worker has its ML feed, checkpointed with its Sigma
    state (api/wiring/detect_state.py). A worker dies after the attack began; the partition's new
    owner restores the open windows from the checkpoint and, with the clock's tick, raises what
    one feed over the whole day raises. The feeds share the models (`SharedRegistry`)."""
    from api.wiring.detect_state import PartitionedDetect
    from detections.ml import SharedRegistry
    from pipeline.bus.checkpoints import MemoryCheckpoints

    attacks = scan(ATTACK_AT) + tunnel(ATTACK_AT + timedelta(minutes=1)) + spray(ATTACK_AT + timedelta(minutes=2))
    events = [ENRICHER.enrich(e) for e in sorted(day2 + attacks, key=lambda e: e.timestamp)]
    end = DAY2 + timedelta(days=1, hours=1)
    whole = feed_of(trained_dir)
    expected = whole.process(events) + whole.flush(end)
    messages = [Message(topics.EVENTS, 0, n, TENANT, e.to_json()) for n, e in enumerate(events)]
    cut = len(upto(events, ATTACK_AT + timedelta(minutes=2, seconds=30)))
    bus, checkpoints, registry = MemoryBus(), MemoryCheckpoints(), SharedRegistry(trained_dir)
    ruleset = RuleSet()

    def worker() -> PartitionedDetect:
        return PartitionedDetect(lambda: SigmaEngine(ruleset), lambda e, ml: DetectStep(e, bus, ml=ml), checkpoints,
                                 "detect", b"k" * 32, make_ml=lambda: MlFeed(registry, [TENANT, "danang"], MlConfig()))

    dying = worker()
    for start in range(0, cut, 500):
        dying(messages[start:min(start + 500, cut)])
    successor = worker()
    for start in range(cut, len(messages), 500):
        successor(messages[start:start + 500])
    successor.tick(end, owned={(topics.EVENTS, 0)})
    assert successor.restored == 1 and successor.ml_refused == 0
    raised = [Alert.from_json(m.value) for m in bus.consumer([topics.ALERTS], "check").poll(100_000)]
    ml = sorted((a for a in raised if a.kind == DetectionKind.ML), key=lambda a: a.id)
    assert [a.to_json() for a in ml] == [a.to_json() for a in sorted(expected, key=lambda a: a.id)]
    feeds = [successor._parts[(topics.EVENTS, 0)].ml, MlFeed(registry, [TENANT, "danang"], MlConfig())]
    for feed in feeds:
        assert feed is not None
        feed.refresh()
    first, second = (f.models for f in feeds if f is not None)
    assert first and all(first[key] is second[key] for key in first)  # loaded once, shared
