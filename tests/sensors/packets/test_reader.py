"""reader: whole captures to ECS events and dead letters; ids, batches, progress, hostile input."""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw

from config.errors import ConfigError
from pipeline.records import DeadLetter, Event
from sensors.packets import CaptureSource, CaptureStats, FlowConfig, read_capture
from sensors.packets.reader import MAX_DEAD_LETTERS
from tests.sensors.packets.captures import (
    CLIENT,
    HTTP_RESPONSE,
    SERVER,
    dns_exchange,
    http_request,
    tcp_session,
    write_pcap,
)

SOURCE = CaptureSource(tenant="hanoi", sensor="hn-edge-1")
ETHER = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def read_all(path: Path, source: CaptureSource = SOURCE, **kwargs: object) -> tuple[list[Event], list[DeadLetter]]:
    events: list[Event] = []
    dead: list[DeadLetter] = []
    for batch in read_capture(path, source, **kwargs):  # type: ignore[arg-type]
        events.extend(batch.events)
        dead.extend(batch.dead_letters)
    return events, dead


def by_dataset(events: list[Event], dataset: str) -> list[Event]:
    return [e for e in events if e.get("event.dataset") == dataset]


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    packets = dns_exchange() + tcp_session([(True, http_request()), (False, HTTP_RESPONSE)])
    return write_pcap(tmp_path / "mixed.pcap", packets)


def test_flow_dns_and_http_events_carry_the_ecs_fields(mixed: Path) -> None:
    events, dead = read_all(mixed)
    assert not dead
    (flow_tcp,) = [e for e in by_dataset(events, "flow") if e.get("network.transport") == "tcp"]
    assert flow_tcp.get("source.ip") == CLIENT and flow_tcp.get("destination.port") == 80
    assert flow_tcp.get("source.packets") == 5 and flow_tcp.get("destination.packets") == 3
    assert flow_tcp.get("network.community_id", ).startswith("1:")
    assert flow_tcp.get("organization.id") == "hanoi" and flow_tcp.get("observer.name") == "hn-edge-1"
    query, answer = by_dataset(events, "dns")
    assert query.get("dns.question.name") == "example.gov.vn" and query.get("dns.type") == "query"
    assert answer.get("dns.response_code") == "NOERROR" and answer.get("dns.answers")[0]["data"] == "203.0.113.5"
    (http,) = by_dataset(events, "http")
    assert (http.get("url.domain"), http.get("url.original"), http.get("http.request.method")) == (
        "portal.gov.vn", "/login?next=%2F", "GET")
    assert http.get("user_agent.original") == "curl/8.5" and http.get("http.response.status_code") == 404


def test_application_events_of_a_flow_come_before_its_flow_event(mixed: Path) -> None:
    events, _ = read_all(mixed)
    datasets = [e.get("event.dataset") for e in events if e.get("network.transport") == "tcp"]
    assert datasets == ["http", "flow"]


def test_ids_are_stable_across_reads_and_unique(mixed: Path) -> None:
    first, _ = read_all(mixed)
    second, _ = read_all(mixed, batch_size=1)
    assert [e.id for e in first] == [e.id for e in second]
    assert [e.to_json() for e in first] == [e.to_json() for e in second]
    assert len({e.id for e in first}) == len(first)


def test_batches_and_progress(mixed: Path) -> None:
    progress: list[int] = []
    batches = list(read_capture(mixed, SOURCE, batch_size=2, on_progress=progress.append))
    assert all(len(b.events) + len(b.dead_letters) <= 2 for b in batches)
    assert sum(progress) == mixed.stat().st_size


def test_a_malformed_packet_is_a_dead_letter_and_the_rest_is_read(tmp_path: Path) -> None:
    bad = ETHER / IP(src=CLIENT, dst=SERVER, ihl=15) / TCP()
    raw = bytes(bad)[:40]  # claims a 60-byte IP header
    packets = dns_exchange() + [Ether(raw)] + dns_exchange("other.gov.vn")
    stats = CaptureStats()
    events, dead = read_all(write_pcap(tmp_path / "bad.pcap", packets), stats=stats)
    assert len(dead) == 1 and dead[0].reason.startswith("packet 2: ") and dead[0].raw == raw
    assert {e.get("dns.question.name") for e in by_dataset(events, "dns")} == {"example.gov.vn", "other.gov.vn"}
    assert stats.malformed == 1 and stats.packets == 5


def test_not_dns_on_port_53_is_a_dead_letter(tmp_path: Path) -> None:
    packet = ETHER / IP(src=CLIENT, dst=SERVER) / UDP(sport=1000, dport=53) / Raw(b"\x01\x02")
    _, dead = read_all(write_pcap(tmp_path / "x.pcap", [packet]))
    assert len(dead) == 1 and "not DNS" in dead[0].reason


def test_dead_letters_are_sampled_but_all_counted(tmp_path: Path) -> None:
    packet = ETHER / IP(src=CLIENT, dst=SERVER) / UDP(sport=1000, dport=53) / Raw(b"\x01")
    stats = CaptureStats()
    _, dead = read_all(write_pcap(tmp_path / "x.pcap", [packet] * (MAX_DEAD_LETTERS + 5)), stats=stats)
    assert len(dead) == MAX_DEAD_LETTERS and stats.malformed == MAX_DEAD_LETTERS + 5
    assert stats.dead_letters_dropped == 5


def test_a_file_that_is_not_a_capture_is_one_dead_letter(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a capture")
    events, dead = read_all(path)
    assert events == [] and len(dead) == 1 and "magic" in dead[0].reason


def test_eviction_is_counted(tmp_path: Path) -> None:
    packets: list[ScapyPacket] = [ETHER / IP(src=CLIENT, dst=SERVER) / UDP(sport=2000 + i, dport=9) for i in range(5)]
    stats = CaptureStats()
    source = CaptureSource(tenant="hanoi", sensor="s", flows=FlowConfig(max_flows=2))
    events, _ = read_all(write_pcap(tmp_path / "x.pcap", packets), source, stats=stats)
    assert stats.flows_evicted == 3 and len(by_dataset(events, "flow")) == 5
    assert [e.get("govsoc.flow.end_reason") for e in events].count("evicted") == 3


def test_http_head_split_over_segments_in_a_capture(tmp_path: Path) -> None:
    request = http_request(host="split.gov.vn")
    packets = tcp_session([(True, request[:10]), (True, request[10:25]), (True, request[25:]),
                           (False, HTTP_RESPONSE)])
    events, _ = read_all(write_pcap(tmp_path / "x.pcap", packets))
    (http,) = by_dataset(events, "http")
    assert http.get("url.domain") == "split.gov.vn" and http.get("http.response.status_code") == 404


def test_empty_tenant_is_refused() -> None:
    with pytest.raises(ConfigError):
        CaptureSource(tenant="", sensor="s")


def _pcap(records: list[bytes]) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for number, data in enumerate(records):
        out += struct.pack("<IIII", number, 0, len(data), len(data)) + data
    return out


def _read_bytes(data: bytes) -> tuple[list[Event], list[DeadLetter]]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.pcap"
        path.write_bytes(data)
        first = read_all(path)
        second = read_all(path)
    assert [e.id for e in first[0]] == [e.id for e in second[0]]
    assert [d.id for d in first[1]] == [d.id for d in second[1]]
    return first


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
@example(b"\xd4\xc3\xb2\xa1" + b"\x00" * 20)
@example(b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1a" + b"\xff" * 40)
def test_random_bytes_as_a_capture_never_raise(data: bytes) -> None:
    _read_bytes(data)


HEADERS = [bytes(ETHER / IP(src=CLIENT, dst=SERVER) / TCP(sport=40000, dport=443, flags="PA")),
           bytes(ETHER / IP(src=CLIENT, dst=SERVER) / TCP(sport=40000, dport=80, flags="PA")),
           bytes(ETHER / IP(src=CLIENT, dst=SERVER) / UDP(sport=40000, dport=53)),
           bytes(ETHER / IP(src=CLIENT, dst=SERVER, flags="MF", frag=0) / UDP(sport=1, dport=53))]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(HEADERS), st.binary(max_size=300), st.integers(0, 80)), max_size=12))
def test_random_payloads_and_cut_headers_never_raise(packets: list[tuple[bytes, bytes, int]]) -> None:
    records = [(head + payload)[:len(head) + len(payload) - cut] for head, payload, cut in packets]
    _read_bytes(_pcap(records))


def _pcapng(frames: list[tuple[int, bytes]]) -> bytes:
    """Section header, one Ethernet interface, enhanced packet blocks of (time in µs, data)."""
    def block(kind: int, body: bytes) -> bytes:
        body += b"\x00" * (-len(body) % 4)
        return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)) + block(1, struct.pack("<HHI", 1, 0, 65535))
    for micros, data in frames:
        out += block(6, struct.pack("<IIIII", 0, micros >> 32, micros & 0xFFFFFFFF, len(data), len(data)) + data)
    return out


def test_a_time_stamp_beyond_datetime_is_a_dead_letter(tmp_path: Path) -> None:
    good = bytes(dns_exchange()[0])
    path = tmp_path / "t.pcapng"
    path.write_bytes(_pcapng([(2**63, good), (1_700_000_000_000_000, good)]))
    events, dead = read_all(path)
    assert len(dead) == 1 and "out of range" in dead[0].reason
    assert by_dataset(events, "dns")[0].get("dns.question.name") == "example.gov.vn"
