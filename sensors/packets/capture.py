"""Capture: pcap / pcapng files and live interfaces -> frames; the records the packet sensor passes on.

Stage: sensors, the first step of the packet sensor. In: a capture file's bytes (or a live
interface and a BPF filter). Out: `Frame`s (link type, capture time, the raw bytes), which
`decode.decode_frame` turns into `Packet`s (`fastpath` does both at once for classic pcap files).

Invariants:
- The file readers never raise for content: a damaged header or record ends the file with one
  `FrameError` (where, why, the bytes) after every good frame before it. Only I/O raises `OSError`.
- The hot loop is `struct` on the raw bytes, not scapy (see `fastpath` and docs/performance.md for
  the rates). Scapy stays for live capture.
- Frames keep their index (from 0 in file order), which later stages use for deterministic ids.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

# Link types (https://www.tcpdump.org/linktypes.html)
LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LOOP = 0, 1, 101, 108
LINKTYPE_LINUX_SLL, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL2 = 113, 228, 229, 276
LINKTYPE_C_HDLC = 104
LINKTYPE_RAW_OLD = 12  # OpenBSD's DLT_RAW value, found in old files
ETHERTYPE_IPV4, ETHERTYPE_IPV6 = 0x0800, 0x86DD
VLAN_TYPES = frozenset((0x8100, 0x88A8, 0x9100))
PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_ICMP6, PROTO_SCTP = 1, 6, 17, 58, 132
PROTO_IPIP, PROTO_IPV6_IN_IP, PROTO_GRE, PROTO_ESP = 4, 41, 47, 50
PORT_VXLAN, PORT_GENEVE, PORT_TEREDO = 4789, 6081, 3544
MAX_TUNNEL_DEPTH = 3
TUNNEL_PROTOS = frozenset((PROTO_IPIP, PROTO_IPV6_IN_IP, PROTO_GRE))
TUNNEL_PORTS = frozenset((PORT_VXLAN, PORT_GENEVE, PORT_TEREDO))
IPV6_EXTENSIONS = frozenset((0, 43, 60))  # hop-by-hop, routing, destination options (44: fragment)
MAX_FRAME_BYTES = 256 * 1024  # a record claiming more is damage, not a packet
MAX_FRAGMENT_SETS = 1024
MAX_DATAGRAM_BYTES = 65535 + 8 * 1500  # an IP datagram, and some slack for overlapping fragments
_PACKET_OUTGOING = 4  # sockaddr_ll.sll_pkttype of a packet the host sends

PCAP_MAGIC = {b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
               b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9)}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ halved bench/packets.py's "records" rate
class Frame:
    """One captured link-layer frame; `wire_len` is its length on the wire (>= len(data)). Not to be changed."""

    index: int
    ts: float  # seconds since the epoch, UTC
    linktype: int
    data: bytes
    wire_len: int


@dataclass(frozen=True, slots=True)
class FrameError:
    """Where a capture file stopped making sense: the reader yields this once and stops."""

    index: int  # the frame index it would have had
    offset: int  # byte offset in the file
    reason: str
    raw: bytes


class DecodeError(ValueError):
    """A frame that claims to be IP but is not well-formed; `reason` says what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class Packet:
    """One decoded IP packet (after reassembly). Addresses are packed bytes (4 or 16)."""

    index: int
    ts: float
    wire_len: int
    version: int
    src: bytes
    dst: bytes
    proto: int
    sport: int  # ICMP: type; ESP: the SPI's high half (events show ports for TCP, UDP, SCTP only)
    dport: int  # ICMP: code; ESP: the SPI's low half
    payload: bytes
    tcp_flags: int = 0
    seq: int = 0
    ack: int = 0
    vlan: int | None = None
    inner: Packet | None = None  # the packet a tunnel carries


# --- files -> frames ------------------------------------------------------------------------------

def read_frames(stream: IO[bytes], head: bytes | None = None) -> Iterator[Frame | FrameError]:
    """Frames of a pcap or pcapng stream in file order; a `FrameError` ends a damaged file.

    `head`: the file's first 4 bytes when the caller has already read them from `stream`.
    """
    if head is None:
        head = stream.read(4)
    if head in PCAP_MAGIC:
        yield from _read_pcap(stream, head)
    elif head == _PCAPNG_SHB:
        yield from _read_pcapng(stream, head)
    else:
        yield FrameError(0, 0, "not a pcap or pcapng file (unknown magic number)", head + stream.read(60))


def _read_pcap(stream: IO[bytes], magic: bytes) -> Iterator[Frame | FrameError]:
    endian, unit = PCAP_MAGIC[magic]
    header = stream.read(20)
    if len(header) < 20:
        yield FrameError(0, 0, "pcap file header truncated", magic + header)
        return
    linktype = struct.unpack(endian + "I", header[16:20])[0] & 0x0FFFFFFF
    record = struct.Struct(endian + "IIII")
    read, unpack_from = stream.read, record.unpack  # local names: this loop runs per packet
    index, offset = 0, 24
    while True:
        head = read(16)
        if len(head) < 16:
            if head:
                yield FrameError(index, offset, "pcap record header truncated", head)
            return
        sec, frac, incl, orig = unpack_from(head)
        if incl > MAX_FRAME_BYTES:
            yield FrameError(index, offset, f"pcap record length {incl} exceeds {MAX_FRAME_BYTES}", head)
            return
        data = read(incl)
        if len(data) < incl:
            yield FrameError(index, offset, f"pcap record truncated ({len(data)} of {incl} bytes)", head + data)
            return
        yield Frame(index, sec + frac * unit, linktype, data, max(orig, incl))
        index += 1
        offset += 16 + incl


@dataclass(slots=True)
class _Interface:
    linktype: int
    unit: float = 1e-6


def _read_pcapng(stream: IO[bytes], first: bytes) -> Iterator[Frame | FrameError]:
    """Section header, interface description, enhanced/simple/obsolete packet blocks; others skipped."""
    endian, interfaces, index, offset = "<", list[_Interface](), 0, 0
    pending = first
    while True:
        head = pending + stream.read(8 - len(pending))
        pending = b""
        if len(head) < 8:
            if head:
                yield FrameError(index, offset, "pcapng block header truncated", head)
            return
        if head[:4] == _PCAPNG_SHB:
            bom = stream.read(4)
            endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">" if bom == b"\x1a\x2b\x3c\x4d" else ""
            if not endian:
                yield FrameError(index, offset, "pcapng section header has no byte-order magic", head + bom)
                return
            interfaces = []
            length = struct.unpack(endian + "I", head[4:8])[0]
            body_len, body_prefix = length - 8, bom
        else:
            length = struct.unpack(endian + "I", head[4:8])[0]
            body_len, body_prefix = length - 8, b""
        if length < 12 or length % 4 or length > MAX_FRAME_BYTES + 64:
            yield FrameError(index, offset, f"pcapng block length {length} is invalid", head)
            return
        body = body_prefix + stream.read(body_len - len(body_prefix))
        if len(body) < body_len:
            yield FrameError(index, offset, f"pcapng block truncated ({len(body)} of {body_len} bytes)", head + body)
            return
        block_type = struct.unpack(endian + "I", head[:4])[0]
        result = _pcapng_block(block_type, body[:-4], endian, interfaces, index)
        if isinstance(result, str):
            yield FrameError(index, offset, result, head + body)
            return
        if result is not None:
            yield result
            index += 1
        offset += length


def _pcapng_block(block_type: int, body: bytes, endian: str, interfaces: list[_Interface],
                  index: int) -> Frame | str | None:
    """A frame, None for a block that holds none, or the reason the block is damaged."""
    if block_type == 1:  # interface description
        if len(body) < 8:
            return "pcapng interface block truncated"
        interfaces.append(_Interface(struct.unpack(endian + "H", body[:2])[0], _tsresol(body[8:], endian)))
        return None
    if block_type in (6, 2):  # enhanced packet, obsolete packet
        if len(body) < 20:
            return "pcapng packet block truncated"
        if block_type == 6:
            ifid, hi, lo, incl, orig = struct.unpack(endian + "IIIII", body[:20])
        else:
            ifid, _drops, hi, lo, incl, orig = struct.unpack(endian + "HHIIII", body[:20])
        if ifid >= len(interfaces):
            return f"pcapng packet names interface {ifid}, which was not described"
        if incl > len(body) - 20:
            return f"pcapng packet length {incl} exceeds its block"
        iface = interfaces[ifid]
        return Frame(index, ((hi << 32) | lo) * iface.unit, iface.linktype, body[20:20 + incl], max(orig, incl))
    if block_type == 3:  # simple packet: no time stamp, interface 0
        if not interfaces or len(body) < 4:
            return "pcapng simple packet block without interface or length"
        orig = struct.unpack(endian + "I", body[:4])[0]
        data = body[4:4 + min(orig, len(body) - 4)]
        return Frame(index, 0.0, interfaces[0].linktype, data, max(orig, len(data)))
    return None


def _tsresol(options: bytes, endian: str) -> float:
    """The if_tsresol option (code 9) of an interface block; microseconds when absent."""
    pos = 0
    while pos + 4 <= len(options):
        code, length = struct.unpack(endian + "HH", options[pos:pos + 4])
        if code == 0:
            break
        if code == 9 and length >= 1 and pos + 5 <= len(options):
            value = options[pos + 4]
            exponent = value & 0x7F
            return float(2 ** -exponent if value & 0x80 else 10 ** -min(exponent, 18))
        pos += 4 + ((length + 3) & ~3)
    return 1e-6


# --- live capture ---------------------------------------------------------------------------------

def sniff_frames(interface: str, bpf_filter: str = "", *, count: int = 0,
                 timeout: float | None = None) -> Iterator[Frame]:
    """Frames from a live interface through scapy's L2 socket and a kernel BPF filter.

    Needs CAP_NET_RAW. Stops after `count` frames (0: never) or `timeout` seconds without one
    (None: waits for ever). Frames are indexed from 0 in arrival order and stamped with the time
    they are read. On Linux loopback each packet passes twice (out, then in): the outgoing copy is
    dropped so a flow counts it once.
    """
    import scapy.arch  # noqa: F401 - chooses this platform's sockets (conf.L2listen)
    from scapy.config import conf

    sock = conf.L2listen(iface=interface, filter=bpf_filter or None)
    try:
        index, linktype = 0, _socket_linktype(sock)
        raw_socket = getattr(sock, "ins", None)
        while not count or index < count:
            if timeout is not None and not _readable(sock, timeout):
                return
            data: bytes | None
            ts: float | None
            if isinstance(raw_socket, socket.socket):
                data, address = raw_socket.recvfrom(MAX_FRAME_BYTES)
                if interface == "lo" and len(address) > 2 and address[2] == _PACKET_OUTGOING:
                    continue
                ts = time.time()
            else:
                _cls, data, ts = sock.recv_raw()
            if data is None:
                continue
            yield Frame(index, float(ts or time.time()), linktype, bytes(data), len(data))
            index += 1
    finally:
        sock.close()


def _socket_linktype(sock: object) -> int:
    lower = getattr(sock, "LL", None)
    name = getattr(lower, "__name__", "Ether")
    return {"Ether": LINKTYPE_ETHERNET, "CookedLinux": LINKTYPE_LINUX_SLL, "Loopback": LINKTYPE_NULL,
            "IP": LINKTYPE_RAW}.get(name, LINKTYPE_ETHERNET)


def _readable(sock: Any, timeout: float) -> bool:
    import select

    ready, _, _ = select.select([sock], [], [], timeout)
    return bool(ready)
