"""Fast path: a classic pcap file -> decoded packets, the common case in one loop.

Stage: sensors, packet sensor, in place of `capture.read_frames` + `decode.decode_frame` for files.
In: a pcap or pcapng stream. Out: `Packet`s for the frames it decodes itself and `Frame`s (to be
decoded by `decode.decode_frame`) for everything else, then a `FrameError` if the file is damaged.

Invariants:
- Same packets as the general decoder: only frames that are certainly well-formed Ethernet (at
  most one 802.1Q tag) + IPv4 (unfragmented) or IPv6 (no extension headers) + TCP, UDP (not a
  tunnel port) or ICMP are decoded here; anything else, including anything malformed, is yielded
  as a `Frame` so that `decode` gives it the one treatment (and dead-letter reason) it always had.
  tests/sensors/packets/test_fastpath.py checks the agreement on generated and fuzzed frames.
- Same framing and the same `FrameError`s as `capture.read_frames`; pcapng files go through it.
- Why: bench/packets.py (200k generated packets) spent ~40 % of the sensor's time in the frame ->
  decode chain of small calls (Frame, _from_ethernet, _ethernet, _ip, _ipv4, _transport, _tunnel);
  one loop with `struct` over fixed offsets does the same in a fraction.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import IO

from sensors.packets.capture import (
    LINKTYPE_ETHERNET,
    MAX_FRAME_BYTES,
    PCAP_MAGIC,
    TUNNEL_PORTS,
    Frame,
    FrameError,
    Packet,
    read_frames,
)

_IPV4 = struct.Struct(">BxHxxHxB2x4s4s")  # version+IHL, total length, flags+offset, protocol, src, dst
_IPV6 = struct.Struct(">BxxxHBx16s16s")  # version, payload length, next header, src, dst
_TCP = struct.Struct(">HHIIH")  # ports, seq, ack, data offset + flags
_UDP = struct.Struct(">HHH")  # ports, length


def read_packets(stream: IO[bytes]) -> Iterator[Packet | Frame | FrameError]:
    """Packets (the common case), frames (the rest, in order) and at most one final `FrameError`."""
    head = stream.read(4)
    if head not in PCAP_MAGIC:
        yield from read_frames(stream, head)
        return
    endian, unit = PCAP_MAGIC[head]
    header = stream.read(20)
    if len(header) < 20:
        yield FrameError(0, 0, "pcap file header truncated", head + header)
        return
    linktype = struct.unpack(endian + "I", header[16:20])[0] & 0x0FFFFFFF
    yield from _records(stream, endian, unit, linktype)


def _records(stream: IO[bytes], endian: str, unit: float, linktype: int) -> Iterator[Packet | Frame | FrameError]:
    read, unpack_record = stream.read, struct.Struct(endian + "IIII").unpack
    is_ethernet = linktype == LINKTYPE_ETHERNET
    index, offset = 0, 24
    while True:
        head = read(16)
        if len(head) < 16:
            if head:
                yield FrameError(index, offset, "pcap record header truncated", head)
            return
        sec, frac, incl, orig = unpack_record(head)
        if incl > MAX_FRAME_BYTES:
            yield FrameError(index, offset, f"pcap record length {incl} exceeds {MAX_FRAME_BYTES}", head)
            return
        data = read(incl)
        if len(data) < incl:
            yield FrameError(index, offset, f"pcap record truncated ({len(data)} of {incl} bytes)", head + data)
            return
        ts, wire_len = sec + frac * unit, max(orig, incl)
        packet = decode_ethernet(data, index, ts, wire_len) if is_ethernet else None
        yield packet if packet is not None else Frame(index, ts, linktype, data, wire_len)
        index += 1
        offset += 16 + incl


def decode_ethernet(data: bytes, index: int, ts: float, wire_len: int) -> Packet | None:
    """The packet in an Ethernet frame when it is the common, well-formed case; None to let `decode` judge."""
    size = len(data)
    if size < 34:
        return None
    ethertype, pos, vlan = (data[12] << 8) | data[13], 14, None
    if ethertype == 0x8100:
        if size < 38:
            return None
        vlan, ethertype, pos = ((data[14] << 8) | data[15]) & 0x0FFF, (data[16] << 8) | data[17], 18
    if ethertype == 0x0800:
        if size < pos + 20:
            return None
        vihl, total, frag, proto, src, dst = _IPV4.unpack_from(data, pos)
        ihl = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or ihl < 20 or total < ihl or frag & 0x3FFF or size < pos + ihl:
            return None
        start, end, version = pos + ihl, min(size, pos + total), 4
    elif ethertype == 0x86DD:
        if size < pos + 40:
            return None
        v, plen, proto, src, dst = _IPV6.unpack_from(data, pos)
        if v >> 4 != 6:
            return None
        start, version = pos + 40, 6
        end = min(size, start + plen) if plen else size
    else:
        return None
    return _transport(data, start, end, (index, ts, wire_len, version, src, dst, proto, vlan))


def _transport(data: bytes, start: int, end: int,
               ip: tuple[int, float, int, int, bytes, bytes, int, int | None]) -> Packet | None:
    index, ts, wire_len, version, src, dst, proto, vlan = ip
    length = end - start
    if proto == 6:
        if length < 20:
            return None
        sport, dport, seq, ack, off_flags = _TCP.unpack_from(data, start)
        offset = (off_flags >> 12) * 4
        if offset < 20:
            return None
        return Packet(index, ts, wire_len, version, src, dst, 6, sport, dport, data[start + offset:end],
                      off_flags & 0x1FF, seq, ack, vlan)
    if proto == 17:
        if length < 8:
            return None
        sport, dport, udp_length = _UDP.unpack_from(data, start)
        if sport in TUNNEL_PORTS or dport in TUNNEL_PORTS:
            return None
        stop = start + udp_length if 8 <= udp_length < length else end
        return Packet(index, ts, wire_len, version, src, dst, 17, sport, dport, data[start + 8:stop], vlan=vlan)
    if proto == 1 or proto == 58:  # ICMP, ICMPv6 (in either IP version, as `decode` takes them)
        if length < 4:
            return None
        return Packet(index, ts, wire_len, version, src, dst, proto, data[start], data[start + 1], b"", vlan=vlan)
    return None
