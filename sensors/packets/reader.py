"""Reader: a capture file (or a live interface) -> batches of ECS events and dead letters.

Stage: sensors, packet sensor, the entry point. In: a pcap/pcapng path (or frames from
`capture.sniff_frames`) and a `CaptureSource` (whose tenant, which sensor). Out:
`sensors.files.LogBatch`es holding flow, dns, http and tls events in the order they complete.

Invariants:
- Never raises for content. A malformed packet (truncated or inconsistent headers), a message on
  the DNS port that is not DNS and a damaged capture file become dead letters whose reason starts
  with where (`packet 12: IPv4 header truncated`) and whose raw bytes are the frame (for DNS, the
  message); the rest of the capture is still read. Dead letters are sampled: the first
  `MAX_DEAD_LETTERS` per capture are kept, all are counted in `CaptureStats`. Only an unreadable
  file raises `OSError`.
- Deterministic: the same capture gives the same events and ids. Ids: `stable_id(tenant, sensor,
  absolute path, dataset, Community ID, packet index, n)`: for a flow, its first packet and start
  time; for an application event, the packet that completed it and its number within the flow.
  Times come from the capture, never the wall clock.
- Bounded memory: flows are capped by `FlowConfig.max_flows`; per flow, TCP reassembly and hello /
  head buffers are bounded (see `flows`, `tls`, `http`: some 300 KiB at worst, a few hundred bytes
  usually); a batch holds at most `batch_size` records. There is no budget across flows yet: hostile
  traffic filling every flow's buffers could hold max_flows times the per-flow bound.
- Application events of a flow come before its flow event; an HTTP transaction is one event, sent
  when its response head arrives (or, without one, when the flow ends).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from config.errors import ConfigError
from pipeline import ecs
from pipeline.records import DeadLetter, Event
from sensors.files import OBSERVER_TYPE_SENSOR, ByteProgress, LogBatch
from sensors.packets import events
from sensors.packets.capture import (
    PROTO_TCP,
    PROTO_UDP,
    DecodeError,
    Frame,
    FrameError,
    Packet,
    sniff_frames,
)
from sensors.packets.decode import Defragmenter, decode_frame
from sensors.packets.dns import DnsError, parse_dns
from sensors.packets.fastpath import read_packets
from sensors.packets.flows import ACK, SYN, Flow, FlowConfig, FlowTable, TcpStream
from sensors.packets.gcscope import fewer_collections
from sensors.packets.http import HttpReader, HttpRequest, HttpResponse, looks_like_request
from sensors.packets.ids import PrefixedIds, iso_utc
from sensors.packets.tls import ClientHello, HelloReader, ServerHello

log = structlog.get_logger(__name__)

MAX_DEAD_LETTERS = 1000
MAX_TIMESTAMP = 253402300800.0  # 10000-01-01: datetime's limit
DNS_PORTS = frozenset((53, 5353, 5355))  # DNS, multicast DNS, LLMNR: one message format
_Record = Event | DeadLetter


@dataclass(frozen=True, slots=True)
class CaptureSource:
    """Whose traffic this is (`organization.id`), which sensor saw it (`observer.name`), flow limits."""

    tenant: str
    sensor: str
    flows: FlowConfig = field(default_factory=FlowConfig)

    def __post_init__(self) -> None:
        if not self.tenant or not self.sensor:
            raise ConfigError("tenant and sensor must not be empty")


@dataclass(slots=True)
class CaptureStats:
    """Counters of one read; pass one in to see them (they are also logged at the end)."""

    packets: int = 0
    not_ip: int = 0  # well-formed frames that carry no IP (ARP, LLDP, ...) or an unfinished fragment
    malformed: int = 0
    dead_letters_dropped: int = 0  # malformed input counted but beyond MAX_DEAD_LETTERS
    flows: int = 0
    flows_evicted: int = 0
    events: int = 0


def read_capture(path: Path, source: CaptureSource, *, batch_size: int = 1000,
                 on_progress: Callable[[int], None] = lambda n: None,
                 stats: CaptureStats | None = None) -> Iterator[LogBatch]:
    """Batches of at most `batch_size` records of the capture at `path`, in the order they complete.

    `on_progress(n)` is told the file bytes read since its last call, after each batch and at the
    end, so the calls add up to the file's size. Raises `OSError` only when the file cannot be read.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    with path.open("rb") as disk:
        report = ByteProgress(disk, on_progress)

        session = _Session(source, str(path), str(path.resolve()), stats or CaptureStats())
        with fewer_collections():
            yield from _batched(session.records(read_packets(disk)), batch_size, after_batch=report)
        report()


def read_interface(interface: str, source: CaptureSource, *, bpf_filter: str = "", count: int = 0,
                   timeout: float | None = None, batch_size: int = 1000,
                   stats: CaptureStats | None = None) -> Iterator[LogBatch]:
    """Live capture (see `capture.sniff_frames`), processed as a file is; needs CAP_NET_RAW.

    A batch is yielded when full, so a quiet link holds events until `count` or `timeout` ends it.
    """
    session = _Session(source, f"live:{interface}", f"live:{interface}", stats or CaptureStats())
    frames = sniff_frames(interface, bpf_filter, count=count, timeout=timeout)
    with fewer_collections():
        yield from _batched(session.records(frames), batch_size, after_batch=lambda: None)


def _batched(records: Iterable[_Record], batch_size: int, *, after_batch: Callable[[], None]) -> Iterator[LogBatch]:
    batch = LogBatch()
    for record in records:
        if isinstance(record, Event):
            batch.events.append(record)
        else:
            batch.dead_letters.append(record)
        if len(batch.events) + len(batch.dead_letters) >= batch_size:
            yield batch
            after_batch()
            batch = LogBatch()
    if batch.events or batch.dead_letters:
        yield batch


@dataclass(slots=True)
class _App:
    """What the reader knows of one flow's application layer; `kind` "" means: stop looking."""

    kind: str | None = None
    streams: tuple[TcpStream, TcpStream] | None = None  # TCP only, made on the first segment
    readers: tuple[Any, Any] = (None, None)  # HttpReader or HelloReader, client side then server side
    buffers: tuple[bytearray, bytearray] | None = None  # DNS over TCP
    requests: deque[tuple[float, int, HttpRequest]] = field(default_factory=deque)
    client_hello: tuple[float, int, ClientHello] | None = None
    is_tls_sent: bool = False
    count: int = 0  # application events emitted: numbers them within the flow, for their ids


_IGNORED = _App(kind="")  # shared by every flow whose application layer is not read; never changed


class _Session:
    """The state of reading one capture: flow table, fragments, counters, dead-letter sampling."""

    def __init__(self, source: CaptureSource, origin: str, absolute: str, stats: CaptureStats) -> None:
        self.source, self.origin, self.absolute, self.stats = source, origin, absolute, stats
        self.table = FlowTable(source.flows)
        self.defrag = Defragmenter()
        self.out: list[_Record] = []
        self.dead_letters = 0
        self.ids = PrefixedIds(source.tenant, source.sensor, absolute)

    def records(self, frames: Iterable[Packet | Frame | FrameError]) -> Iterator[_Record]:
        stats, track, out = self.stats, self._track, self.out
        for frame in frames:
            if isinstance(frame, Packet):  # decoded by the fast path; a classic pcap time is always in range
                stats.packets += 1
                track(frame)
            elif isinstance(frame, Frame):
                self.packet(frame)
            else:
                self._dead(frame.index, f"byte {frame.offset}: {frame.reason}", frame.raw)
            if out:
                yield from out
                out.clear()
        self._ended(self.table.flush())
        yield from self.out
        self.out.clear()
        self.stats.flows_evicted = self.table.evicted
        log.info("capture_read", source=self.origin, packets=self.stats.packets, events=self.stats.events,
                 malformed=self.stats.malformed, flows=self.stats.flows, evicted=self.table.evicted)

    def packet(self, frame: Frame) -> None:
        self.stats.packets += 1
        if not 0.0 <= frame.ts < MAX_TIMESTAMP:  # a damaged pcapng time would break @timestamp later
            self._dead(frame.index, f"time stamp {frame.ts:.0f} is out of range", frame.data)
            return
        try:
            packet = decode_frame(frame, self.defrag)
        except DecodeError as e:
            self._dead(frame.index, e.reason, frame.data)
            return
        if packet is None:
            self.stats.not_ip += 1
            return
        while packet is not None:  # a tunnel, then what it carries
            self._track(packet)
            packet = packet.inner

    def _track(self, packet: Packet) -> None:
        table = self.table
        flow, to_server = table.add(packet)
        if table.has_ended:
            self._ended(table.drain())
        app = flow.app
        if app is None:
            kind = _kind_by_port(flow)
            app = flow.app = _IGNORED if kind == "" else _App(kind=kind)  # most UDP flows: no state of their own
        if app.kind != "":
            self._inspect(flow, app, packet, to_server)

    def _inspect(self, flow: Flow, app: _App, packet: Packet, to_server: bool) -> None:
        payload = packet.payload
        if flow.proto == PROTO_UDP:
            if payload:
                self._dns(flow, packet.ts, packet.index, payload, frame_raw=payload)
            return
        streams = app.streams
        if streams is None:
            streams = app.streams = (TcpStream(), TcpStream())
        flags = packet.tcp_flags
        # The two calls below are skipped when they would do nothing (an ACK of exactly what was
        # delivered, a segment with no data and no SYN): bench/packets.py, ~5 % of the sensor's time.
        if flags & ACK:
            peer = streams[1 if to_server else 0].next_seq
            if peer is not None and packet.ack != peer:
                self._acked(flow, app, packet, not to_server)
        if payload or flags & SYN:
            data = streams[0 if to_server else 1].add(packet.seq, flags, payload)
            if data:
                self._stream_data(flow, app, packet, data, to_server)

    def _acked(self, flow: Flow, app: _App, packet: Packet, to_server: bool) -> None:
        """An ACK from one side may prove bytes of the other side lost: tell the HTTP reader."""
        if app.streams is None:
            return
        stream = app.streams[0 if to_server else 1]
        lost = stream.lost
        data = stream.acked(packet.ack)
        if stream.lost != lost and app.kind == "http":
            app.readers[0 if to_server else 1].gap(stream.lost - lost)
        if data:
            self._stream_data(flow, app, packet, data, to_server)

    def _stream_data(self, flow: Flow, app: _App, packet: Packet, data: bytes, to_server: bool) -> None:
        if app.kind is None:
            _detect(app, data, to_server)
        if app.kind == "tls":
            self._tls(flow, app, packet, data, to_server)
        elif app.kind == "http":
            self._http(flow, app, packet, data, to_server)
        elif app.kind == "dns":
            self._dns_tcp(flow, app, packet, data, to_server)

    def _tls(self, flow: Flow, app: _App, packet: Packet, data: bytes, to_server: bool) -> None:
        reader: HelloReader = app.readers[0 if to_server else 1]
        hello = reader.feed(data)
        if isinstance(hello, ClientHello) and to_server:
            app.client_hello = (packet.ts, packet.index, hello)
        elif isinstance(hello, ServerHello) and not to_server:
            self._tls_event(flow, app, hello)
        if all(r.is_done for r in app.readers):
            app.kind = ""

    def _tls_event(self, flow: Flow, app: _App, server: ServerHello | None) -> None:
        if app.is_tls_sent or app.client_hello is None:
            return
        ts, index, client = app.client_hello
        app.is_tls_sent = True
        self._event(flow, events.tls_document(flow, ts, client, server), events.DATASET_TLS, index)

    def _http(self, flow: Flow, app: _App, packet: Packet, data: bytes, to_server: bool) -> None:
        requests, responses = app.readers
        for message in (requests if to_server else responses).feed(data):
            if isinstance(message, HttpRequest):
                app.requests.append((packet.ts, packet.index, message))
                responses.methods.append(message.method)
            elif isinstance(message, HttpResponse):
                self._http_event(flow, app, message)
        if requests.stopped and responses.stopped:
            app.kind = ""

    def _http_event(self, flow: Flow, app: _App, response: HttpResponse | None) -> None:
        if app.requests:
            ts, index, request = app.requests.popleft()
            self._event(flow, events.http_document(flow, ts, request, response), events.DATASET_HTTP, index)

    def _dns_tcp(self, flow: Flow, app: _App, packet: Packet, data: bytes, to_server: bool) -> None:
        if app.buffers is None:
            app.buffers = (bytearray(), bytearray())
        buffer = app.buffers[0 if to_server else 1]
        buffer += data
        while len(buffer) >= 2:
            length = (buffer[0] << 8) | buffer[1]
            if len(buffer) < 2 + length:
                if len(buffer) > 65537:
                    app.kind = ""
                break
            message = bytes(buffer[2:2 + length])
            del buffer[:2 + length]
            self._dns(flow, packet.ts, packet.index, message, frame_raw=message)

    def _dns(self, flow: Flow, ts: float, index: int, payload: bytes, *, frame_raw: bytes) -> None:
        try:
            message = parse_dns(payload)
        except DnsError as e:
            self._dead(index, f"not DNS: {e.reason}", frame_raw)
            return
        self._event(flow, events.dns_document(flow, ts, message), events.DATASET_DNS, index)

    def _ended(self, flows: list[Flow]) -> None:
        for flow in flows:
            app = flow.app
            if isinstance(app, _App) and flow.end_reason != "active":
                if app.kind == "http":
                    partial = app.readers[0].finish()
                    if partial is not None:
                        app.requests.append((flow.end, flow.first_index, partial))
                while app.requests:
                    self._http_event(flow, app, None)
                self._tls_event(flow, app, None)
            self.stats.flows += 1
            self._event(flow, events.flow_document(flow), events.DATASET_FLOW, flow.first_index)

    def _event(self, flow: Flow, doc: dict[str, Any], dataset: str, index: int) -> None:
        """Finish and queue one event; its id is (sensor, capture, dataset, flow, packet, n).

        For a flow event `n` is its start time; for an application event, its number within the
        flow, which tells apart two events completed by one packet (pipelined HTTP, DNS over TCP).
        The Community ID keeps apart a tunnel's flow and the flow inside it (one packet opens both).
        """
        doc["organization"] = {"id": self.source.tenant}  # ecs.ORGANIZATION_ID
        doc["observer"] = {"name": self.source.sensor, "type": OBSERVER_TYPE_SENSOR}  # ecs.OBSERVER_NAME, _TYPE
        self.stats.events += 1
        if dataset == events.DATASET_FLOW:
            tail: str | int = repr(flow.start)
        else:
            flow.app.count += 1
            tail = flow.app.count
        event_id = self.ids.make(dataset, doc["network"]["community_id"], index, tail)
        # What Event.create does, without its generic lookups and checks: bench/packets.py measured
        # Event.create at ~20 % of the sensor's time. The document is ours: @timestamp is an aware
        # UTC datetime (events.utc), the tenant is set above; test_reader checks the two agree.
        timestamp = doc[ecs.TIMESTAMP]
        doc[ecs.TIMESTAMP] = iso_utc(timestamp)
        doc["event"]["id"] = event_id  # ecs.EVENT_ID
        self.out.append(Event(id=event_id, timestamp=timestamp, tenant=self.source.tenant, doc=doc))

    def _dead(self, index: int, reason: str, raw: bytes) -> None:
        self.stats.malformed += 1
        if self.dead_letters >= MAX_DEAD_LETTERS:
            self.stats.dead_letters_dropped += 1
            return
        self.dead_letters += 1
        log.warning("packet_dead_lettered", source=self.origin, packet=index, reason=reason)
        self.out.append(DeadLetter.create(source=self.origin, reason=f"packet {index}: {reason}", raw=raw,
                                          tenant=self.source.tenant, position=index))


def _kind_by_port(flow: Flow) -> str | None:
    if flow.proto not in (PROTO_TCP, PROTO_UDP):
        return ""
    if flow.sport in DNS_PORTS or flow.dport in DNS_PORTS:
        return "dns"
    return None if flow.proto == PROTO_TCP else ""


def _detect(app: _App, data: bytes, to_server: bool) -> None:
    """Name the protocol from the first bytes of the stream; "" when it is none we read."""
    if to_server and len(data) >= 3 and data[0] == 0x16 and data[1] == 3:
        app.kind, app.readers = "tls", (HelloReader(), HelloReader())
    elif (to_server and looks_like_request(data)) or (not to_server and data.startswith(b"HTTP/1.")):
        app.kind, app.readers = "http", (HttpReader(is_response=False), HttpReader(is_response=True))
    else:
        app.kind = ""
