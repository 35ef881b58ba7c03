"""The demo's ML part (DEMO.md step 3): Hải Châu's normal week, its baseline, and the day it departs.

`api.demo.packets` writes the demo day's capture at Phường Hải Châu: a morning's ordinary work of
the workstation 10.31.0.23, then DNS tunnelling to `t.exfil.example` and a sweep of its neighbours.
This module adds the week before: the same kinds of ordinary work (DNS lookups of the agency
portals, now and then a page over HTTP, a rare NXDOMAIN) by four of the ward's workstations, in
sessions during office hours, written as a capture (`PcapWriter`, struct-built frames) and read by
the real packet sensor.

`train_and_score_demo(runtime, now)`:
1. writes `DATA_DIR/demo/haichau-baseline.pcap` and stores its events (the ward's history);
2. trains the ward's models from the event store through the registry (`detections.ml.training`,
   the path of `govsoc ml train` and of scheduled retraining), as of the demo capture's start;
3. scores the demo day's stored events of the ward with an `MlFeed` (the online path), publishes
   the anomaly alerts on the bus with their asset, and drains the pipeline so incidents form.
Every other tenant stays in cold start (no model, no ML alerts; `govsoc ml status` says so).

Deterministic: fixed seeds and times derived from `now` as the rest of the demo does; alert ids
are deterministic, so running it twice (or a wired online feed seeing the same events) upserts.
Call it after `load_demo` has replayed the capture (the scoring reads the stored events).
"""

from __future__ import annotations

import dataclasses
import random
import socket
import struct
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from api.demo.authlog import ICT
from api.demo.packets import PORTALS, RESOLVER, WORKSTATION
from api.wiring import Runtime
from config.tenants import TenantScope
from detections.ml import MlConfig, MlFeed, ModelRegistry, stored_pages, train_from_store
from pipeline.bus import topics
from pipeline.records import Alert
from pipeline.store.base import EventQuery
from sensors.packets import CaptureSource, read_capture

TENANT, SENSOR = "danang-haichau", "haichau-s1"
WORKSTATIONS = (WORKSTATION, "10.31.0.21", "10.31.0.22", "10.31.0.24")
NXDOMAIN_NAME = "khong-ton-tai.danang.example"
CAPTURE_OFFSET = timedelta(hours=8)  # the demo capture starts at 08:00 ICT of the demo day (setup.py)


@dataclass(frozen=True, slots=True)
class BaselineSpec:
    """The ward's ordinary days before `end`: sessions of lookups and pages per workstation and day."""

    end: datetime
    days: int = 7
    workstations: tuple[str, ...] = WORKSTATIONS
    sessions_per_day: int = 6
    lookups: tuple[int, int] = (8, 40)  # per session
    seed: int = 43


@dataclass
class MlDemoStats:
    baseline_events: int = 0
    models: int = 0  # trained for the ward, one per entity kind with enough history
    windows_scored: int = 0
    alerts: list[Alert] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def reasons(self) -> list[str]:
        """`entity: why` of each anomaly alert (the demo prints them)."""
        return [f"{', '.join(a.entity.values())}: {a.description.partition('Why: ')[2]}" for a in self.alerts]


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def dns_message(qid: int, name: str, *, answer: str | None = None, rcode: int | None = None) -> bytes:
    """A query (`rcode` None) or a response with at most one A record, as RFC 1035 lays it out."""
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".")) + b"\0"
    question = qname + struct.pack("!HH", 1, 1)
    if rcode is None:
        return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question
    records = b"" if answer is None else struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + socket.inet_aton(answer)
    return struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, int(answer is not None), 0, 0) + question + records


class PcapWriter:
    """Ethernet/IPv4 frames built with struct (scapy builds ~1,000 a second, too slow for a week of
    a ward's traffic in a demo that starts in seconds), written as a classic pcap, sorted by time."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, int, bytes]] = []

    def ip(self, at: float, src: str, dst: str, proto: int, segment: bytes) -> None:
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), len(self.frames) & 0xFFFF, 0, 64, proto,
                             0, socket.inet_aton(src), socket.inet_aton(dst))
        header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
        ether = b"\x02\x00\x00\x31\x00\x01\x02\x00\x00\x31\x00\x99\x08\x00"
        self.frames.append((at, len(self.frames), ether + header + segment))

    @staticmethod
    def _pseudo(src: str, dst: str, proto: int, length: int) -> bytes:
        return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, proto, length)

    def udp(self, at: float, src: str, dst: str, ports: tuple[int, int], data: bytes) -> None:
        header = struct.pack("!HHHH", ports[0], ports[1], 8 + len(data), 0)
        check = _checksum(self._pseudo(src, dst, 17, 8 + len(data)) + header + data) or 0xFFFF
        self.ip(at, src, dst, 17, header[:6] + struct.pack("!H", check) + data)

    def tcp(self, at: float, src: str, dst: str, ports: tuple[int, int], flags: int, seq_ack: tuple[int, int],
            data: bytes = b"") -> None:
        header = struct.pack("!HHIIBBHHH", ports[0], ports[1], seq_ack[0] & 0xFFFFFFFF, seq_ack[1] & 0xFFFFFFFF,
                             5 << 4, flags, 64240, 0, 0)
        check = _checksum(self._pseudo(src, dst, 6, 20 + len(data)) + header + data)
        self.ip(at, src, dst, 6, header[:16] + struct.pack("!H", check) + header[18:] + data)

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
            for at, _, frame in sorted(self.frames):
                micros = round(at * 1e6)
                out.write(struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame)))
                out.write(frame)
        return path


FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


class WardTraffic:
    """What the ward's workstations do, as packets: the demo day's ordinary work, and (for the
    bench, bench/ml_own.py) the attacks injected into it: tunnelling, a sweep, an upload."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.pcap = PcapWriter()

    def lookup(self, host: str, at: float, name: str | None = None) -> float:
        """A DNS lookup (of a portal unless `name`; a rare NXDOMAIN), three in ten followed by the page."""
        rcode = 0
        if name is None:
            name = self.rng.choice(list(PORTALS))
            if self.rng.random() < 0.02:
                name, rcode = NXDOMAIN_NAME, 3
        answer = None if rcode else PORTALS.get(name, "198.51.100.53")
        qid, sport = self.rng.randrange(65536), self.rng.randrange(40000, 60000)
        self.pcap.udp(at, host, RESOLVER, (sport, 53), dns_message(qid, name))
        self.pcap.udp(at + 0.002, RESOLVER, host, (53, sport), dns_message(qid, name, answer=answer, rcode=rcode))
        if name in PORTALS and self.rng.random() < 0.3:
            return self.page(host, PORTALS[name], name, at + 0.01)
        return at + 0.01

    def page(self, host: str, address: str, name: str, at: float, upload: int = 0) -> float:
        """GET a page (or, with `upload` bytes, POST them in 1,400-byte segments); returns the end."""
        sport, seq = self.rng.randrange(40000, 60000), self.rng.randrange(2**31)
        ports, back = (sport, 80), (80, sport)
        method = "POST /tai-len HTTP/1.1" if upload else "GET /tin-tuc/index.html HTTP/1.1"
        request = f"{method}\r\nHost: {name}\r\nContent-Length: {upload}\r\n\r\n".encode()
        body = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nok"
        self.pcap.tcp(at, host, address, ports, SYN, (seq, 0))
        self.pcap.tcp(at + 0.01, address, host, back, SYN | ACK, (1000, seq + 1))
        self.pcap.tcp(at + 0.011, host, address, ports, ACK, (seq + 1, 1001))
        sent, at = seq + 1, at + 0.012
        for chunk in [request] + [b"x" * min(1400, upload - i) for i in range(0, upload, 1400)]:
            self.pcap.tcp(at, host, address, ports, PSH | ACK, (sent, 1001), chunk)
            sent, at = sent + len(chunk), at + 0.001
        self.pcap.tcp(at + 0.02, address, host, back, PSH | ACK, (1001, sent), body)
        self.pcap.tcp(at + 0.03, host, address, ports, FIN | ACK, (sent, 1001 + len(body)))
        self.pcap.tcp(at + 0.031, address, host, back, FIN | ACK, (1001 + len(body), sent + 1))
        return at + 0.031

    def probe(self, host: str, target: str, port: int, at: float, is_open: bool) -> None:
        sport = self.rng.randrange(40000, 60000)
        self.pcap.tcp(at, host, target, (sport, port), SYN, (self.rng.randrange(2**31), 0))
        self.pcap.tcp(at + 0.0005, target, host, (port, sport), SYN | ACK if is_open else RST | ACK, (0, 1))


def build_baseline(spec: BaselineSpec) -> WardTraffic:
    """The baseline's packets: per day, workstation and session, lookups 0.5-20 s apart, office hours."""
    ward = WardTraffic(spec.seed)
    first_day = spec.end.astimezone(ICT).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=spec.days)
    for day in range(spec.days):
        office = first_day + timedelta(days=day, hours=8)
        for host in spec.workstations:
            for _ in range(spec.sessions_per_day):
                at = (office + timedelta(minutes=ward.rng.uniform(0, 8 * 60))).timestamp()
                for _ in range(ward.rng.randint(*spec.lookups)):
                    at = ward.lookup(host, at + ward.rng.uniform(0.5, 20))
    return ward


def write_baseline_capture(path: Path, spec: BaselineSpec) -> Path:
    return build_baseline(spec).pcap.write(path)


def train_and_score_demo(runtime: Runtime, now: datetime) -> MlDemoStats:
    """Store the ward's ordinary week, train its models from the store, score the demo day (see the module)."""
    started = time.perf_counter()
    stats = MlDemoStats()
    local = now.astimezone(ICT)
    capture_start = local.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1) + CAPTURE_OFFSET
    baseline = write_baseline_capture(runtime.settings.data_dir / "demo" / "haichau-baseline.pcap",
                                      BaselineSpec(end=capture_start))
    for batch in read_capture(baseline, CaptureSource(tenant=TENANT, sensor=SENSOR)):
        stats.baseline_events += runtime.events.write(batch.events)
    config = MlConfig.of(runtime.settings).model_copy(update={"training_window": timedelta(days=8),
                                                               "check_every_s": 0})
    registry = ModelRegistry(runtime.settings.data_dir / "models")
    outcomes = train_from_store(runtime.events, registry, TENANT, config, now=capture_start,
                                timezone=runtime.settings.timezone)
    stats.models = sum(o.model is not None for o in outcomes)
    feed = MlFeed(registry, [t.id for t in runtime.tree], config, timezone=runtime.settings.timezone)
    scope = TenantScope(root=TENANT, tenant_ids=frozenset({TENANT}))
    raised: list[Alert] = []
    for page in stored_pages(runtime.events, scope, capture_start, now):
        raised.extend(feed.process(page))
    raised.extend(feed.flush(now))
    stats.windows_scored = feed.detector.scored
    stats.alerts = [_with_asset(runtime, alert) for alert in raised]
    if stats.alerts:
        runtime.pipeline.bus.publish(topics.ALERTS, [(a.tenant, a.to_json()) for a in stats.alerts])
        runtime.pipeline.alerts_raised += len(stats.alerts)
        runtime.pipeline.drain()
    stats.seconds = time.perf_counter() - started
    return stats


def _with_asset(runtime: Runtime, alert: Alert) -> Alert:
    """The asset and security level ingest found on the alert's first event (as the detect step does)."""
    scope = TenantScope(root=alert.tenant, tenant_ids=frozenset({alert.tenant}))
    for event in runtime.events.search(scope, EventQuery(ids=alert.event_ids[:1], limit=1)):
        asset = event.get("govsoc.asset")
        if isinstance(asset, dict):
            return dataclasses.replace(alert, asset_id=asset.get("id"), security_level=asset.get("security_level"))
    return alert


__all__ = ["BaselineSpec", "MlDemoStats", "PcapWriter", "WardTraffic", "build_baseline", "dns_message",
           "train_and_score_demo", "write_baseline_capture"]
