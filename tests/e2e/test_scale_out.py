"""End to end on the scale-out back end, with real processes: `govsoc worker ...` around noida-db
(Kafka protocol) and osmem-server (OpenSearch API), incidents in SQLite.

- `test_replay_survives_a_killed_worker_and_a_broker_restart`: one ingest, two detect and one
  incidents worker; `govsoc replay` publishes the generated auth log; mid-way one detect worker
  is SIGKILLed (and a new one started) and the broker is restarted gracefully (SIGTERM, then
  started on the same data dir). Then the search store holds exactly every event, and the
  incident store exactly the detection alerts of the embedded run (`govsoc up`'s back end) on
  the same file (the incidents worker's own `sensor_health`/`service_watch` alerts set aside).
- `test_an_unreachable_store_slows_ingestion_and_loses_nothing`: the search server is frozen
  (SIGSTOP) while events arrive: the ingest worker's batches fail and are retried with back-off,
  its lag metric grows; once the server runs again (SIGCONT) the worker catches up, every event
  is stored and the lag returns to 0.

Sizes: `E2E_EVENTS` (default 10,000; the acceptance run of issue 11 is 200,000:
`E2E_EVENTS=200000 .venv/bin/pytest tests/e2e -k survives`, see docs/performance.md for its
time) and `E2E_OUTAGE_S` (default 10; the issue's 30 s in the acceptance run). Not GOVSOC_*:
every GOVSOC_* variable must name a setting, and the workers inherit this environment.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pytest

from api.wiring import build_runtime
from config.load import load_settings
from config.tenants import TenantScope
from pipeline.records import DetectionKind
from pipeline.store.base import AlertQuery, EventQuery
from pipeline.store.registry import open_event_store, open_incident_store
from tests.servers import search
from tests.servers.scale import TENANT, auth_log, parse_events, source
from tests.servers.workers import GovsocProcesses

if TYPE_CHECKING:
    from tests.servers.kafka import KafkaServer

pytest_plugins = ["tests.servers.kafka"]
pytestmark = pytest.mark.e2e

EVENTS = int(os.environ.get("E2E_EVENTS", "10000"))
OUTAGE_S = float(os.environ.get("E2E_OUTAGE_S", "10"))
PARTITIONS = 4
WAIT_S = 120 + EVENTS / 100  # generous: 2 shared cores, several processes, a slow test search server


@pytest.fixture
def osmem(tmp_path: Path) -> Iterator[tuple[search.SearchServer, int]]:
    """A search server of this test's own (it is frozen and thawed); yields it and its PID."""
    process, server = search.start(tmp_path / "osmem.log")
    try:
        yield server, process.pid
    finally:
        os.kill(process.pid, signal.SIGCONT)
        search.stop(process)


def _environment(broker: KafkaServer, server: search.SearchServer, data_dir: Path,
                 store_timeout_s: int = 30) -> dict[str, str]:
    # noida-db ignores fetch_max_bytes: a consumer far behind gets the whole log in one answer.
    # max_poll_interval_ms is also the rebalance timeout: a rebalance waits that long for a member
    # that will not rejoin (seen after the broker restart, on a loaded machine: the group sat in
    # PreparingRebalance with kafka-python's 300 s default, longer than this test waits).
    bus = broker.url(partitions=PARTITIONS, request_timeout_ms=30000, bootstrap_timeout_ms=60000,
                     receive_message_max_bytes=1 << 30, max_poll_interval_ms=60000)
    return {
        "GOVSOC_BUS": bus,
        "GOVSOC_EVENTS": server.store_url(prefix="e2e", timeout=str(store_timeout_s)),
        "GOVSOC_DATA_DIR": str(data_dir),
        "GOVSOC_PIPELINE__BATCH_SIZE": "1000",
    }


def _stored_events(url: str) -> int:
    store = open_event_store(url)
    try:
        return store.count(TenantScope.everything(), EventQuery())
    finally:
        store.close()


# The incidents worker's watches raise alerts of their own (a silent sensor: `sensor_health`) that
# depend on the wall clock and on which workers run, and the embedded replay makes none of them:
# only the detection engines' alerts are compared.
WATCH_KINDS = frozenset({DetectionKind.SENSOR_HEALTH, DetectionKind.SERVICE_WATCH, DetectionKind.INCIDENT_CLOCK})


def _alert_ids(url: str) -> set[str]:
    """The ids of the detection alerts in the incident store (not the watches')."""
    store = open_incident_store(url)
    try:
        scope = TenantScope.everything()
        total = store.count_alerts(scope, AlertQuery())
        return {a.id for a in store.alerts(scope, AlertQuery(limit=max(total, 1))) if a.kind not in WATCH_KINDS}
    finally:
        store.close()


def _wait(what: str, condition: Callable[[], bool], procs: GovsocProcesses, timeout_s: float = WAIT_S,
          detail: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        procs.assert_alive()
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {name}\n{procs.log_tail(name, 25)}" for name in procs.running)
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{detail()}\n{logs}")
        time.sleep(0.5)


def _alert_difference(url: str, expected: set[str], embedded_url: str) -> str:
    """Which of the embedded run's alerts are missing (by rule), and how many extra."""
    got = _alert_ids(url)
    store = open_incident_store(embedded_url)
    try:
        scope = TenantScope.everything()
        alerts = store.alerts(scope, AlertQuery(limit=max(store.count_alerts(scope, AlertQuery()), 1)))
    finally:
        store.close()
    missing = sorted(f"{a.rule_id} {dict(a.entity)} {a.timestamp.isoformat()}" for a in alerts
                     if a.id in expected - got)
    return (f"{len(expected)} expected, {len(got)} stored, {len(expected - got)} missing, "
            f"{len(got - expected)} extra; missing: {missing[:10]}")


def _embedded_alerts(log: Path, data_dir: Path) -> set[str]:
    """The alerts of the embedded back end (memory bus, SQLite) on the same file."""
    settings = load_settings(None, overrides={"data_dir": data_dir})
    runtime = build_runtime(settings)
    try:
        runtime.pipeline.replay([log], source(TENANT))
    finally:
        runtime.close()
    return _alert_ids(settings.incidents_url)


def test_replay_survives_a_killed_worker_and_a_broker_restart(own_noida_kafka: KafkaServer, tmp_path: Path,
                                                             osmem: tuple[search.SearchServer, int]) -> None:
    server, _ = osmem
    log = auth_log(tmp_path / "auth.log", lines=EVENTS, attacks=max(4, EVENTS // 2000))
    total = len(parse_events(log))
    assert total == EVENTS  # one event a line, no dead letters
    env = _environment(own_noida_kafka, server, tmp_path / "data")
    procs = GovsocProcesses(env, tmp_path)
    events_url, incidents_url = env["GOVSOC_EVENTS"], f"sqlite:///{tmp_path / 'data' / 'govsoc.db'}"
    try:
        setup = orjson.loads(procs.run("setup", "setup", "--quiet", "--json"))
        assert setup["topics"]["govsoc.events"] == PARTITIONS
        for name, stage in (("ingest", "ingest"), ("detect-1", "detect"), ("detect-2", "detect"),
                            ("incidents", "incidents")):
            procs.start(name, "-v", "worker", stage, "--quiet")  # -v: info logs (joins, takeovers)
        procs.start("replay", "replay", str(log), "--tenant", TENANT, "--quiet", "--json")
        _wait("a third of the events stored", lambda: _stored_events(events_url) >= total // 3, procs)
        procs.kill("detect-1", signal.SIGKILL)
        own_noida_kafka.restart()  # graceful: SIGTERM, then the same port and data dir
        procs.start("detect-3", "-v", "worker", "detect", "--quiet")
        _wait("the replay to finish", lambda: procs.running["replay"].poll() is not None, procs)
        assert procs.running.pop("replay").returncode == 0, procs.log_tail("replay")
        _wait(f"{total} events stored", lambda: _stored_events(events_url) >= total, procs)
        expected = _embedded_alerts(log, tmp_path / "embedded")
        embedded_url = f"sqlite:///{tmp_path / 'embedded' / 'govsoc.db'}"
        _wait("the embedded run's alerts", lambda: _alert_ids(incidents_url) >= expected, procs,
              detail=lambda: _alert_difference(incidents_url, expected, embedded_url))
        time.sleep(3)  # anything extra (a repeat under another id) would show now
        assert _stored_events(events_url) == total
        assert _alert_ids(incidents_url) == expected
    finally:
        procs.stop_all()


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")]
    return sum(values)


def test_an_unreachable_store_slows_ingestion_and_loses_nothing(own_noida_kafka: KafkaServer, tmp_path: Path,
                                                               osmem: tuple[search.SearchServer, int]) -> None:
    server, pid = osmem
    log = auth_log(tmp_path / "auth.log", lines=min(EVENTS, 5000), attacks=2)
    count = len(parse_events(log))
    env = _environment(own_noida_kafka, server, tmp_path / "data", store_timeout_s=5)
    procs = GovsocProcesses(env, tmp_path)
    port = search.free_port()
    try:
        procs.run("setup", "setup", "--quiet")
        procs.start("ingest", "worker", "ingest", "--quiet", "--metrics-port", str(port))
        _wait("the metrics endpoint", lambda: _answers(port), procs, timeout_s=60)
        os.kill(pid, signal.SIGSTOP)  # the store stops answering: requests time out
        # replay only publishes, but opens every configured store at start (build_runtime): give
        # it one that answers, as the frozen search server does not
        publisher = GovsocProcesses({**env, "GOVSOC_EVENTS": f"sqlite:///{tmp_path / 'replay.db'}"}, tmp_path)
        publisher.run("replay", "replay", str(log), "--tenant", TENANT, "--quiet")
        _wait("failed batches", lambda: _metric(port, "govsoc_worker_step_failures_total") >= 1, procs)
        _wait("the lag to show the backlog", lambda: _metric(port, "govsoc_worker_lag") > 0, procs)
        time.sleep(max(0.0, OUTAGE_S - 5))
        os.kill(pid, signal.SIGCONT)
        _wait(f"{count} events stored", lambda: _stored_events(env["GOVSOC_EVENTS"]) >= count, procs)
        _wait("the lag to return to 0", lambda: _metric(port, "govsoc_worker_lag") == 0, procs)
        assert _stored_events(env["GOVSOC_EVENTS"]) == count
    finally:
        procs.stop_all()


def _answers(port: int) -> bool:
    try:
        _metric(port, "govsoc_worker_lag")
        return True
    except OSError:
        return False
