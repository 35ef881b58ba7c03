"""A capture for the demo's Đà Nẵng commune story (DEMO.md step 3), written with scapy.

A workstation at Phường Hải Châu (10.31.0.23) does a morning's ordinary work — DNS lookups of
agency portals, HTTPS and HTTP to them — then sends DNS queries whose long, random-looking
labels carry data out (tunnelling to `t.exfil.example`), and sweeps its neighbours' SMB, RDP and
SSH ports. Addresses are private (inside the agency) or from documentation ranges; names end in
`.example`. Deterministic: the same spec writes the same packets (fixed seed and start time).
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

WORKSTATION = "10.31.0.23"
RESOLVER = "10.31.0.1"
PORTALS = {"portal.danang.example": "203.0.113.10", "dichvucong.gov.example": "192.0.2.10",
           "mail.danang.example": "203.0.113.12"}
TUNNEL_DOMAIN = "t.exfil.example"


@dataclass(frozen=True, slots=True)
class CaptureSpec:
    start: datetime
    seed: int = 41
    ordinary_lookups: int = 120
    tunnel_queries: int = 80
    scanned_hosts: int = 40


class _Capture:
    def __init__(self, spec: CaptureSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.clock = spec.start.timestamp()
        self.packets: list[Packet] = []

    def add(self, packet: Packet, gap: float) -> None:
        self.clock += gap
        frame = Ether(src="02:00:00:31:00:23", dst="02:00:00:31:00:01") / packet
        frame.time = self.clock
        self.packets.append(frame)

    def dns(self, name: str, answer: str | None, rcode: int = 0) -> None:
        qid, sport = self.rng.randrange(65536), self.rng.randrange(40000, 60000)
        query = DNS(id=qid, rd=1, qd=DNSQR(qname=name))
        self.add(IP(src=WORKSTATION, dst=RESOLVER) / UDP(sport=sport, dport=53) / query, self.rng.uniform(0.5, 20))
        reply = DNS(id=qid, qr=1, rd=1, ra=1, rcode=rcode, qd=DNSQR(qname=name),
                    an=DNSRR(rrname=name, ttl=300, rdata=answer) if answer else None)
        self.add(IP(src=RESOLVER, dst=WORKSTATION) / UDP(sport=53, dport=sport) / reply, 0.002)

    def http_get(self, host: str, address: str) -> None:
        sport, seq = self.rng.randrange(40000, 60000), self.rng.randrange(2**31)
        client, server = IP(src=WORKSTATION, dst=address), IP(src=address, dst=WORKSTATION)
        self.add(client / TCP(sport=sport, dport=80, flags="S", seq=seq), 0.3)
        self.add(server / TCP(sport=80, dport=sport, flags="SA", seq=1000, ack=seq + 1), 0.01)
        self.add(client / TCP(sport=sport, dport=80, flags="A", seq=seq + 1, ack=1001), 0.001)
        request = (f"GET /tin-tuc/index.html HTTP/1.1\r\nHost: {host}\r\n"
                   "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64)\r\nAccept: */*\r\n\r\n").encode()
        self.add(client / TCP(sport=sport, dport=80, flags="PA", seq=seq + 1, ack=1001) / Raw(request), 0.001)
        body = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nok"
        sent = seq + 1 + len(request)
        self.add(server / TCP(sport=80, dport=sport, flags="PA", seq=1001, ack=sent) / Raw(body), 0.02)
        self.add(client / TCP(sport=sport, dport=80, flags="FA", seq=sent, ack=1001 + len(body)), 0.01)
        self.add(server / TCP(sport=80, dport=sport, flags="FA", seq=1001 + len(body), ack=sent + 1), 0.001)

    def probe(self, target: str, port: int, is_open: bool) -> None:
        sport = self.rng.randrange(40000, 60000)
        syn = TCP(sport=sport, dport=port, flags="S", seq=self.rng.randrange(2**31))
        self.add(IP(src=WORKSTATION, dst=target) / syn, self.rng.uniform(0.001, 0.05))
        flags = "SA" if is_open else "RA"
        self.add(IP(src=target, dst=WORKSTATION) / TCP(sport=port, dport=sport, flags=flags, ack=1), 0.0005)


def _tunnel_label(rng: random.Random) -> str:
    chunk = bytes(rng.getrandbits(8) for _ in range(rng.randrange(28, 38)))
    return base64.b32encode(chunk).decode().rstrip("=").lower()


def build_capture(spec: CaptureSpec) -> list[Packet]:
    c = _Capture(spec)
    for _ in range(spec.ordinary_lookups):
        name = c.rng.choice(list(PORTALS))
        c.dns(name, PORTALS[name])
        if c.rng.random() < 0.3:
            c.http_get(name, PORTALS[name])
    c.dns("khong-ton-tai.danang.example", None, rcode=3)
    for i in range(spec.tunnel_queries):
        c.dns(f"{_tunnel_label(c.rng)}.{i:04x}.{TUNNEL_DOMAIN}", "198.51.100.53")
    for host in range(2, 2 + spec.scanned_hosts):
        for port in (445, 3389, 22):
            c.probe(f"10.31.0.{host}", port, is_open=(host, port) in {(5, 445), (7, 3389)})
    return c.packets


def write_capture(path: Path, spec: CaptureSpec) -> Path:
    wrpcap(str(path), build_capture(spec))
    return path
