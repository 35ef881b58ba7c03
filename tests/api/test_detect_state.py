"""Detection checkpoints: compact signed JSON, refused when unsigned, foreign, altered or old, and small.

- A record round-trips under its deployment's key and holds no pickle; anything else (another
  key, a flipped byte, format 1's pickle even when signed, another partition's record) is refused
  before it is parsed, and the partition then starts empty at the delivered offset.
- A checkpoint over the size limit keeps the most recently used groups that fit and is counted
  (`oversized`); the step fails only when not even an empty state fits.
- Size at the scale of the 200,000-event acceptance run: measured and printed (docs/scaling.md).
- The e2e's SIGKILL and broker restart in process (issue 11): two workers over the e2e's input
  with two ingest batches published twice, a worker killed between checkpoint and commit,
  commits lost, checkpoint saves failing; the alerts on the bus are exactly the embedded run's.
"""

from __future__ import annotations

import pickle
import stat
import zlib
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from api.demo.authlog import Attack, AuthLogSpec, generate_auth_log
from api.wiring.detect_state import (
    MAX_CHECKPOINT_BYTES,
    DetectStateError,
    PartitionedDetect,
    Where,
    dump_state,
    load_state,
    partition_state,
    restore_partition_state,
    state_key,
)
from detections.sigma.load import builtin_rules_dir, load_rules
from detections.sigma.match import SigmaEngine
from detections.stream import DetectStep
from pipeline.bus import Message, topics
from pipeline.bus.checkpoints import MemoryCheckpoints
from pipeline.bus.keys import entity_key
from pipeline.bus.memory import MemoryBus
from pipeline.errors import BusError
from pipeline.records import Alert, Event
from tests.servers.scale import START, auth_log, embedded_alerts, parse_events

WHERE = Where("detect", topics.EVENTS, 2)


def engine() -> SigmaEngine:
    ruleset, _ = load_rules([builtin_rules_dir()])
    return SigmaEngine(ruleset)


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> list[Event]:
    """Three hours at the rate of the acceptance run's 200,000-line day (tests/servers/scale.py:
    `auth_log(lines=200_000, attacks=100)`): 25,000 lines and the 13 brute-force bursts that fall
    in them, so the same state per window (state grows with a window's contents, not the day's)."""
    step = timedelta(hours=24) / 100
    spec = AuthLogSpec(host="portal", start=START, lines=25_000, duration=timedelta(hours=3), attacks=tuple(
        Attack(source=f"203.0.113.{i + 1}", at=START + step * i + timedelta(minutes=7)) for i in range(13)))
    path = tmp_path_factory.mktemp("day") / "auth.log"
    path.write_text("\n".join(generate_auth_log(spec)[:25_000]) + "\n", encoding="utf-8")
    return parse_events(path)


def messages(events: Sequence[Event], partition: int = 2, start: int = 0) -> list[Message]:
    return [Message(topics.EVENTS, partition, start + n, e.tenant, e.to_json()) for n, e in enumerate(events)]


def detect(key: bytes, checkpoints: MemoryCheckpoints, **options: int) -> PartitionedDetect:
    return PartitionedDetect(engine, lambda e, ml: DetectStep(e, MemoryBus(), ml=ml), checkpoints, "detect", key,
                             **options)


def test_a_checkpoint_round_trips_under_its_key_and_holds_no_pickle(tmp_path: Path, day: list[Event]) -> None:
    key = state_key(tmp_path / "detect-state.key")
    assert stat.S_IMODE((tmp_path / "detect-state.key").stat().st_mode) == 0o600
    assert state_key(tmp_path / "detect-state.key") == key  # read back, not made again
    source = engine()
    source.process(day[:3000])
    record = dump_state(partition_state(source), WHERE, 3000, key)
    assert record[32:36] == b"GDS2" and orjson.loads(zlib.decompress(record[36:]))["offset"] == 3000
    target = engine()
    restore_partition_state(target, load_state(record, WHERE, 3000, key))
    assert target.correlation_groups == source.correlation_groups > 0


def test_a_forged_foreign_or_altered_checkpoint_is_refused_unread(tmp_path: Path) -> None:
    key = state_key(tmp_path / "a.key")

    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("this must never run",))

    good = dump_state(partition_state(engine()), WHERE, 7, key)
    altered = good[:-1] + bytes([good[-1] ^ 1])
    for record in (b"\0" * 32 + pickle.dumps((1, Boom(), 0)), dump_state({}, WHERE, 7, state_key(tmp_path / "b.key")),
                   altered):
        with pytest.raises(DetectStateError, match="refused unread"):
            load_state(record, WHERE, 7, key)


def test_format_1_pickles_are_refused_even_when_signed(tmp_path: Path) -> None:
    import hashlib
    import hmac

    key = state_key(tmp_path / "a.key")
    body = pickle.dumps((1, {}, 0))
    with pytest.raises(DetectStateError, match=r"older format \(1, a pickle\): refused unread"):
        load_state(hmac.new(key, body, hashlib.sha256).digest() + body, WHERE, 0, key)


def test_another_partitions_or_offsets_record_is_refused(tmp_path: Path) -> None:
    key = state_key(tmp_path / "a.key")
    record = dump_state(partition_state(engine()), WHERE, 10, key)
    with pytest.raises(DetectStateError, match="signed for govsoc.events/2"):
        load_state(record, Where("detect", topics.EVENTS, 3), 10, key)
    with pytest.raises(DetectStateError, match="at offset 10"):
        load_state(record, WHERE, 11, key)  # the header's offset was changed


def test_a_refused_checkpoint_starts_the_partition_empty_at_the_delivered_offset(tmp_path: Path,
                                                                                 day: list[Event]) -> None:
    checkpoints = MemoryCheckpoints()
    writer = detect(state_key(tmp_path / "a.key"), checkpoints)
    writer(messages(day[:500]))
    assert checkpoints.load("detect", topics.EVENTS, 2) is not None
    reader = detect(state_key(tmp_path / "b.key"), checkpoints)  # another deployment's key
    reader(messages(day[500:600], start=500))
    assert (reader.refused, reader.restored) == (1, 0)
    saved = checkpoints.load("detect", topics.EVENTS, 2)
    assert saved is not None and saved[0] == 600  # it went on from the delivered offset, and saved


def test_a_checkpoint_over_the_limit_keeps_the_newest_groups_that_fit_and_says_so(tmp_path: Path,
                                                                                    day: list[Event]) -> None:
    key = state_key(tmp_path / "a.key")
    checkpoints = MemoryCheckpoints()
    step = detect(key, checkpoints, max_checkpoint_bytes=3000)
    step(messages(day[:3000]))
    saved = checkpoints.load("detect", topics.EVENTS, 2)
    assert saved is not None and len(saved[1]) <= 3000 and step.oversized == 1
    live = step._parts[(topics.EVENTS, 2)].engine
    restored = engine()
    restore_partition_state(restored, load_state(saved[1], WHERE, 3000, key))
    assert 0 < restored.correlation_groups < live.correlation_groups  # the live engine keeps them all
    assert restored.evicted_groups == live.correlation_groups - restored.correlation_groups


def test_a_limit_below_an_empty_checkpoint_fails_the_step_and_saves_nothing(tmp_path: Path, day: list[Event]) -> None:
    checkpoints = MemoryCheckpoints()
    step = detect(state_key(tmp_path / "a.key"), checkpoints, max_checkpoint_bytes=100)
    with pytest.raises(DetectStateError, match="over the 100-byte limit even without correlation groups"):
        step(messages(day[:500]))
    assert checkpoints.load("detect", topics.EVENTS, 2) is None


def test_a_partition_at_acceptance_scale_checkpoints_far_under_the_limit(tmp_path: Path, day: list[Event],
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Every event in ONE partition (the worst case: the acceptance run spreads them over four)."""
    checkpoints = MemoryCheckpoints()
    step = detect(state_key(tmp_path / "a.key"), checkpoints)
    sizes: list[int] = []
    alerts: list[Alert] = []
    for start in range(0, len(day), 1000):
        alerts.extend(step(messages(day[start:start + 1000], start=start)))
        sizes.append(step.checkpoint_bytes[(topics.EVENTS, 2)])
    with capsys.disabled():  # the measurement docs/scaling.md quotes
        print(f"\ncheckpoint bytes over {len(day)} events ({len(alerts)} alerts): "  # noqa: T201
              f"max {max(sizes)}, last {sizes[-1]}, limit {MAX_CHECKPOINT_BYTES}")
    assert any(a.kind.value == "sigma_correlation" for a in alerts)
    assert max(sizes) < MAX_CHECKPOINT_BYTES // 10


def test_a_checkpoint_with_a_version_1_sigma_snapshot_is_refused(tmp_path: Path) -> None:
    """Version 1 snapshots predate the correlator's lateness bound (issue 11): not trusted to be exact."""
    key = state_key(tmp_path / "a.key")
    old = {**partition_state(engine()), "sigma": {**engine().snapshot(), "version": 1, "watermark": None}}
    with pytest.raises(DetectStateError, match="snapshot version 1; this govsoc reads 2"):
        restore_partition_state(engine(), load_state(dump_state(old, WHERE, 0, key), WHERE, 0, key))


# --- the e2e's kill and broker restart, in process ---------------------------------------------------

class FlakyCheckpoints(MemoryCheckpoints):
    """Memory checkpoints whose saves number `failing` (1-based) fail, as during a broker restart."""

    def __init__(self, failing: set[int]) -> None:
        super().__init__()
        self._failing = failing
        self.saves = 0

    def save(self, group: str, topic: str, partition: int, offset: int, state: bytes) -> None:
        self.saves += 1
        if self.saves in self._failing:
            raise BusError("the broker is restarting")
        super().save(group, topic, partition, offset, state)


def redelivered_topic(events: Sequence[Event], ingest: int, redo: range, partitions: int) -> list[list[Message]]:
    """The events topic after the ingest worker published the batches `redo` twice (it had not
    committed them when the broker restarted), keyed and partitioned as the bus does."""
    batches = [events[i:i + ingest] for i in range(0, len(events), ingest)]
    order = [*range(redo.stop), *redo, *range(redo.stop, len(batches))]
    bus = MemoryBus(partitions)
    logs: list[list[Message]] = [[] for _ in range(partitions)]
    for n in order:
        for event in batches[n]:
            p = bus.partition_for(entity_key(event.tenant, event.doc), 0)
            logs[p].append(Message(topics.EVENTS, p, len(logs[p]), event.tenant, event.to_json()))
    return logs


def run_detect_workers(logs: list[list[Message]], poll: int, kills: set[int], restarts: set[int],
                       failing: set[int], key: bytes) -> list[Alert]:
    """Two workers, each owning half of the partitions, poll `poll` messages per partition, run
    the step, and commit. At a poll in `kills` the first worker dies after its step (checkpoint
    saved, offsets not committed) and a new one takes its partitions from the committed offsets;
    at one in `restarts` nobody's commit of that poll lands; a failed save is retried from the
    committed offsets. The alerts are read from the bus, where the steps published them."""
    bus, checkpoints = MemoryBus(), FlakyCheckpoints(failing)
    ruleset, _ = load_rules([builtin_rules_dir()])

    started: list[PartitionedDetect] = []

    def worker() -> PartitionedDetect:
        started.append(PartitionedDetect(lambda: SigmaEngine(ruleset), lambda e, ml: DetectStep(e, bus, ml=ml),
                                         checkpoints, "detect", key))
        return started[-1]

    half = len(logs) // 2
    owners = [(worker(), range(half)), (worker(), range(half, len(logs)))]
    committed = [0] * len(logs)
    for n in range(max(len(log) for log in logs) // poll * 3 + 10):
        for w, (step, owned) in enumerate(owners):
            batch = [m for p in owned for m in logs[p][committed[p]:committed[p] + poll]]
            if not batch:
                continue
            try:
                step(batch)
            except BusError:
                continue  # not committed: the next poll starts again from the committed offsets
            if w == 0 and n in kills:
                owners[0] = (worker(), owned)  # SIGKILL after the checkpoint, before the commit
            elif n not in restarts:
                for p in owned:
                    committed[p] += len(logs[p][committed[p]:committed[p] + poll])
    assert committed == [len(log) for log in logs]
    assert sum(step.restored for step in started) >= len(kills | restarts | failing)  # takeovers happened
    consumer = bus.consumer([topics.ALERTS], "check")
    return [Alert.from_json(m.value) for m in consumer.poll(100_000)]


@pytest.fixture(scope="module")
def e2e_day(tmp_path_factory: pytest.TempPathFactory) -> list[Event]:
    """The e2e's default input: tests/e2e/test_scale_out.py, E2E_EVENTS=10000."""
    return parse_events(auth_log(tmp_path_factory.mktemp("e2e") / "auth.log", lines=10_000, attacks=5))


@pytest.mark.parametrize(("poll", "redo", "kills", "restarts", "failing"), [
    (250, range(2, 4), {3}, {5}, set()),
    (100, range(0, 6), {1, 7, 20}, {4, 9}, {3, 17, 40}),
    (1000, range(4, 5), {0}, {1}, {2}),
])
def test_takeovers_over_a_redelivered_topic_store_exactly_the_embedded_alerts(
        tmp_path: Path, e2e_day: list[Event], poll: int, redo: range, kills: set[int], restarts: set[int],
        failing: set[int]) -> None:
    """What the e2e's SIGKILL and broker restart do to the detect stage (issue 11), with the
    events topic holding two ingest batches (4.8 h of event time) twice."""
    logs = redelivered_topic(e2e_day, 1000, redo, partitions=4)
    alerts = run_detect_workers(logs, poll, kills, restarts, failing, state_key(tmp_path / "a.key"))
    stored = {a.id: a.to_json() for a in alerts}
    expected = {a.id: a.to_json() for a in embedded_alerts(e2e_day)}
    assert sorted(set(stored) - set(expected)) == [] and sorted(set(expected) - set(stored)) == []
    assert all(a.to_json() == expected[a.id] for a in alerts)  # every copy of an alert the same
