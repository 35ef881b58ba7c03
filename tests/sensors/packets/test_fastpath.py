"""fastpath: the pcap loop that decodes the common case itself agrees with capture + decode everywhere."""

from __future__ import annotations

import io
import struct

from hypothesis import example, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw

from sensors.packets.capture import DecodeError, Frame, FrameError, Packet, read_frames
from sensors.packets.decode import decode_frame
from sensors.packets.fastpath import decode_ethernet, read_packets
from tests.sensors.packets.captures import CLIENT, SERVER, dns_exchange, tcp_session

ETHER = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
# Frames of every shape the fast path takes, and some it must hand on (options, fragments, tunnels).
SAMPLES: list[ScapyPacket] = [
    *tcp_session([(True, b"GET / HTTP/1.1\r\n\r\n"), (False, b"HTTP/1.1 200 OK\r\n\r\n")]),
    *tcp_session([(True, b"x" * 30)], v6=True, vlan=7),
    *dns_exchange(),
    ETHER / IP(src=CLIENT, dst=SERVER) / ICMP(),
    ETHER / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=5, dport=6) / Raw(b"abc"),
    ETHER / IP(src=CLIENT, dst=SERVER, options=b"\x01\x01\x01\x00") / TCP(sport=1, dport=2) / Raw(b"o"),
    ETHER / IP(src=CLIENT, dst=SERVER, flags="MF") / UDP(sport=1, dport=2),
    ETHER / IP(src=CLIENT, dst=SERVER) / UDP(sport=4789, dport=4789) / Raw(b"\x08" + bytes(7)),
    ETHER / Dot1Q(vlan=3) / Dot1Q(vlan=4) / IP(src=CLIENT, dst=SERVER) / UDP(),
    ETHER / IP(src=CLIENT, dst=SERVER) / UDP(sport=9, dport=9, len=200) / Raw(b"short"),
]


def slow(data: bytes) -> Packet | None | str:
    try:
        return decode_frame(Frame(3, 1.5, 1, data, len(data) + 4))
    except DecodeError as e:
        return e.reason


def pcap(frames: list[bytes]) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for n, data in enumerate(frames):
        out += struct.pack("<IIII", 100 + n, 250_000, len(data), len(data) + 4) + data
    return out


def test_the_common_shapes_are_decoded_as_decode_decodes_them() -> None:
    decoded = 0
    for sample in SAMPLES:
        data = bytes(sample)
        fast = decode_ethernet(data, 3, 1.5, len(data) + 4)
        if fast is not None:
            decoded += 1
            assert fast == slow(data), sample.summary()
    assert decoded >= 8  # TCP (v4, v6 with a VLAN tag), DNS, ICMP, UDP over IPv6


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(SAMPLES), st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255)), max_size=4),
       st.integers(0, 120))
@example(SAMPLES[0], [(14, 0x46)], 200)  # IHL says options the frame does not have room for
@example(SAMPLES[0], [(46, 0x10)], 200)  # TCP data offset below 20
def test_damaged_frames_agree_with_decode_or_are_handed_on(sample: ScapyPacket, flips: list[tuple[int, int]],
                                                            cut: int) -> None:
    data = bytearray(bytes(sample))
    for position, value in flips:
        if position < len(data):
            data[position] = value
    frame = bytes(data[:max(cut, 0)] if cut < len(data) else data)
    fast = decode_ethernet(frame, 3, 1.5, len(frame) + 4)
    if fast is not None:  # None: decode judges it (and dead-letters what is malformed)
        assert fast == slow(frame)


def test_read_packets_frames_like_read_frames_and_keeps_indexes() -> None:
    frames = [bytes(s) for s in SAMPLES]
    raw = pcap(frames)
    fast = list(read_packets(io.BytesIO(raw)))
    reference = list(read_frames(io.BytesIO(raw)))
    assert len(fast) == len(reference) == len(frames)
    for item, frame in zip(fast, reference, strict=True):
        assert isinstance(frame, Frame)
        if isinstance(item, Packet):
            assert item == decode_frame(frame)
        else:
            assert item == frame


def test_damage_and_pcapng_end_as_read_frames_ends_them() -> None:
    raw = pcap([bytes(s) for s in SAMPLES[:3]])[:-7]
    fast, reference = list(read_packets(io.BytesIO(raw))), list(read_frames(io.BytesIO(raw)))
    assert isinstance(fast[-1], FrameError) and fast[-1] == reference[-1]
    assert list(read_packets(io.BytesIO(b"junk"))) == list(read_frames(io.BytesIO(b"junk")))
    assert list(read_packets(io.BytesIO(b"\xd4\xc3\xb2\xa1" + bytes(5))))[0] == FrameError(
        0, 0, "pcap file header truncated", b"\xd4\xc3\xb2\xa1" + bytes(5))
