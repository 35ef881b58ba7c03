"""Decode: captured frames -> IP packets (addresses, ports, TCP flags and sequence numbers, payload).

Stage: sensors, packet sensor, after `capture`. In: a `Frame`. Out: a `Packet`, None for traffic
that is well-formed but not IPv4/IPv6 (ARP, LLDP, ...) or an unfinished fragment, or `DecodeError`
(with the reason) for a frame that is IP but malformed.

Invariants:
- `struct` and indexing on the raw bytes, not scapy. The common case (Ethernet, IPv4 or IPv6, TCP,
  UDP or ICMP, no options or fragments) has a faster path in `fastpath`, which hands everything else
  here, so both give the same packets.
- Tunnels (IP in IP, GRE with ERSPAN, VXLAN, Geneve, Teredo) are opened: the outer packet carries
  the inner one in `Packet.inner`, so both get their flows, as Suricata reports them.
- IPv4 and IPv6 fragments are reassembled by `Defragmenter`, bounded to `MAX_FRAGMENT_SETS`
  incomplete datagrams (the oldest is dropped beyond) of `MAX_DATAGRAM_BYTES` each; overlapping
  fragments: first copy wins.
"""

from __future__ import annotations

import socket
import struct
from collections import OrderedDict
from dataclasses import dataclass

from sensors.packets.capture import (
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    IPV6_EXTENSIONS,
    LINKTYPE_C_HDLC,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    LINKTYPE_RAW_OLD,
    MAX_DATAGRAM_BYTES,
    MAX_FRAGMENT_SETS,
    MAX_TUNNEL_DEPTH,
    PORT_GENEVE,
    PORT_TEREDO,
    PORT_VXLAN,
    PROTO_ESP,
    PROTO_GRE,
    PROTO_ICMP,
    PROTO_ICMP6,
    PROTO_IPIP,
    PROTO_IPV6_IN_IP,
    PROTO_SCTP,
    PROTO_TCP,
    PROTO_UDP,
    TUNNEL_PORTS,
    TUNNEL_PROTOS,
    VLAN_TYPES,
    DecodeError,
    Frame,
    Packet,
)

# --- frames -> packets ----------------------------------------------------------------------------

def decode_frame(frame: Frame, defrag: Defragmenter | None = None) -> Packet | None:
    """The IP packet in `frame`; None when it holds something else or an incomplete fragment.

    A tunnel (IP in IP, GRE and ERSPAN, VXLAN, Geneve, Teredo) gives the outer packet with the one
    it carries in `inner` (up to `MAX_TUNNEL_DEPTH` deep); a damaged inner packet is left out.
    Raises `DecodeError` for a frame that is IP but malformed (truncated headers, bad lengths).
    """
    data, linktype = frame.data, frame.linktype
    if linktype == LINKTYPE_ETHERNET:
        return _from_ethernet(frame, data, 0, defrag, 0)
    if linktype in (LINKTYPE_RAW, LINKTYPE_RAW_OLD, LINKTYPE_IPV4, LINKTYPE_IPV6):
        ethertype, pos = (ETHERTYPE_IPV6 if data[:1] and data[0] >> 4 == 6 else ETHERTYPE_IPV4), 0
    elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(data) < 4:
            raise DecodeError("loopback header truncated")
        family = min(struct.unpack("<I", data[:4])[0], struct.unpack(">I", data[:4])[0])  # writer's byte order
        ethertype, pos = (ETHERTYPE_IPV4 if family == socket.AF_INET else ETHERTYPE_IPV6), 4
    elif linktype in _COOKED_HEADERS:
        size, type_at, name = _COOKED_HEADERS[linktype]
        if len(data) < size:
            raise DecodeError(f"{name} header truncated")
        ethertype, pos = (data[type_at] << 8) | data[type_at + 1], size
    else:
        return None
    return _ip(frame, data, pos, ethertype, None, defrag, 0)


# link type -> (header size, offset of the ethertype in it, name)
_COOKED_HEADERS = {LINKTYPE_C_HDLC: (4, 2, "Cisco HDLC"), LINKTYPE_LINUX_SLL: (16, 14, "Linux cooked"),
                   LINKTYPE_LINUX_SLL2: (20, 0, "Linux cooked v2")}


def _from_ethernet(frame: Frame, data: bytes, pos: int, defrag: Defragmenter | None, depth: int) -> Packet | None:
    ethertype, pos, vlan = _ethernet(data, pos)
    return _ip(frame, data, pos, ethertype, vlan, defrag, depth)


def _ip(frame: Frame, data: bytes, pos: int, ethertype: int, vlan: int | None, defrag: Defragmenter | None,
        depth: int) -> Packet | None:
    if ethertype == ETHERTYPE_IPV4:
        return _ipv4(frame, data, pos, vlan, defrag, depth)
    if ethertype == ETHERTYPE_IPV6:
        return _ipv6(frame, data, pos, vlan, defrag, depth)
    return None


def _ethernet(data: bytes, start: int) -> tuple[int, int, int | None]:
    if len(data) < start + 14:
        raise DecodeError("Ethernet header truncated")
    ethertype, pos, vlan = (data[start + 12] << 8) | data[start + 13], start + 14, None
    while ethertype in VLAN_TYPES:  # 802.1Q, QinQ: the outermost tag is the one reported
        if len(data) < pos + 4:
            raise DecodeError("VLAN tag truncated")
        if vlan is None:
            vlan = ((data[pos] << 8) | data[pos + 1]) & 0x0FFF
        ethertype, pos = (data[pos + 2] << 8) | data[pos + 3], pos + 4
    return ethertype, pos, vlan


def _ipv4(frame: Frame, data: bytes, pos: int, vlan: int | None, defrag: Defragmenter | None,
          depth: int) -> Packet | None:
    if len(data) < pos + 20:
        raise DecodeError("IPv4 header truncated")
    ihl = (data[pos] & 0x0F) * 4
    if data[pos] >> 4 != 4 or ihl < 20:
        raise DecodeError(f"not an IPv4 header (version {data[pos] >> 4}, length {ihl})")
    total = (data[pos + 2] << 8) | data[pos + 3]
    if total < ihl or len(data) < pos + ihl:
        raise DecodeError(f"IPv4 total length {total} shorter than its header")
    end = min(len(data), pos + total)  # Ethernet padding dropped; a cut capture keeps what it has
    proto, src, dst = data[pos + 9], data[pos + 12:pos + 16], data[pos + 16:pos + 20]
    frag = (data[pos + 6] << 8) | data[pos + 7]
    body = data[pos + ihl:end]
    if frag & 0x3FFF:  # more fragments, or an offset: a fragment
        if defrag is None:
            return None
        whole = defrag.add((4, src, dst, (data[pos + 4] << 8) | data[pos + 5], proto),
                           (frag & 0x1FFF) * 8, bool(frag & 0x2000), body)
        if whole is None:
            return None
        body = whole
    return _tunnel(_transport(frame, 4, src, dst, proto, body, vlan), body, defrag, depth)


def _ipv6(frame: Frame, data: bytes, pos: int, vlan: int | None, defrag: Defragmenter | None,
          depth: int) -> Packet | None:
    if len(data) < pos + 40:
        raise DecodeError("IPv6 header truncated")
    if data[pos] >> 4 != 6:
        raise DecodeError(f"not an IPv6 header (version {data[pos] >> 4})")
    plen = (data[pos + 4] << 8) | data[pos + 5]
    proto, src, dst = data[pos + 6], data[pos + 8:pos + 24], data[pos + 24:pos + 40]
    body = data[pos + 40:pos + 40 + plen] if plen else data[pos + 40:]
    while proto in IPV6_EXTENSIONS or proto == 44:
        if len(body) < 8:
            raise DecodeError(f"IPv6 extension header {proto} truncated")
        if proto == 44:
            if defrag is None:
                return None
            offset_flags = (body[2] << 8) | body[3]
            whole = defrag.add((6, src, dst, struct.unpack(">I", body[4:8])[0], body[0]),
                               offset_flags & 0xFFF8, bool(offset_flags & 1), body[8:])
            if whole is None:
                return None
            proto, body = body[0], whole
            continue
        proto, body = body[0], body[(body[1] + 1) * 8:]
    return _tunnel(_transport(frame, 6, src, dst, proto, body, vlan), body, defrag, depth)


def _transport(frame: Frame, version: int, src: bytes, dst: bytes, proto: int, body: bytes,
               vlan: int | None) -> Packet:
    packet = Packet(frame.index, frame.ts, frame.wire_len, version, src, dst, proto, 0, 0, b"", vlan=vlan)
    if proto == PROTO_TCP:
        if len(body) < 20:
            raise DecodeError("TCP header truncated")
        sport, dport, seq, ack, off_flags = struct.unpack(">HHIIH", body[:14])
        offset = (off_flags >> 12) * 4
        if offset < 20:
            raise DecodeError(f"TCP data offset {offset} is below 20")
        packet.sport, packet.dport, packet.seq, packet.ack = sport, dport, seq, ack
        packet.tcp_flags, packet.payload = off_flags & 0x1FF, body[offset:]
    elif proto in (PROTO_UDP, PROTO_SCTP):
        if len(body) < 8:
            raise DecodeError("UDP header truncated" if proto == PROTO_UDP else "SCTP header truncated")
        packet.sport, packet.dport = struct.unpack(">HH", body[:4])
        packet.payload = body[8:] if proto == PROTO_UDP else b""
        if proto == PROTO_UDP:
            length = (body[4] << 8) | body[5]
            if 8 <= length < len(body):
                packet.payload = body[8:length]
    elif proto in (PROTO_ICMP, PROTO_ICMP6):
        if len(body) < 4:
            raise DecodeError("ICMP header truncated")
        packet.sport, packet.dport = body[0], body[1]
    elif proto == PROTO_ESP and len(body) >= 4:  # one flow per SPI, as Suricata keys them
        packet.sport, packet.dport = (body[0] << 8) | body[1], (body[2] << 8) | body[3]
    return packet


def _tunnel(packet: Packet, body: bytes, defrag: Defragmenter | None, depth: int) -> Packet:
    """Set `packet.inner` when `packet` is a tunnel we know; `body` is its IP payload."""
    proto = packet.proto
    if depth >= MAX_TUNNEL_DEPTH or not (proto in TUNNEL_PROTOS or (
            proto == PROTO_UDP and (packet.dport in TUNNEL_PORTS or packet.sport in TUNNEL_PORTS))):
        return packet  # the common case, decided before anything is allocated
    frame = Frame(packet.index, packet.ts, LINKTYPE_RAW, body, len(body))
    try:
        if packet.proto in (PROTO_IPIP, PROTO_IPV6_IN_IP):
            packet.inner = _ip(frame, body, 0, ETHERTYPE_IPV4 if packet.proto == PROTO_IPIP else ETHERTYPE_IPV6,
                               packet.vlan, defrag, depth + 1)
        elif packet.proto == PROTO_GRE:
            packet.inner = _gre(frame, body, defrag, depth + 1)
        elif packet.proto == PROTO_UDP:
            packet.inner = _udp_tunnel(frame, packet, defrag, depth + 1)
    except DecodeError:
        packet.inner = None  # the tunnel's own flow still counts; what it carries is unreadable
    return packet


def _gre(frame: Frame, body: bytes, defrag: Defragmenter | None, depth: int) -> Packet | None:
    if len(body) < 4:
        return None
    flags, ethertype = (body[0] << 8) | body[1], (body[2] << 8) | body[3]
    pos = 4 + 4 * (bool(flags & 0x8000) + bool(flags & 0x2000) + bool(flags & 0x1000))  # checksum, key, seq
    if ethertype == 0x88BE:  # ERSPAN: type II has a sequence number and an 8-byte header, type I neither
        pos += 8 if flags & 0x1000 else 0
        ethertype = 0x6558
    elif ethertype == 0x22EB:  # ERSPAN type III: 12 bytes, 8 more with its optional sub-header
        pos += 20 if len(body) > pos + 11 and body[pos + 11] & 0x01 else 12
        ethertype = 0x6558
    if ethertype == 0x6558:
        return _from_ethernet(frame, body, pos, defrag, depth)
    return _ip(frame, body, pos, ethertype, None, defrag, depth)


def _udp_tunnel(frame: Frame, packet: Packet, defrag: Defragmenter | None, depth: int) -> Packet | None:
    payload, ports = packet.payload, (packet.sport, packet.dport)
    if PORT_VXLAN in ports and len(payload) >= 8 and payload[0] & 0x08:
        return _from_ethernet(frame, payload, 8, defrag, depth)
    if PORT_GENEVE in ports and len(payload) >= 8:
        pos, ethertype = 8 + (payload[0] & 0x3F) * 4, (payload[2] << 8) | payload[3]
        if ethertype == 0x6558:
            return _from_ethernet(frame, payload, pos, defrag, depth)
        return _ip(frame, payload, pos, ethertype, None, defrag, depth)
    if PORT_TEREDO in ports and len(payload) >= 40 and payload[0] >> 4 == 6:
        plen = (payload[4] << 8) | payload[5]
        if plen + 40 == len(payload):  # Teredo is told apart from other traffic on its port by the length
            return _ip(frame, payload, 0, ETHERTYPE_IPV6, None, defrag, depth)
    return None


class Defragmenter:
    """Reassembles IP fragments into whole datagrams; bounded to `max_sets` incomplete ones."""

    def __init__(self, max_sets: int = MAX_FRAGMENT_SETS) -> None:
        self.max_sets = max_sets
        self.dropped = 0  # incomplete datagrams given up to stay within the bound
        self._sets: OrderedDict[tuple[int, bytes, bytes, int, int], _FragmentSet] = OrderedDict()

    def add(self, key: tuple[int, bytes, bytes, int, int], offset: int, more: bool, data: bytes) -> bytes | None:
        """The whole datagram's payload once `key`'s fragments cover it, else None."""
        fragments = self._sets.get(key)
        if fragments is None:
            if len(self._sets) >= self.max_sets:
                self._sets.popitem(last=False)
                self.dropped += 1
            fragments = self._sets[key] = _FragmentSet()
        if offset not in fragments.parts:
            fragments.parts[offset] = data
            fragments.size += len(data)
        if fragments.size > MAX_DATAGRAM_BYTES:  # overlapping or hostile fragments: give the datagram up
            del self._sets[key]
            self.dropped += 1
            return None
        if not more:
            fragments.total = offset + len(data)
        whole = fragments.assemble()
        if whole is not None:
            del self._sets[key]
        return whole


@dataclass(slots=True)
class _FragmentSet:
    parts: dict[int, bytes]
    total: int | None = None
    size: int = 0  # bytes held

    def __init__(self) -> None:
        self.parts, self.total, self.size = {}, None, 0

    def assemble(self) -> bytes | None:
        if self.total is None:
            return None
        out, covered = bytearray(), 0
        for offset in sorted(self.parts):
            if offset > covered:
                return None
            out += self.parts[offset][covered - offset:]
            covered = max(covered, offset + len(self.parts[offset]))
        return bytes(out[:self.total]) if covered >= self.total else None
