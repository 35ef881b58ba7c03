"""Flows: decoded packets -> bidirectional 5-tuple flow records, and in-order TCP byte streams.

Stage: sensors, packet sensor, after `capture`. In: `Packet`s in capture order. Out: `Flow`s that
have ended (idle, active timeout, TCP close, eviction, end of input), from `FlowTable.drain`.

Invariants:
- One flow per (transport, {address, port}, {address, port}) at a time, whichever direction a
  packet goes. The originator (`src`) is the sender of the first packet, except that a TCP flow
  first seen on a SYN-ACK or mid-stream from a port below 1024 to one above (and an ICMP flow first
  seen on a reply) is turned round.
- Time is the packets' time, never the wall clock: a capture gives the same flows however fast it
  is read. Packets a little out of order are counted in their flow and never move time back.
  Timeouts are checked once a second of capture time, so a flow ends at most 1 s late.
- Bounded: at most `FlowConfig.max_flows` flows are open; the least recently seen one is ended
  (`end_reason="evicted"`) to admit a new one, and `FlowTable.evicted` counts them.
- A SYN on a closed TCP flow (its ports reused) ends it and opens a new one.
- A flow open longer than `active_timeout` is ended (`"active"`) and continued by a new flow with
  the same key, so long connections report before they close; its application state carries over.
- `TcpStream` hands out each byte of one direction at most once, in sequence order; it holds at
  most `MAX_PENDING_BYTES` out of order, and skips a gap it cannot fill rather than stall.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import struct
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import communityid

from sensors.packets.capture import PROTO_ICMP, PROTO_ICMP6, PROTO_TCP, Packet

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MAX_PENDING_BYTES = 64 * 1024  # per direction
_COMMUNITY_IDS: dict[int, Any] = {}  # seed -> communityid.CommunityID
FlowKey = tuple[int, bytes, int, bytes, int]
_PORT_PROTOS = frozenset(communityid.PORT_PROTOS)


@dataclass(frozen=True, slots=True)
class FlowConfig:
    """Timeouts in seconds of capture time, and the cap on open flows."""

    idle_timeout: float = 120.0
    active_timeout: float = 1800.0
    closed_timeout: float = 5.0  # after RST or both FINs, for the last ACKs to join the flow
    max_flows: int = 100_000
    community_id_seed: int = 0  # Community ID's seed; 0 unless every sensor to correlate with changes it

    def __post_init__(self) -> None:
        if self.max_flows < 1 or min(self.idle_timeout, self.active_timeout, self.closed_timeout) <= 0:
            raise ValueError("flow timeouts must be positive and max_flows at least 1")


@dataclass(slots=True)
class Flow:
    """Counters and state of one bidirectional flow; `src` is the originator (client)."""

    key: FlowKey
    version: int
    proto: int
    src: bytes
    sport: int
    dst: bytes
    dport: int
    start: float
    end: float
    first_index: int  # the packet that opened it: part of its deterministic id
    vlan: int | None = None
    packets_to_server: int = 0
    packets_to_client: int = 0
    bytes_to_server: int = 0
    bytes_to_client: int = 0
    flags_to_server: int = 0
    flags_to_client: int = 0
    history: str = ""  # Zeek's conn.log letters: upper case from the originator, each once
    state: str = "new"  # new, established, closing (a FIN seen), closed (RST or both FINs)
    end_reason: str = ""
    app: Any = None  # application-layer state, owned by the reader
    seed: int = 0  # of the Community ID
    src_text: str = ""  # the addresses as text, kept by `events` once computed
    dst_text: str = ""
    _fins: int = 0
    _community_id: str = ""  # computed on first use: every event of the flow carries it

    @property
    def community_id(self) -> str:
        """Community ID v1 (with `seed`) of the flow's 5-tuple; for ICMP, of type and code."""
        if not self._community_id:
            if self.proto in (PROTO_ICMP, PROTO_ICMP6) or self.proto not in _PORT_PROTOS:
                self._community_id = _library_community_id(self)
            else:
                self._community_id = community_id_v1(self.seed, self.proto, self.src, self.dst, self.sport,
                                                     self.dport)
        return self._community_id

    def count(self, packet: Packet, to_server: bool) -> None:
        if packet.ts > self.end:
            self.end = packet.ts
        if to_server:
            self.packets_to_server += 1
            self.bytes_to_server += packet.wire_len
        else:
            self.packets_to_client += 1
            self.bytes_to_client += packet.wire_len
        if self.proto == PROTO_TCP:
            self._track_tcp(packet.tcp_flags, to_server, bool(packet.payload))

    def _track_tcp(self, flags: int, to_server: bool, has_data: bool) -> None:
        if to_server:
            self.flags_to_server |= flags
        else:
            self.flags_to_client |= flags
        for letter in _history_letters(flags & (FIN | SYN | RST | ACK), to_server, has_data):
            if letter not in self.history:
                self.history += letter
        if flags & RST:
            self.state = "closed"
        elif flags & FIN:
            self._fins |= 1 if to_server else 2
            self.state = "closed" if self._fins == 3 else "closing"
        elif self.state == "new" and flags & ACK and self.flags_to_client & SYN and self.flags_to_server & SYN:
            self.state = "established"


@functools.cache  # 64 keys at most; bench/packets.py: ~3 % of the sensor's time went to building these
def _history_letters(flags: int, to_server: bool, has_data: bool) -> str:
    """The history letters one segment can add, in the order they are added (Zeek's conn.log)."""
    letters = ""
    if flags & SYN:
        letters += "h" if flags & ACK else "s"  # Zeek: "h" is a SYN-ACK
    if flags & FIN:
        letters += "f"
    if flags & RST:
        letters += "r"
    if flags & ACK and not has_data and not flags & SYN:
        letters += "a"
    if has_data:
        letters += "d"
    return letters.upper() if to_server else letters


# ICMP replies -> the request type they answer, so an echo and its reply are one flow
_ICMP_REQUESTS = {PROTO_ICMP: {0: 8, 14: 13, 16: 15, 18: 17}, PROTO_ICMP6: {129: 128, 136: 135, 134: 133}}


def community_id_v1(seed: int, proto: int, src: bytes, dst: bytes, sport: int, dport: int) -> str:
    """Community ID v1 for a port-carrying protocol, as the `communityid` package computes it.

    Computed here with struct and hashlib because the package validates and converts every
    address on each call: bench/packets.py measured it at a third of the sensor's time.
    """
    if (src, sport) > (dst, dport):
        src, dst, sport, dport = dst, src, dport, sport
    digest = hashlib.sha1(struct.pack(">H", seed) + src + dst + struct.pack(">BBHH", proto, 0, sport, dport)).digest()
    return "1:" + base64.b64encode(digest).decode("ascii")


def _library_community_id(flow: Flow) -> str:
    if flow.proto == PROTO_ICMP:
        tpl = communityid.FlowTuple.make_icmp(flow.src, flow.dst, flow.sport, flow.dport)
    elif flow.proto == PROTO_ICMP6:
        tpl = communityid.FlowTuple.make_icmp6(flow.src, flow.dst, flow.sport, flow.dport)
    else:
        tpl = communityid.FlowTuple.make_ip(flow.src, flow.dst, flow.proto)
    algorithm = _COMMUNITY_IDS.get(flow.seed)
    if algorithm is None:
        algorithm = _COMMUNITY_IDS[flow.seed] = communityid.CommunityID(seed=flow.seed)
    return str(algorithm.calc(tpl))


def flow_key(packet: Packet) -> FlowKey:
    """Direction-free: both directions of a conversation give the same key."""
    replies = _ICMP_REQUESTS.get(packet.proto)
    if replies is not None:
        kind = replies.get(packet.sport, packet.sport)
        low, high = sorted((packet.src, packet.dst))
        return (packet.proto, low, kind, high, packet.dport)
    a, b = (packet.src, packet.sport), (packet.dst, packet.dport)
    if b < a:
        a, b = b, a
    return (packet.proto, a[0], a[1], b[0], b[1])


class FlowTable:
    """Open flows by key, least recently seen first; ended flows wait in `drain()`.

    Not thread-safe: one table per capture being read.
    """

    def __init__(self, config: FlowConfig | None = None) -> None:
        self.config = config or FlowConfig()
        self.evicted = 0
        self.now = 0.0
        self._next_sweep = 0.0
        self._flows: OrderedDict[FlowKey, Flow] = OrderedDict()
        self._closing: deque[tuple[float, FlowKey, Flow]] = deque()
        self._ended: list[Flow] = []

    def __len__(self) -> int:
        return len(self._flows)

    def add(self, packet: Packet) -> tuple[Flow, bool]:
        """Count `packet` in its flow (opening one if needed); returns (flow, is from the originator)."""
        ts, proto = packet.ts, packet.proto
        if ts >= self._next_sweep:
            self._advance(ts)
        if proto in _ICMP_REQUESTS:
            key = flow_key(packet)
        else:  # flow_key inlined for TCP and UDP: bench/packets.py, ~3 % of the sensor's time
            src, sport, dst, dport = packet.src, packet.sport, packet.dst, packet.dport
            key = (proto, dst, dport, src, sport) if (dst, dport) < (src, sport) else (proto, src, sport, dst, dport)
        flow = self._flows.get(key)
        if flow is not None and flow.state == "closed" and packet.tcp_flags & (SYN | ACK) == SYN:
            del self._flows[key]  # the ports are reused by a new connection: a new flow
            self._end(flow, "closed")
            flow = None
        if flow is None:
            flow = self._open(key, packet)
        elif ts - flow.start >= self.config.active_timeout:
            flow = self._continue(flow, packet)
        else:
            self._flows.move_to_end(key)
        to_server = packet.src == flow.src and (packet.sport == flow.sport or proto in _ICMP_REQUESTS)
        # Flow.count inlined but for TCP's state: bench/packets.py, ~4 % of the sensor's time.
        if ts > flow.end:
            flow.end = ts
        if to_server:
            flow.packets_to_server += 1
            flow.bytes_to_server += packet.wire_len
        else:
            flow.packets_to_client += 1
            flow.bytes_to_client += packet.wire_len
        if proto == PROTO_TCP:
            was_closed = flow.state == "closed"
            flow._track_tcp(packet.tcp_flags, to_server, bool(packet.payload))
            if flow.state == "closed" and not was_closed:
                self._closing.append((ts + self.config.closed_timeout, key, flow))
        return flow, to_server

    @property
    def has_ended(self) -> bool:
        """Whether `drain()` has flows to give (cheap, for the per-packet check)."""
        return bool(self._ended)

    def drain(self) -> list[Flow]:
        """Flows ended since the last call, in the order they ended."""
        ended, self._ended = self._ended, []
        return ended

    def flush(self) -> list[Flow]:
        """End every open flow (end of input) and return all ended flows."""
        for flow in self._flows.values():
            self._end(flow, "end")
        self._flows.clear()
        self._closing.clear()
        return self.drain()

    def _open(self, key: FlowKey, packet: Packet) -> Flow:
        if len(self._flows) >= self.config.max_flows:
            _, oldest = self._flows.popitem(last=False)
            self.evicted += 1
            self._end(oldest, "evicted")
        src, sport, dst, dport = packet.src, packet.sport, packet.dst, packet.dport
        replies = _ICMP_REQUESTS.get(packet.proto, {})
        if packet.sport in replies:  # first seen: a reply; the flow is the request's
            src, sport, dst = dst, replies[packet.sport], src
        elif packet.proto == PROTO_TCP and _is_reply(packet):
            src, sport, dst, dport = dst, dport, src, sport
        flow = Flow(key, packet.version, packet.proto, src, sport, dst, dport, packet.ts, packet.ts,
                    packet.index, packet.vlan, seed=self.config.community_id_seed)
        self._flows[key] = flow
        return flow

    def _continue(self, flow: Flow, packet: Packet) -> Flow:
        self._end(flow, "active")
        fresh = Flow(flow.key, flow.version, flow.proto, flow.src, flow.sport, flow.dst, flow.dport,
                     packet.ts, packet.ts, packet.index, flow.vlan, state=flow.state, app=flow.app, seed=flow.seed)
        self._flows[flow.key] = fresh
        self._flows.move_to_end(flow.key)
        return fresh

    def _advance(self, ts: float) -> None:
        # Timeouts are checked once per second of capture time, not per packet (bench/packets.py:
        # the per-packet sweep cost a tenth of the sensor's time); flows end at most 1 s late.
        # `add` makes the same test before calling.
        if ts < self._next_sweep:
            return
        self.now, self._next_sweep = ts, ts + 1.0
        while self._closing and self._closing[0][0] <= ts:
            _, key, flow = self._closing.popleft()
            if self._flows.get(key) is flow:
                del self._flows[key]
                self._end(flow, "closed")
        idle = ts - self.config.idle_timeout
        while self._flows:
            key, flow = next(iter(self._flows.items()))
            if flow.end > idle:
                break
            del self._flows[key]
            self._end(flow, "idle")

    def _end(self, flow: Flow, reason: str) -> None:
        flow.end_reason = reason
        self._ended.append(flow)


def _is_reply(packet: Packet) -> bool:
    # A SYN-ACK, or mid-stream traffic from a port below 1024 to one above (server to client), as
    # Suricata also turns such flows round (suricata-verify smb3-03-midstream, tcp-stream-after-swap).
    flags = packet.tcp_flags
    if flags & SYN:
        return bool(flags & ACK)
    return packet.sport < 1024 <= packet.dport


@dataclass(slots=True)
class TcpStream:
    """One direction of a TCP connection as in-order bytes (see the module's invariants)."""

    next_seq: int | None = None
    pending: dict[int, bytes] = field(default_factory=dict)
    pending_bytes: int = 0
    gaps: int = 0  # holes skipped: acknowledged but never captured, or beyond the pending bound
    lost: int = 0  # bytes in those holes (where known)

    def add(self, seq: int, flags: int, payload: bytes) -> bytes:
        """The bytes this segment makes available in order (often `payload` itself, or b"")."""
        if flags & SYN:
            self.next_seq = (seq + 1) & 0xFFFFFFFF
            seq = self.next_seq
        if not payload:
            return b""
        if self.next_seq is None:  # joined mid-stream: start at the first data seen
            self.next_seq = seq
        ahead = (seq - self.next_seq) & 0xFFFFFFFF
        if ahead >= 0x80000000:  # starts before what was delivered: a retransmission, maybe overlapping
            behind = 0x100000000 - ahead
            if behind >= len(payload):
                return b""
            payload, ahead = payload[behind:], 0
        if ahead:
            if seq not in self.pending:
                self.pending[seq] = payload
                self.pending_bytes += len(payload)
            if self.pending_bytes <= MAX_PENDING_BYTES:
                return b""
            before = self.next_seq
            self._skip_gap()
            self.lost += (self.next_seq - before) & 0xFFFFFFFF
            return self._take_pending()
        self.next_seq = (self.next_seq + len(payload)) & 0xFFFFFFFF
        return payload + self._take_pending() if self.pending else payload

    def acked(self, ack: int) -> bytes:
        """The peer acknowledged up to `ack`: bytes missing before it will not come (capture loss).

        Skips the hole, counting it in `gaps` and `lost`, and returns what becomes available after it.
        """
        if self.next_seq is None:
            return b""
        ahead = (ack - self.next_seq) & 0xFFFFFFFF
        if not ahead or ahead >= 0x80000000:
            return b""
        if self.pending:
            before = self.next_seq
            self._skip_gap()
            self.lost += (self.next_seq - before) & 0xFFFFFFFF
            return self._take_pending()
        self.next_seq, self.gaps, self.lost = ack, self.gaps + 1, self.lost + ahead
        return b""

    def _skip_gap(self) -> None:
        start = self.next_seq or 0  # set by add before any segment is pending
        self.next_seq = min(self.pending, key=lambda s: (s - start) & 0xFFFFFFFF)
        self.gaps += 1

    def _take_pending(self) -> bytes:
        out = bytearray()
        progressed = True
        while self.pending and progressed and self.next_seq is not None:
            progressed = False
            for seq in list(self.pending):
                ahead = (seq - self.next_seq) & 0xFFFFFFFF
                data = self.pending[seq]
                if ahead < 0x80000000 and ahead:
                    continue
                del self.pending[seq]
                self.pending_bytes -= len(data)
                skip = 0 if not ahead else 0x100000000 - ahead
                if skip < len(data):
                    out += data[skip:]
                    self.next_seq = (self.next_seq + len(data) - skip) & 0xFFFFFFFF
                progressed = True
        return bytes(out)
