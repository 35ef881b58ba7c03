"""The syslog receiver on loopback: framing, per-sender tags, and 10,000 messages all accounted for."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.records import DeadLetter, Event
from sensors.syslog_server import MAX_FRAME_BYTES, Listener, SyslogServer, SyslogThread, split_frames

RFC5424 = "<34>1 2026-11-23T10:00:{s:02d}.000Z web1 sshd 4242 - - Failed password for root from 203.0.113.{n} port 22"
RFC3164 = "<38>Nov 23 10:00:{s:02d} web1 sshd[4242]: Accepted publickey for deploy from 10.0.0.{n} port 22 ssh2"


def message(n: int) -> bytes:
    template = RFC5424 if n % 2 else RFC3164
    return template.format(s=n % 60, n=n % 250).encode()


class Collector:
    def __init__(self) -> None:
        self.records: list[Event | DeadLetter] = []
        self.lock = threading.Lock()

    def __call__(self, records: list[Event | DeadLetter]) -> None:
        with self.lock:
            self.records.extend(records)


@pytest.fixture
def running() -> Iterator[tuple[SyslogServer, Collector]]:
    collector = Collector()
    server = SyslogServer([Listener("udp", "127.0.0.1", 0), Listener("tcp", "127.0.0.1", 0)],
                          tenant="hanoi", sensor="edge-1", sink=collector)
    thread = SyslogThread(server)
    thread.start()
    yield server, collector
    thread.stop()


def test_split_frames_handles_both_framings_and_partial_input() -> None:
    buffer = bytearray(b"5 hello11 hello world\nplain line\r\nrest")
    assert split_frames(buffer) == [b"hello", b"hello world", b"plain line"]
    assert buffer == bytearray(b"rest")
    buffer += b"\n12"
    assert split_frames(buffer) == [b"rest"]
    assert buffer == bytearray(b"12")  # maybe the start of an octet count: wait
    buffer += b" <13>partial"
    assert split_frames(buffer) == [] and split_frames(buffer, at_eof=True) == [b"<13>partial"]
    assert split_frames(bytearray(b"2026-11-23T10:00:00Z host app: x\n")) == [b"2026-11-23T10:00:00Z host app: x"]
    with pytest.raises(ValueError):
        split_frames(bytearray(b"%d x" % (MAX_FRAME_BYTES + 1)))


def send_tcp(port: int, frames: list[bytes], *, octet_counted: bool) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        data = b"".join(b"%d %s" % (len(f), f) if octet_counted else f + b"\n" for f in frames)
        sock.sendall(data)


def wait_for(condition: Callable[[], object], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not condition():
        time.sleep(0.02)


def test_ten_thousand_messages_over_tcp_and_udp_are_all_accounted_for(running: tuple[SyslogServer, Collector]) -> None:
    server, collector = running
    udp, tcp = server.bound
    tcp_counted = [message(n) for n in range(0, 4000)]
    tcp_lines = [message(n) for n in range(4000, 7000)] + [b"not syslog at all"]
    udp_messages = [message(n) for n in range(7000, 9999)]
    senders = [threading.Thread(target=send_tcp, args=(tcp.port, tcp_counted[i::2]), kwargs={"octet_counted": True})
               for i in range(2)]
    senders.append(threading.Thread(target=send_tcp, args=(tcp.port, tcp_lines), kwargs={"octet_counted": False}))
    for thread in senders:
        thread.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i, frame in enumerate(udp_messages):
            sock.sendto(frame, ("127.0.0.1", udp.port))
            if i % 200 == 0:
                time.sleep(0.001)
    for thread in senders:
        thread.join()
    total = len(tcp_counted) + len(tcp_lines) + len(udp_messages)
    assert total == 10_000
    wait_for(lambda: server.metrics.received + server.udp_kernel_drops() >= total)
    time.sleep(0.1)  # nothing more may come
    drops = server.udp_kernel_drops()
    assert server.metrics.received + drops == total
    with collector.lock:
        records = list(collector.records)
    assert len(records) == server.metrics.received
    dead = [r for r in records if isinstance(r, DeadLetter)]
    assert [d.raw for d in dead] == [b"not syslog at all"] and server.metrics.parse_failures == 1
    events = [r for r in records if isinstance(r, Event)]
    assert len({e.id for e in events}) == len(events)
    originals = {e.doc["event"]["original"] for e in events}
    assert {m.decode() for m in tcp_counted + tcp_lines[:-1]} <= originals  # TCP: every one
    assert server.metrics.connections == 3 and server.metrics.framing_errors == 0


def test_events_carry_the_sender_sensor_and_tenant(running: tuple[SyslogServer, Collector]) -> None:
    server, collector = running
    send_tcp(server.bound[1].port, [message(1)], octet_counted=False)
    wait_for(lambda: collector.records)
    event = collector.records[0]
    assert isinstance(event, Event)
    assert event.get("log.source.address") == "127.0.0.1"
    assert event.get("observer.name") == "edge-1" and event.tenant == "hanoi"


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=1, max_value=64), max_size=8))
@example(b"5 \x00\x00\x00\x00\x00\n\xff\xfe\n", [3])
@example(b"999999999 x", [])
def test_arbitrary_bytes_in_any_chunks_become_events_or_dead_letters(data: bytes, cuts: list[int]) -> None:
    collector = Collector()
    server = SyslogServer([Listener("tcp", "127.0.0.1", 0)], tenant="hanoi", sensor="edge-1", sink=collector)
    listener = server.listeners[0]
    buffer, position = bytearray(), 0
    try:
        for cut in [*cuts, len(data)]:
            buffer += data[position:position + cut]
            position += cut
            server.handle(split_frames(buffer), listener, "192.0.2.1")
        server.handle(split_frames(buffer, at_eof=True), listener, "192.0.2.1")
    except ValueError:  # an octet count too large to resynchronise: the server closes the connection
        return
    assert not buffer
    assert len(collector.records) == server.metrics.received
