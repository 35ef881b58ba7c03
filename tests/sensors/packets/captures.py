"""Small captures built with scapy for the packet sensor's tests: one conversation per helper."""

from __future__ import annotations

from pathlib import Path

from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Packet, Raw
from scapy.utils import PcapNgWriter, wrpcap

CLIENT, SERVER = "192.0.2.10", "198.51.100.20"


def ETHER() -> Packet:  # noqa: N802 - reads as the layer it is
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")

CLIENT6, SERVER6 = "2001:db8::10", "2001:db8::20"
START = 1_700_000_000.0


def timed(packets: list[Packet], start: float = START, step: float = 0.01) -> list[Packet]:
    for number, packet in enumerate(packets):
        packet.time = start + number * step
    return packets


def tcp_session(payloads: list[tuple[bool, bytes]], *, sport: int = 40000, dport: int = 80, v6: bool = False,
                vlan: int | None = None, close: bool = True) -> list[Packet]:
    """Handshake, then each (from client?, bytes) as one segment, then FIN both ways."""
    client, server = (CLIENT6, SERVER6) if v6 else (CLIENT, SERVER)

    def ip(src: str, dst: str) -> Packet:
        base = IPv6(src=src, dst=dst) if v6 else IP(src=src, dst=dst)
        head = ETHER() / Dot1Q(vlan=vlan) if vlan is not None else ETHER()
        return head / base

    seq = {True: 1000, False: 5000}
    out = [ip(client, server) / TCP(sport=sport, dport=dport, flags="S", seq=999),
           ip(server, client) / TCP(sport=dport, dport=sport, flags="SA", seq=4999, ack=1000),
           ip(client, server) / TCP(sport=sport, dport=dport, flags="A", seq=1000, ack=5000)]
    for from_client, data in payloads:
        src, dst, sp, dp = (client, server, sport, dport) if from_client else (server, client, dport, sport)
        out.append(ip(src, dst) / TCP(sport=sp, dport=dp, flags="PA", seq=seq[from_client],
                                      ack=seq[not from_client]) / Raw(data))
        seq[from_client] += len(data)
    if close:
        out += [ip(client, server) / TCP(sport=sport, dport=dport, flags="FA", seq=seq[True], ack=seq[False]),
                ip(server, client) / TCP(sport=dport, dport=sport, flags="FA", seq=seq[False], ack=seq[True] + 1),
                ip(client, server) / TCP(sport=sport, dport=dport, flags="A", seq=seq[True] + 1,
                                         ack=seq[False] + 1)]
    return out


def dns_exchange(name: str = "example.gov.vn", *, rcode: int = 0, answer: str | None = "203.0.113.5") -> list[Packet]:
    query = (ETHER() / IP(src=CLIENT, dst=SERVER) / UDP(sport=33333, dport=53)
             / DNS(id=77, rd=1, qd=DNSQR(qname=name)))
    reply = DNS(id=77, qr=1, rd=1, ra=1, rcode=rcode, qd=DNSQR(qname=name),
                an=DNSRR(rrname=name, type="A", ttl=60, rdata=answer) if answer else None)
    return [query, ETHER() / IP(src=SERVER, dst=CLIENT) / UDP(sport=53, dport=33333) / reply]


def http_request(host: str = "portal.gov.vn", uri: str = "/login?next=%2F", agent: str = "curl/8.5") -> bytes:
    return (f"GET {uri} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {agent}\r\nAccept: */*\r\n\r\n").encode()


HTTP_RESPONSE = b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nnope\n"


def write_pcap(path: Path, packets: list[Packet]) -> Path:
    wrpcap(str(path), timed(packets))
    return path


def write_pcapng(path: Path, packets: list[Packet]) -> Path:
    with PcapNgWriter(str(path)) as writer:
        for packet in timed(packets):
            writer.write(packet)
    return path
