"""Detect workers around a real Kafka-protocol broker (noida-db): each alert raised once.

- Two detect workers in one consumer group share the events topic's partitions; together they
  raise every alert the embedded engine raises over the same input, each exactly once.
- A worker that dies after publishing its alerts and saving its checkpoint but before its commit
  (the worst moment) hands its partitions to another, which neither skips nor repeats an alert:
  the correlation windows it had open continue from the checkpoint.

The workers are `StageProcess`es (what `govsoc worker detect` runs) on threads of this process;
tests/e2e/ runs them as real processes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from api.wiring import Stage, StageProcess, build_stage
from api.wiring.detect_state import PartitionedDetect
from config.load import load_settings
from config.settings import Settings
from pipeline.bus import Message, open_bus, topics
from pipeline.bus.keys import KeyedBus, rekey_event
from pipeline.records import Alert, Event
from tests.servers.scale import auth_log, embedded_alerts, parse_events, read_topic

if TYPE_CHECKING:
    from tests.servers.kafka import KafkaServer

pytest_plugins = ["tests.servers.kafka"]

PARTITIONS = 4
BATCH = 200


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> list[Event]:
    return parse_events(auth_log(tmp_path_factory.mktemp("log") / "auth.log", lines=4000, attacks=4))


@pytest.fixture(scope="module")
def expected(events: list[Event]) -> list[Alert]:
    alerts = embedded_alerts(events)
    assert sum(a.kind.value == "sigma_correlation" for a in alerts) >= 6  # the bursts are there
    return alerts


def _settings(server: KafkaServer, data_dir: Path, batch_size: int = BATCH) -> Settings:
    bus_url = server.url(partitions=PARTITIONS)
    return load_settings(None, overrides={"data_dir": data_dir,
                                          "pipeline": {"bus_url": bus_url, "batch_size": batch_size}})


def _publish(server: KafkaServer, events: Sequence[Event]) -> None:
    bus = KeyedBus(open_bus(server.url(partitions=PARTITIONS)), {topics.EVENTS: rekey_event})
    try:
        for start in range(0, len(events), 1000):
            bus.publish(topics.EVENTS, [(e.tenant, e.to_json()) for e in events[start:start + 1000]])
    finally:
        bus.close()


@pytest.fixture
def running() -> Iterator[Callable[[StageProcess], threading.Thread]]:
    """Start stage processes on threads; every one is stopped and closed at the end."""
    started: list[tuple[StageProcess, threading.Event, threading.Thread]] = []

    def start(process: StageProcess) -> threading.Thread:
        stop = threading.Event()
        thread = threading.Thread(target=process.run, args=(stop, lambda stats: None, 0.2), daemon=True)
        thread.start()
        started.append((process, stop, thread))
        return thread

    yield start
    for process, stop, thread in started:
        stop.set()
        thread.join(30)
        process.close()


def _alert_ids(server: KafkaServer, count: int) -> Counter[str]:
    bus = open_bus(server.url(partitions=PARTITIONS))
    try:
        messages = read_topic(bus, topics.ALERTS, "test-alerts", lambda got: len(got) >= count, timeout_s=90)
    finally:
        bus.close()
    return Counter(Alert.from_json(m.value).id for m in messages)


def test_two_detect_workers_raise_each_alert_once(own_noida_kafka: KafkaServer, tmp_path: Path,
                                                   events: list[Event], expected: list[Alert],
                                                   running: Callable[[StageProcess], threading.Thread]) -> None:
    settings = _settings(own_noida_kafka, tmp_path)
    first, second = build_stage(settings, Stage.DETECT), build_stage(settings, Stage.DETECT)
    running(first)
    running(second)
    _publish(own_noida_kafka, events)
    seen = _alert_ids(own_noida_kafka, len(expected))
    assert seen == Counter(a.id for a in expected)  # every alert, none twice
    assert first.stats.messages > 0 and second.stats.messages > 0  # both had partitions
    assert first.stats.messages + second.stats.messages >= len(events)


class _Died(Exception):
    """Raised by the dying worker's step after its alerts and checkpoint, before its commit."""


def _dies_mid_burst(process: StageProcess, burst: set[str]) -> None:
    """Make the worker die after a batch that left a brute-force burst half counted."""
    worker = process.workers[0]
    step = worker.step
    assert isinstance(step, PartitionedDetect)
    seen: set[str] = set()

    def dying(messages: Sequence[Message]) -> object:
        result = step(messages)
        seen.update(Event.from_json(m.value).id for m in messages if Event.from_json(m.value).id in burst)
        counted = len(seen & burst)
        if 5 <= counted <= len(burst) - 5:
            raise _Died  # not a GovsocError: the loop does not retry, the thread ends uncommitted
        return result

    worker.step = dying


def _run_until_death(process: StageProcess) -> threading.Thread:
    def target() -> None:
        with contextlib.suppress(_Died):
            process.run(threading.Event(), lambda stats: None, 0.2)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_a_worker_taking_over_neither_skips_nor_repeats(own_noida_kafka: KafkaServer, tmp_path: Path,
                                                        events: list[Event], expected: list[Alert],
                                                        running: Callable[[StageProcess], threading.Thread]) -> None:
    settings = _settings(own_noida_kafka, tmp_path, batch_size=10)  # a burst spans several batches
    _publish(own_noida_kafka, events)
    burst = {e.id for e in events if e.get("source.address") == "203.0.113.2"}
    dying = build_stage(settings, Stage.DETECT)
    _dies_mid_burst(dying, burst)
    thread = _run_until_death(dying)
    thread.join(120)
    assert not thread.is_alive(), "the dying worker did not reach its fatal batch"
    dying.close()
    successor = build_stage(settings, Stage.DETECT)
    running(successor)
    seen = _alert_ids(own_noida_kafka, len(expected))
    assert seen == Counter(a.id for a in expected)  # no alert skipped, none raised twice
    step = successor.workers[0].step
    assert isinstance(step, PartitionedDetect) and step.restored > 0  # it took over saved windows


def test_a_worker_without_the_state_would_miss_the_open_windows(events: list[Event], expected: list[Alert]) -> None:
    """Why the checkpoint: a fresh engine from the middle of a burst raises other alerts."""
    burst = next(a for a in expected if a.kind.value == "sigma_correlation")
    positions = sorted(i for i, e in enumerate(events) if e.id in set(burst.event_ids))
    middle = positions[len(positions) // 2]
    split = {a.id for a in embedded_alerts(events[:middle])} | {a.id for a in embedded_alerts(events[middle:])}
    assert split != {a.id for a in expected}


def test_a_stop_finishes_the_batch_and_commits(own_noida_kafka: KafkaServer, tmp_path: Path,
                                               events: list[Event],
                                               running: Callable[[StageProcess], threading.Thread]) -> None:
    settings = _settings(own_noida_kafka, tmp_path)
    _publish(own_noida_kafka, events[:1000])
    process = build_stage(settings, Stage.DETECT)
    stop = threading.Event()
    thread = threading.Thread(target=process.run, args=(stop, lambda stats: None, 0.2), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while process.stats.messages < 1000 and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    thread.join(30)
    process.close()
    again = build_stage(settings, Stage.DETECT)
    try:
        assert again.workers[0].run_once(3.0) == 0  # everything was committed
    finally:
        again.close()
