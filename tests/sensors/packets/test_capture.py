"""capture: pcap / pcapng framing, link layers, VLAN, IPv6, fragments, tunnels, damage."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

from sensors.packets.capture import PROTO_UDP, DecodeError, Frame, FrameError, read_frames
from sensors.packets.decode import Defragmenter, decode_frame
from tests.sensors.packets.captures import CLIENT, SERVER, dns_exchange, tcp_session, write_pcap, write_pcapng


def frames_of(path: Path) -> list[Frame | FrameError]:
    with path.open("rb") as stream:
        return list(read_frames(stream))


@pytest.mark.parametrize("writer", [write_pcap, write_pcapng], ids=["pcap", "pcapng"])
def test_reads_every_frame_with_its_time(tmp_path: Path, writer: object) -> None:
    path = writer(tmp_path / "c", dns_exchange())  # type: ignore[operator]
    frames = frames_of(path)
    assert [f.index for f in frames if isinstance(f, Frame)] == [0, 1]
    assert all(isinstance(f, Frame) and f.linktype == 1 for f in frames)
    assert isinstance(frames[1], Frame) and frames[1].ts == pytest.approx(1_700_000_000.01)


def test_a_truncated_pcap_ends_with_one_frame_error_after_the_good_frames(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "c.pcap", dns_exchange())
    path.write_bytes(path.read_bytes()[:-10])
    frames = frames_of(path)
    assert isinstance(frames[0], Frame)
    assert isinstance(frames[-1], FrameError) and "truncated" in frames[-1].reason


def test_unknown_magic_is_a_frame_error() -> None:
    frames = list(read_frames(io.BytesIO(b"this is not a capture")))
    assert len(frames) == 1 and isinstance(frames[0], FrameError) and "magic" in frames[0].reason


def test_big_endian_nanosecond_pcap() -> None:
    data = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=CLIENT, dst=SERVER) / UDP())
    head = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
    record = struct.pack(">IIII", 10, 500_000_000, len(data), len(data)) + data
    (frame,) = read_frames(io.BytesIO(head + record))
    assert isinstance(frame, Frame) and frame.ts == pytest.approx(10.5)


def test_vlan_and_ipv6_are_decoded() -> None:
    packets = tcp_session([(True, b"x")], v6=True, vlan=42)
    packet = decode_frame(Frame(0, 0.0, 1, bytes(packets[0]), len(bytes(packets[0]))))
    assert packet is not None and packet.version == 6 and packet.vlan == 42 and packet.dport == 80


def test_truncated_ip_header_raises_decode_error() -> None:
    data = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=CLIENT, dst=SERVER) / UDP())
    with pytest.raises(DecodeError, match="IPv4 header truncated"):
        decode_frame(Frame(0, 0.0, 1, data[:20], 20))


def test_ip_fragments_are_reassembled() -> None:
    whole = IP(src=CLIENT, dst=SERVER, id=7) / UDP(sport=1, dport=2) / Raw(b"A" * 3000)
    defrag = Defragmenter()
    results = [decode_frame(Frame(i, 0.0, 101, bytes(f), len(bytes(f))), defrag)
               for i, f in enumerate(reversed(fragment(whole, fragsize=1000)))]  # type: ignore[no-untyped-call]
    assert results[:-1] == [None] * (len(results) - 1)
    last = results[-1]
    assert last is not None and last.proto == PROTO_UDP and last.payload == b"A" * 3000


def test_vxlan_carries_an_inner_packet() -> None:
    inner = Ether(src="02:00:00:00:00:03", dst="02:00:00:00:00:04") / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(
        sport=5, dport=6)
    outer = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=CLIENT, dst=SERVER) / UDP(
        sport=1234, dport=4789) / VXLAN(vni=9) / inner
    packet = decode_frame(Frame(0, 0.0, 1, bytes(outer), len(bytes(outer))))
    assert packet is not None and packet.inner is not None and packet.inner.dport == 6


TUNNEL_HEADS = [bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=CLIENT, dst=SERVER, proto=p))
                for p in (4, 41, 47, 50)] + [
    bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=CLIENT, dst=SERVER) / UDP(dport=port))
    for port in (4789, 6081, 3544)]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([0, 1, 12, 101, 104, 108, 113, 228, 229, 276]), st.binary(max_size=200),
       st.sampled_from([b""] + TUNNEL_HEADS))
def test_arbitrary_frames_decode_or_raise_decode_error(linktype: int, data: bytes, head: bytes) -> None:
    frame_data = head + data if head and linktype == 1 else data
    try:
        decode_frame(Frame(0, 0.0, linktype, frame_data, len(frame_data)), Defragmenter())
    except DecodeError:
        pass


def test_overlapping_fragments_beyond_a_datagram_are_given_up() -> None:
    defrag = Defragmenter()
    key = (4, b"\x01" * 4, b"\x02" * 4, 1, 17)
    for offset in range(0, 80_000, 8):
        assert defrag.add(key, offset % 65528, True, b"x" * 1400) is None
    assert defrag.dropped >= 1
