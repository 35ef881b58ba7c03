"""flows: one flow per conversation, TCP state and history, timeouts, the cap, TCP streams."""

from __future__ import annotations

from sensors.packets.capture import PROTO_TCP, PROTO_UDP, Packet
from sensors.packets.flows import ACK, FIN, RST, SYN, FlowConfig, FlowTable, TcpStream

A, B = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])


def pkt(ts: float, src: bytes = A, dst: bytes = B, sport: int = 40000, dport: int = 80, flags: int = ACK,
        proto: int = PROTO_TCP, payload: bytes = b"", index: int = 0) -> Packet:
    return Packet(index, ts, 60 + len(payload), 4, src, dst, proto, sport, dport, payload, tcp_flags=flags)


def handshake(table: FlowTable, t: float = 0.0) -> None:
    table.add(pkt(t, flags=SYN))
    table.add(pkt(t + 0.1, B, A, 80, 40000, SYN | ACK))
    table.add(pkt(t + 0.2))


def test_both_directions_are_one_flow_with_counts_each_way() -> None:
    table = FlowTable()
    handshake(table)
    (flow,) = table.flush()
    assert (flow.packets_to_server, flow.packets_to_client) == (2, 1)
    assert (flow.bytes_to_server, flow.bytes_to_client) == (120, 60)
    assert flow.state == "established" and flow.history == "ShA" and flow.end_reason == "end"


def test_a_flow_first_seen_on_its_syn_ack_is_turned_round() -> None:
    table = FlowTable()
    flow, to_server = table.add(pkt(0.0, B, A, 80, 40000, SYN | ACK))
    assert flow.src == A and flow.dport == 80 and not to_server


def test_closed_flow_ends_after_the_linger_and_idle_flow_after_idle_timeout() -> None:
    table = FlowTable(FlowConfig(idle_timeout=30.0, closed_timeout=1.0))
    handshake(table)
    table.add(pkt(1.0, flags=FIN | ACK))
    table.add(pkt(1.1, B, A, 80, 40000, FIN | ACK))
    table.add(pkt(0.5, sport=50000, proto=PROTO_UDP, flags=0))
    table.add(pkt(5.0, sport=1, dport=2, proto=PROTO_UDP, flags=0))  # moves time on
    assert [(f.end_reason, f.state) for f in table.drain()] == [("closed", "closed")]
    table.add(pkt(40.0, sport=3, dport=4, proto=PROTO_UDP, flags=0))
    assert [f.sport for f in table.drain()] == [50000, 1]


def test_rst_closes() -> None:
    table = FlowTable()
    handshake(table)
    flow, _ = table.add(pkt(1.0, B, A, 80, 40000, RST))
    assert flow.state == "closed" and "r" in flow.history


def test_active_timeout_splits_a_long_flow() -> None:
    table = FlowTable(FlowConfig(active_timeout=10.0, idle_timeout=100.0))
    handshake(table)
    table.add(pkt(9.0))
    flow, _ = table.add(pkt(11.0, index=5))
    (ended,) = table.drain()
    assert ended.end_reason == "active" and ended.packets_to_server == 3
    assert flow.start == 11.0 and flow.first_index == 5 and flow.state == "established"


def test_the_cap_evicts_the_least_recently_seen_flow_and_counts_it() -> None:
    table = FlowTable(FlowConfig(max_flows=2))
    for port in (1, 2, 3):
        table.add(pkt(float(port), sport=port))
    (evicted,) = table.drain()
    assert evicted.sport == 1 and evicted.end_reason == "evicted" and table.evicted == 1 and len(table) == 2


def test_community_id_is_the_standard_value() -> None:
    # Community ID spec test vector: TCP 128.232.110.120:34855 -> 66.35.250.204:80, seed 0
    table = FlowTable()
    flow, _ = table.add(pkt(0.0, bytes([128, 232, 110, 120]), bytes([66, 35, 250, 204]), 34855, 80, SYN))
    assert flow.community_id == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="


def test_tcp_stream_orders_segments_and_drops_retransmissions() -> None:
    stream = TcpStream()
    assert stream.add(99, SYN, b"") == b""
    assert stream.add(105, ACK, b"world") == b""
    assert stream.add(100, ACK, b"hello") == b"helloworld"
    assert stream.add(100, ACK, b"helloworld!") == b"!"
    assert stream.add(100, ACK, b"hello") == b""


def test_tcp_stream_skips_a_gap_the_peer_acknowledged() -> None:
    stream = TcpStream()
    stream.add(0, SYN, b"")
    stream.add(11, ACK, b"tail")
    assert stream.acked(15) == b"tail" and stream.gaps == 1 and stream.lost == 10
