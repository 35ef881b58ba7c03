"""The sensor process: its configuration, ids as the file reader makes them, heartbeats, and kill -9.

Two acceptance tests of "kill -9 loses and duplicates nothing":
- in a subprocess: `python -m api.cli.sensor run` tails `KAFKA_LINES` generated auth lines into
  Kafka (noida-db), is SIGKILLed in the middle and started again; what the topic holds, stored
  through `IngestStep` into SQLite, is exactly the file's lines. 10,000 lines, not 100,000:
  `KafkaBus.publish` ran at ~1,800 messages/s on this (loaded) machine, too slow for the test budget;
- in process, 100,000 lines on a MemoryBus: the agent's state is dropped mid-run (a crash), its
  disk kept, and a new agent finishes; the store holds exactly 100,000 events.
The 100,000-line subprocess version (SIGKILL, then the uplink down for a third of the run) ships
over HTTP to the real API: tests/api/test_http_shipping.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pytest
import yaml

from api.demo.authlog import ICT, AuthLogSpec, generate_auth_log
from config.errors import ConfigError
from config.settings import TenantConfig, TenantKind
from config.tenants import TenantScope, TenantTree
from pipeline.bus import open_bus, topics
from pipeline.bus.memory import MemoryBus
from pipeline.enrich import Enricher
from pipeline.ingest import IngestStep
from pipeline.store.base import EventQuery
from pipeline.store.registry import open_event_store
from sensors.agent import HEARTBEATS, Agent, AgentConfig, load_agent_config
from sensors.files import FileSource, read_log_file
from tests.sensors.test_shipper import FlakyBus

if TYPE_CHECKING:  # imported for real by pytest_plugins
    from tests.servers.kafka import KafkaServer

pytest_plugins = ["tests.servers.kafka"]

TREE = TenantTree.from_config([TenantConfig(id="national", name="N", kind=TenantKind.NATIONAL),
                               TenantConfig(id="hanoi", name="HN", parent="national")])
LINES = 100_000
KAFKA_LINES = 10_000


def auth_log(path: Path, lines: int) -> Path:
    text = generate_auth_log(AuthLogSpec(host="portal", start=datetime(2026, 11, 23, tzinfo=ICT), lines=lines))
    path.write_text("\n".join(text) + "\n")
    return path


def config(tmp_path: Path, log: Path, bus_url: str = "memory://", **extra: object) -> dict[str, object]:
    return {"tenant": "hanoi", "sensor": "edge-1", "bus_url": bus_url, "heartbeat_s": 0.5,
            "spool": {"dir": str(tmp_path / "spool"), "fsync": "never"},
            "files": [{"paths": [str(log.parent / (log.name + "*"))], "format": "auth"}], **extra}


def test_config_errors_name_the_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "sensor.yml"
    path.write_text("tenant: hanoi\nsensor: s1\nspool:\n  dir: /tmp/x\n  max_byte: 10\n")
    with pytest.raises(ConfigError) as caught:
        load_agent_config(path)
    assert str(caught.value).startswith(f"{path}:5") and "spool.max_byte" in str(caught.value)
    path.write_text("tenant: hanoi\nsensor: s1\nspool: {dir: /tmp/x}\nfiles:\n  - paths: [a]\n    format: nope\n")
    with pytest.raises(ConfigError, match=r"files\.0\.format.*unknown log format 'nope'"):
        load_agent_config(path)
    path.write_text("tenant: hanoi\nsensor: s1\nspool: {dir: /tmp/x, max_bytes: 100000}\n")
    with pytest.raises(ConfigError, match=r"spool.*at least 2 \* segment_bytes"):
        load_agent_config(path)
    path.write_text("tenant: [unclosed\n")
    with pytest.raises(ConfigError, match="not YAML"):
        load_agent_config(path)


def test_tailed_events_have_the_ids_the_file_reader_gives(tmp_path: Path) -> None:
    log = auth_log(tmp_path / "auth.log", 500)
    bus = MemoryBus()
    agent = Agent(AgentConfig.model_validate(config(tmp_path, log)), bus)
    consumer = bus.consumer([topics.RAW], "check")
    while agent.tail_once():
        pass
    while agent.shipper.ship_once().shipped:
        pass
    shipped = {orjson.loads(m.value)["event"]["id"] for m in consumer.poll(10_000)}
    source = FileSource(tenant="hanoi", sensor="edge-1", format="auth")
    expected = {e.id for batch in read_log_file(log, source) for e in batch.events}
    assert len(expected) == 500 and shipped == expected


def test_a_heartbeat_reports_version_inputs_lag_spool_and_drops(tmp_path: Path) -> None:
    log = auth_log(tmp_path / "auth.log", 10)
    bus = MemoryBus()
    consumer = bus.consumer([HEARTBEATS], "check")
    agent = Agent(AgentConfig.model_validate(config(tmp_path, log)), bus)
    agent.tail_once()
    agent.publish_heartbeat()
    beat = orjson.loads(consumer.poll(10)[0].value)
    assert beat["sensor"] == "edge-1" and beat["version"] and beat["inputs"] == [f"file:{log}*"]
    assert beat["spool_pending"] == len(log.read_bytes().splitlines()) and beat["lag_s"] > 0
    assert beat["dropped"] == {"spool_full": 0, "torn": 0, "udp_kernel": 0}


def ingest_all(bus: MemoryBus, tmp_path: Path) -> tuple[int, int]:
    """(messages delivered, distinct events stored) after ingesting everything on the bus."""
    store = open_event_store(f"sqlite:///{tmp_path / 'events.db'}")
    step, consumer = IngestStep(Enricher(TREE), store, bus), bus.consumer([topics.RAW, topics.DEAD_LETTERS], "ingest")
    delivered = 0
    while messages := consumer.poll(2000):
        step(messages)
        consumer.commit()
        delivered += len(messages)
    assert store.count_dead_letters(TenantScope.everything()) == 0
    return delivered, store.count(TenantScope.everything(), EventQuery())


def test_a_crash_mid_run_neither_loses_nor_duplicates_100000_lines(tmp_path: Path) -> None:
    """In process: the agent's state is dropped (a crash), its disk kept; the bus survives.

    The uplink is down for part of the run too (publish calls 3 to 30 fail)."""
    log = auth_log(tmp_path / "auth.log", LINES)
    bus = FlakyBus(down_calls=range(3, 31))
    settings = AgentConfig.model_validate(config(tmp_path, log, batch_size=1000))
    first = Agent(settings, bus)
    while first.files[0].tailer.describe()[0]["offset"] < log.stat().st_size // 3 if first.tail_once() else False:
        first.shipper.ship_once()
    lines = first.files[0].tailer.poll(1000)  # read and spooled, but the checkpoint is never saved
    first.spool_records([first.files[0].convert(line) for line in lines])
    del first  # kill -9: nothing closed, nothing flushed beyond what was committed
    second = Agent(settings, bus)
    while second.tail_once():
        second.shipper.ship_once()
    assert second.shipper.drain(120)  # a bound on a loaded machine; it returns once the spool is empty
    delivered, stored = ingest_all(bus, tmp_path)
    assert delivered > LINES  # the unsaved batch came twice
    assert stored == LINES
    assert bus.calls > 30


def _checkpoint_offset(spool_dir: Path) -> int:
    try:
        doc = json.loads((spool_dir / "tail-0.json").read_text())
    except (OSError, ValueError):
        return 0
    return max((f["offset"] for f in doc["files"]), default=0)


def _start_sensor(config_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "api.cli.sensor", "run", "--config", str(config_path)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


@pytest.mark.e2e
def test_sigkill_mid_run_then_restart_stores_exactly_every_line(tmp_path: Path, noida_kafka: KafkaServer) -> None:
    log = auth_log(tmp_path / "auth.log", KAFKA_LINES)
    lines = len(log.read_bytes().splitlines())
    size = log.stat().st_size
    url = noida_kafka.url(partitions=3)
    settings = config(tmp_path, log, url, batch_size=1000)
    config_path = tmp_path / "sensor.yml"
    config_path.write_text(yaml.safe_dump(settings))
    bus = open_bus(url)
    consumer = bus.consumer([topics.RAW, topics.DEAD_LETTERS], f"ingest-{uuid.uuid4().hex}")
    store = open_event_store(f"sqlite:///{tmp_path / 'events.db'}")
    step = IngestStep(Enricher(TREE), store, MemoryBus())  # its output stays here: half the Kafka traffic
    sensor = _start_sensor(config_path, tmp_path / "sensor.log")
    killed, delivered = False, 0
    deadline = time.monotonic() + 180  # a bound, not a speed claim: the loop ends as soon as all are stored
    try:
        while time.monotonic() < deadline:
            assert sensor.poll() is None, (tmp_path / "sensor.log").read_text()[-2000:]
            if not killed and _checkpoint_offset(tmp_path / "spool") > size // 3:
                sensor.send_signal(signal.SIGKILL)
                sensor.wait(10)
                killed = True
                sensor = _start_sensor(config_path, tmp_path / "sensor.log")
            messages = consumer.poll(2000, timeout_s=0.2)
            if messages:
                step(messages)
                consumer.commit()
                delivered += len(messages)
            elif killed and store.count(TenantScope.everything(), EventQuery()) >= lines:
                break
        sensor.send_signal(signal.SIGTERM)
        assert sensor.wait(20) == 0, (tmp_path / "sensor.log").read_text()[-2000:]
    finally:
        if sensor.poll() is None:
            os.kill(sensor.pid, signal.SIGKILL)
        consumer.close()
        bus.close()
    assert killed
    assert delivered >= lines
    assert store.count(TenantScope.everything(), EventQuery()) == lines
    assert store.count_dead_letters(TenantScope.everything()) == 0


def test_run_collects_files_and_syslog_and_stops_gracefully(tmp_path: Path) -> None:
    log = auth_log(tmp_path / "auth.log", 200)
    bus = MemoryBus()
    raw = bus.consumer([topics.RAW], "check")
    beats = bus.consumer([HEARTBEATS], "beats")
    settings = AgentConfig.model_validate(config(
        tmp_path, log, syslog=[{"protocol": "tcp", "address": "127.0.0.1", "port": 0}], poll_interval_s=0.05))
    agent = Agent(settings, bus)
    runner = threading.Thread(target=agent.run, kwargs={"install_signals": False})
    runner.start()
    try:
        assert agent.syslog is not None
        deadline = time.monotonic() + 10
        while not agent.syslog.bound and time.monotonic() < deadline:
            time.sleep(0.01)
        with socket.create_connection(("127.0.0.1", agent.syslog.bound[0].port)) as sock:
            sock.sendall(b"<38>Nov 23 10:00:00 web1 sshd[1]: Accepted publickey for deploy from 10.0.0.9 port 22\n")
        expected = len(log.read_bytes().splitlines()) + 1
        got: list[bytes] = []
        while len(got) < expected and time.monotonic() < deadline:
            got += [m.value for m in raw.poll(1000, timeout_s=0.1)]
    finally:
        agent.stop()
        runner.join(10)
    assert not runner.is_alive()
    assert len(got) == expected
    assert any(orjson.loads(v)["log"].get("source", {}).get("address") == "127.0.0.1" for v in got)
    assert beats.poll(10)  # at least the heartbeat sent at start
    assert agent.spool.pending_records == 0
