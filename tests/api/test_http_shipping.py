"""The sensor's HTTP uplink against the real API served by uvicorn on loopback (built as door.py builds it).

- enrollment: a one-time token becomes the sensor token, saved with mode 0600, and is spent;
- shipping: NDJSON + gzip to POST /api/v1/ingest; 503 (Retry-After) and 413 (split) honoured; a
  line the API refuses (another tenant's event) lands in the sensor's dead letters with the reason;
- an outage of the API mid-run, then a SIGKILLed sensor process shipping 100,000 lines with the API
  down for part of the run: the store holds each event exactly once.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest
import uvicorn
import yaml
from fastapi import FastAPI

from api.demo.authlog import ICT, AuthLogSpec, generate_auth_log
from config.settings import Role
from config.tenants import TenantScope
from pipeline.bus import topics
from pipeline.bus.memory import MemoryBus
from pipeline.enrich import Enricher
from pipeline.errors import BusError
from pipeline.ingest import IngestStep
from pipeline.records import DeadLetter, Event, utc_now
from pipeline.store.base import EventQuery
from pipeline.store.registry import open_event_store
from sensors.files import FileSource, read_log_file
from sensors.shipper import Shipper
from sensors.spool import FsyncPolicy, RecordKind, Spool, SpoolOptions
from sensors.uplink import HttpBus, UplinkBusy
from tests.api.door import TREE, Door, open_door

SENSOR = "edge-http"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ApiServer:
    """The door's app under uvicorn in a thread; `stop()` then `start()` is an outage, same port."""

    def __init__(self, app: FastAPI) -> None:
        self.app, self.port = app, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            assert time.monotonic() < deadline and self._thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(20)
            self._server = self._thread = None


@pytest.fixture
def door(tmp_path: Path) -> Iterator[Door]:
    with open_door(tmp_path / "api") as opened:
        yield opened


@pytest.fixture
def api(door: Door) -> Iterator[ApiServer]:
    server = ApiServer(door.client.app)  # type: ignore[arg-type]
    server.start()
    yield server
    server.stop()


def enrollment_token(door: Door, tenant: str = "hanoi", sensor: str = SENSOR) -> str:
    now = utc_now()
    token, _key = door.identity.create_key(kind="enrollment", name=sensor, tenant=tenant, role=Role.SENSOR,
                                           actor="admin", now=now, expires=now + timedelta(hours=1))
    return token


def auth_events(path: Path, lines: int, tenant: str = "hanoi") -> list[Event]:
    text = generate_auth_log(AuthLogSpec(host="portal", start=datetime(2026, 11, 23, tzinfo=ICT), lines=lines))
    path.write_text("\n".join(text) + "\n")
    source = FileSource(tenant=tenant, sensor=SENSOR, format="auth")
    return [e for batch in read_log_file(path, source) for e in batch.events]


def store_from_bus(bus: MemoryBus, tmp_path: Path, group: str) -> tuple[int, int]:
    """(messages from our sensor, distinct events stored) after ingesting what the API published."""
    store = open_event_store(f"sqlite:///{tmp_path / f'{group}.db'}")
    step, consumer = IngestStep(Enricher(TREE), store, MemoryBus()), bus.consumer([topics.RAW], group)
    delivered = 0
    while messages := consumer.poll(5000):
        ours = [m for m in messages if orjson.loads(m.value).get("observer", {}).get("name") == SENSOR]
        if ours:
            step(ours)
        delivered += len(ours)
        consumer.commit()
    return delivered, store.count(TenantScope.everything(), EventQuery())


def spool_of(tmp_path: Path, records: list[Event | DeadLetter]) -> Spool:
    spool = Spool(tmp_path / "spool", SpoolOptions(fsync=FsyncPolicy.NEVER))
    for record in records:
        kind = RecordKind.EVENT if isinstance(record, Event) else RecordKind.DEAD_LETTER
        spool.append(kind, record.tenant, record.to_json())
    spool.commit()
    return spool


def test_enrollment_saves_the_sensor_token_0600_and_spends_the_one_time_token(tmp_path: Path, door: Door,
                                                                              api: ApiServer) -> None:
    token_path, one_time = tmp_path / "state" / "sensor.token", enrollment_token(door)
    uplink = HttpBus.from_url(api.url, token_path=token_path, enrollment_token=one_time,
                              dead_letter_path=tmp_path / "dl.ndjson")
    uplink.publish(topics.HEARTBEATS, [("hanoi", orjson.dumps({"version": "1", "lag_s": 0.5, "counts": {}}))])
    assert stat.S_IMODE(token_path.stat().st_mode) == 0o600
    assert token_path.read_text().strip() != one_time
    uplink.close()
    again = HttpBus.from_url(api.url, token_path=tmp_path / "other.token", enrollment_token=one_time,
                             dead_letter_path=tmp_path / "dl.ndjson")
    with pytest.raises(BusError, match="HTTP 401"):  # spent
        again.publish(topics.HEARTBEATS, [("hanoi", orjson.dumps({"version": "1"}))])
    again.close()
    reuse = HttpBus.from_url(api.url, token_path=token_path, dead_letter_path=tmp_path / "dl.ndjson")
    reuse.publish(topics.HEARTBEATS, [("hanoi", orjson.dumps({"version": "1"}))])  # the saved token works
    reuse.close()


def test_shipping_survives_an_outage_503_and_413_and_dead_letters_refused_lines(
        tmp_path: Path, door: Door, api: ApiServer) -> None:
    events = auth_events(tmp_path / "auth.log", 3000)
    foreign = auth_events(tmp_path / "other.log", 3, tenant="danang")[:1]  # not this sensor's tenant
    parser_dead = DeadLetter.create(source="auth.log", reason="unparsable", raw=b"\x00", tenant="hanoi")
    spool = spool_of(tmp_path, [*events[:1500], *foreign, parser_dead, *events[1500:]])
    uplink = HttpBus.from_url(api.url, token_path=tmp_path / "sensor.token", enrollment_token=enrollment_token(door),
                              dead_letter_path=tmp_path / "spool" / "dead-letters.ndjson")
    shipper = Shipper(spool, uplink, batch_size=500)
    assert shipper.ship_once().shipped == 500
    api.stop()  # the outage: nothing is acked while the API is away
    failed = shipper.ship_once()
    assert failed.error is not None and failed.shipped == 0 and failed.pending == len(events) + 2 - 500
    api.start()
    app = door.client.app
    app.state.ingest_pending = lambda: 10**9  # type: ignore[attr-defined]  # the pipeline is behind: 503
    busy = shipper.ship_once()
    assert busy.error is not None and busy.retry_after_s == 5.0
    with pytest.raises(UplinkBusy):
        uplink.publish(topics.RAW, [("hanoi", events[0].to_json())])
    app.state.ingest_pending = None  # type: ignore[attr-defined]
    app.state.ingest_limits = replace(app.state.ingest_limits, max_events=120)  # type: ignore[attr-defined]
    assert shipper.drain(60)  # 500-line batches answered 413: split until they pass
    delivered, stored = store_from_bus(door.bus, tmp_path, "check")
    assert stored == len({e.id for e in events}) == len(events)
    assert delivered >= len(events)
    dead = [orjson.loads(line) for line in (tmp_path / "spool" / "dead-letters.ndjson").read_bytes().splitlines()]
    assert [d["reason"] for d in dead] == ["refused by the API: organization.id: 'danang' is not this sensor's tenant",
                                           "unparsable"]
    assert uplink.refused_lines == 1
    uplink.close()


def _sensor_config(tmp_path: Path, log: Path, url: str, one_time: str) -> Path:
    (tmp_path / "enroll.token").write_text(one_time + "\n")
    settings = {"tenant": "hanoi", "sensor": SENSOR, "uplink": url, "heartbeat_s": 5, "batch_size": 2000,
                "enrollment": {"token_file": str(tmp_path / "state" / "sensor.token"),
                               "enrollment_token_file": str(tmp_path / "enroll.token"), "timeout_s": 10},
                "spool": {"dir": str(tmp_path / "spool"), "fsync": "never"},
                "files": [{"paths": [str(log) + "*"], "format": "auth"}]}
    path = tmp_path / "sensor.yml"
    path.write_text(yaml.safe_dump(settings))
    return path


def _start_sensor(config_path: Path, output: Path) -> subprocess.Popen[bytes]:
    with output.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "api.cli.sensor", "run", "--config", str(config_path)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _shipped(spool_dir: Path) -> int:
    """Bytes of the tailed file whose lines were spooled (the tail checkpoint)."""
    try:
        doc = orjson.loads((spool_dir / "tail-0.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return 0
    return max((f["offset"] for f in doc["files"]), default=0)


@pytest.mark.e2e
def test_a_sigkilled_sensor_shipping_100000_lines_over_http_stores_each_exactly_once(
        tmp_path: Path, door: Door, api: ApiServer) -> None:
    """`govsoc sensor run` as a process: SIGKILL at a third of the file, the API down from there to
    two thirds (the restarted sensor keeps collecting into its spool), then everything arrives once."""
    lines = 100_000
    log = tmp_path / "auth.log"
    expected = {e.id for e in auth_events(log, lines)}
    size, output = log.stat().st_size, tmp_path / "sensor.out"
    config_path = _sensor_config(tmp_path, log, api.url, enrollment_token(door))
    # "store" joins now, so the bus keeps every message for it; "progress" only watches the ids arrive.
    store_consumer, progress = door.bus.consumer([topics.RAW], "store"), door.bus.consumer([topics.RAW], "progress")
    seen: set[str] = set()
    sensor = _start_sensor(config_path, output)
    phase, deadline = "first", time.monotonic() + 240  # a bound on a loaded machine, not a speed claim
    try:
        while time.monotonic() < deadline and len(seen) < lines:
            assert sensor.poll() is None, output.read_text()[-2000:]
            offset = _shipped(tmp_path / "spool")
            if phase == "first" and offset > size // 3:
                sensor.send_signal(signal.SIGKILL)
                sensor.wait(10)
                api.stop()
                sensor, phase = _start_sensor(config_path, output), "down"
            elif phase == "down" and offset > 2 * size // 3:
                api.start()
                phase = "up"
            seen.update(orjson.loads(m.value)["event"]["id"] for m in progress.poll(20_000, timeout_s=0.2))
            seen &= expected
            progress.commit()
        sensor.send_signal(signal.SIGTERM)
        assert sensor.wait(30) == 0, output.read_text()[-2000:]
    finally:
        if sensor.poll() is None:
            os.kill(sensor.pid, signal.SIGKILL)
    assert phase == "up", phase
    store_consumer.close()
    delivered, stored = store_from_bus(door.bus, tmp_path, "store")  # as the ingest worker would
    assert stored == len(expected) == lines, (len(seen), delivered, output.read_text()[-3000:])
    assert delivered >= lines
    assert stat.S_IMODE((tmp_path / "state" / "sensor.token").stat().st_mode) == 0o600
