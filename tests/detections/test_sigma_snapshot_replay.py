"""Snapshots against the uninterrupted engine on the scale-out e2e's own input, redeliveries included.

What `tests/e2e/test_scale_out.py -k survives` does, in process and deterministic: the generated
auth log of that test (tests/servers/scale.py: 10,000 lines, 5 brute-force bursts) is published in
ingest batches to 4 partitions by the bus's key (`pipeline.bus.keys.entity_key`, MemoryBus's
partitioner); after a broker restart the ingest worker publishes again the batches it had not
committed (at-least-once), so the events topic holds them twice. Each partition has one engine
that takes a snapshot after every detect batch (as a checkpoint does), and is replaced by an
engine restored from the snapshot at varying points; a takeover may also redo the last batch from
the checkpoint before it (a crash after publishing, before saving). Every run must store exactly
the alerts, ids and content, of one embedded engine over the file read once.

The regression (issue 11): at 10,000 events a day an ingest batch of 1,000 spans 2.4 hours of
event time, so a redelivered batch arrived more than the snapshot's hour of lateness behind the
partition's newest event; the snapshot had expired the groups those events belonged to (in the
live engine too), and a checkpoint inside a redelivered burst made the rest of it count in a
fresh window again: extra alerts with other first events. Groups now expire only when also old
in arrival (`recent_hits`). Batches missing from the first publication (`Run.lost`: a burst
first reaching its partition hours late, as in a failed e2e run) must still count, so hits are
never ignored for being late. Engines here keep groups for few hits, so that they do expire.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import orjson
import pytest

from detections.sigma.load import RuleSet, builtin_rules_dir, load_rules
from detections.sigma.match import SigmaEngine
from pipeline.bus.keys import entity_key
from pipeline.bus.memory import MemoryBus
from pipeline.records import Alert, DetectionKind, Event
from tests.servers.scale import auth_log, embedded_alerts, parse_events

PARTITIONS = 4
LINES, ATTACKS = 10_000, 5  # the e2e's defaults: E2E_EVENTS=10000, attacks=max(4, EVENTS // 2000)


@dataclass(frozen=True, slots=True)
class Run:
    """One way the e2e can go: ingest batches of `ingest` events, batches `redo_from..redo_to`
    (inclusive) published again after batch `redo_to`, batch `lost` (one of those) missing from
    the first publication (so its events first arrive hours late); detect batches of `detect`
    messages per partition; the engine replaced by a restored one after the batches in
    `takeovers`, redoing the batch before the takeover from the previous checkpoint when
    `redo_last`."""

    ingest: int
    redo_from: int
    redo_to: int
    detect: int
    takeovers: frozenset[int]
    redo_last: bool = False
    lost: int | None = None


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    rules, issues = load_rules([builtin_rules_dir()])
    assert not issues
    return rules


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> list[Event]:
    return parse_events(auth_log(tmp_path_factory.mktemp("replay") / "auth.log", LINES, ATTACKS))


@pytest.fixture(scope="module")
def expected(events: list[Event]) -> dict[str, bytes]:
    alerts = by_id(embedded_alerts(events))
    assert sum(orjson.loads(a)["kind"] == DetectionKind.SIGMA_CORRELATION.value for a in alerts.values()) >= 20
    return alerts


def by_id(alerts: Sequence[Alert]) -> dict[str, bytes]:
    """Alerts as the store keeps them: one per id (a redelivery upserts the same document)."""
    out: dict[str, bytes] = {}
    for alert in alerts:
        document = alert.to_json()
        assert out.setdefault(alert.id, document) == document, f"alert {alert.id} raised with other content"
    return out


def events_topic(events: list[Event], run: Run) -> list[list[Event]]:
    """Each partition's messages, in offset order, after the ingest worker's redelivery."""
    batches = [events[i:i + run.ingest] for i in range(0, len(events), run.ingest)]
    order = [n for n in range(run.redo_to + 1) if n != run.lost] + [*range(run.redo_from, len(batches))]
    bus = MemoryBus(PARTITIONS)  # its partitioner: crc32 of the key, as tests/api/test_workers.py runs
    partitions: list[list[Event]] = [[] for _ in range(PARTITIONS)]
    for n in order:
        for event in batches[n]:
            partitions[bus.partition_for(entity_key(event.tenant, event.doc), 0)].append(event)
    return partitions


def checkpoint(engine: SigmaEngine) -> dict[str, object]:
    """What a checkpoint carries: the snapshot through JSON bytes (it expires groups in `engine`)."""
    loaded: dict[str, object] = orjson.loads(orjson.dumps(engine.snapshot()))
    return loaded


def engine_keeping(ruleset: RuleSet, recent: int) -> SigmaEngine:
    """An engine whose correlator keeps a touched group for `recent` hits (the setting
    `detections.correlation_recent_hits`): small here, so that groups do expire within the 10,000
    events."""
    return SigmaEngine(ruleset, recent_hits=recent)


def detect_partition(ruleset: RuleSet, messages: list[Event], run: Run, recent: int) -> tuple[list[Alert], int]:
    """The partition's alerts, and how many groups its snapshots expired."""
    engine, alerts, expired = engine_keeping(ruleset, recent), [], 0
    saved: list[dict[str, object]] = [checkpoint(engine)]  # the checkpoint after each batch
    batches = [messages[i:i + run.detect] for i in range(0, len(messages), run.detect)]
    for n, batch in enumerate(batches):
        alerts.extend(engine.process(batch))
        held = engine.correlation_groups
        saved.append(checkpoint(engine))
        expired += held - engine.correlation_groups
        if n in run.takeovers:
            if run.redo_last:  # the checkpoint of batch n was never saved: redo it from n - 1's
                engine = engine_keeping(ruleset, recent)
                engine.restore(saved[n])
                alerts.extend(engine.process(batch))
                saved[n + 1] = checkpoint(engine)
            engine = engine_keeping(ruleset, recent)
            engine.restore(saved[n + 1])
    return alerts, expired


def run_alerts(ruleset: RuleSet, events: list[Event], run: Run) -> tuple[dict[str, bytes], int]:
    """The alerts of `run`, and how many groups the snapshots expired. Engines keep a touched
    group for as many hits as the redelivered batches make: the most that can come between an
    event and its redelivery; small, so that groups do expire within this day (the default,
    10,000, outlasts it)."""
    counter = SigmaEngine(ruleset)
    counter.process(events[run.redo_from * run.ingest:(run.redo_to + 1) * run.ingest])
    recent = counter._correlator.clock
    alerts, expired = [], 0
    for messages in events_topic(events, run):
        raised, dropped = detect_partition(ruleset, messages, run, recent)
        alerts.extend(raised)
        expired += dropped
    return by_id(alerts), expired


def differences(got: dict[str, bytes], expected: dict[str, bytes]) -> dict[str, list[str]]:
    return {"extra": sorted(set(got) - set(expected)), "missing": sorted(set(expected) - set(got)),
            "changed": sorted(key for key in set(got) & set(expected) if got[key] != expected[key])}


NONE = frozenset[int]()
RUNS = [
    # the e2e's failing case: two 1,000-event batches (4.8 h of event time) published again
    Run(1000, 2, 3, 250, NONE),
    Run(1000, 2, 3, 250, frozenset(range(100))),  # a restored engine after every batch
    Run(1000, 0, 1, 1000, frozenset({1, 3}), redo_last=True),
    Run(1000, 4, 4, 97, frozenset({5, 11, 30})),
    Run(700, 1, 3, 333, frozenset(range(0, 100, 2)), redo_last=True),
    Run(250, 10, 12, 250, frozenset({4, 9})),
    Run(1500, 2, 2, 500, frozenset({0, 2})),
    # as in a failed e2e run's partition 0 (batch 4 first arrived after batch 7, hours late),
    # with smaller batches so that groups still expire: 1.8 h and 2.4 h late
    Run(250, 30, 34, 250, frozenset({2, 9}), lost=31),
    Run(250, 20, 24, 100, frozenset(range(0, 100, 3)), redo_last=True, lost=20),
]


def run_id(run: Run) -> str:
    return (f"ingest{run.ingest}-redo{run.redo_from}-{run.redo_to}-detect{run.detect}-takeovers{len(run.takeovers)}"
            f"{'-redo_last' if run.redo_last else ''}{f'-lost{run.lost}' if run.lost is not None else ''}")


CLEAN: dict[str, list[str]] = {"extra": [], "missing": [], "changed": []}


@pytest.mark.parametrize("run", RUNS, ids=[run_id(run) for run in RUNS])
def test_restored_engines_over_a_redelivered_topic_store_exactly_the_embedded_alerts(
        ruleset: RuleSet, events: list[Event], expected: dict[str, bytes], run: Run) -> None:
    alerts, expired = run_alerts(ruleset, events, run)
    assert differences(alerts, expected) == CLEAN
    assert expired > 0  # the snapshots did drop groups: the case that went wrong


def test_random_cut_points_and_batch_sizes(ruleset: RuleSet, events: list[Event], expected: dict[str, bytes]) -> None:
    """A loop over seeds (each a different run, the same every time): ingest and detect batch
    sizes, which batches are published again (one of them maybe lost at first), where takeovers
    happen."""
    for seed in range(8):
        rng = random.Random(seed)
        ingest = rng.choice([100, 500, 1000, 1500, 2500])
        redo_to = rng.randrange(-(-len(events) // ingest))
        redo_from = rng.randint(max(0, redo_to - 3), redo_to)
        run = Run(ingest, redo_from, redo_to, rng.choice([50, 250, 400, 1000]),
                  frozenset(rng.sample(range(40), rng.randint(0, 6))), redo_last=rng.random() < 0.5,
                  lost=rng.choice([None, rng.randint(redo_from, redo_to)]))
        assert differences(run_alerts(ruleset, events, run)[0], expected) == CLEAN, run


@pytest.mark.parametrize("run", [RUNS[0], RUNS[-2]], ids=run_id)
def test_the_same_topic_on_an_engine_that_never_snapshots_raises_the_embedded_alerts(
        ruleset: RuleSet, events: list[Event], expected: dict[str, bytes], run: Run) -> None:
    """The reference the snapshots must match: redeliveries and late first deliveries alone
    change nothing."""
    alerts = [a for messages in events_topic(events, run) for a in SigmaEngine(ruleset).process(messages)]
    assert differences(by_id(alerts), expected) == CLEAN


def test_a_group_expires_only_when_old_in_event_time_and_in_arrival(ruleset: RuleSet, events: list[Event]) -> None:
    """A burst replayed hours late still finds its group while few hits came since (and raises
    nothing new); once the group is old on both counts a snapshot drops it; a burst of a new
    address hours late counts, before and after a restore."""
    burst = [e for e in events if e.get("source.address") == "203.0.113.1"]
    later = [variant(e, "hanoi", timedelta(hours=3), "198.51.100.1") for e in burst]
    engine = engine_keeping(ruleset, 100)
    assert correlations(engine.process(burst)) == 8  # 40 failures, 5 to an alert
    assert correlations(engine.process(later)) == 8
    checkpoint(engine)  # 3 hours ahead, but only 40 hits since the first burst's group was touched
    assert correlations(engine.process(burst)) == 0  # the redelivery is remembered
    engine.process([variant(e, "hanoi", timedelta(hours=3), f"198.51.100.{n + 2}") for n, e in enumerate(burst * 3)])
    held = engine.correlation_groups
    restored = engine_keeping(ruleset, 100)
    restored.restore(checkpoint(engine))  # 120 hits since: the first burst's group is dropped
    assert engine.correlation_groups == restored.correlation_groups == held - 1
    late = [variant(e, "hanoi", timedelta(hours=-2), "198.51.100.200") for e in burst]
    assert correlations(engine.process(late)) == correlations(restored.process(late)) == 8


def correlations(alerts: Sequence[Alert]) -> int:
    return sum(alert.kind == DetectionKind.SIGMA_CORRELATION for alert in alerts)


def variant(event: Event, tenant: str, shift: timedelta, address: str) -> Event:
    doc = orjson.loads(event.to_json())
    doc["organization"] = {"id": tenant}
    doc["source"] = {**doc.get("source", {}), "address": address, "ip": address}
    doc["@timestamp"] = (event.timestamp + shift).isoformat()
    return Event.create(doc, id_parts=[tenant, address, event.id, int(shift.total_seconds())])


def test_the_old_snapshot_version_is_refused(ruleset: RuleSet) -> None:
    from detections.sigma.snapshot import SnapshotError

    engine = SigmaEngine(ruleset)
    old = {**engine.snapshot(), "version": 1, "watermark": None}
    with pytest.raises(SnapshotError, match="snapshot version 1; this govsoc reads 2"):
        engine.restore(old)

