"""Servers the service-watch tests start on loopback: HTTPS portals with test-made certificates, and a
DNS server whose answers the test changes. Real sockets, real TLS, real DNS packets; nothing mocked."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from dnslib import QTYPE, RCODE, RR, A, DNSRecord  # type: ignore[import-untyped]
from dnslib.server import BaseResolver, DNSLogger, DNSServer  # type: ignore[import-untyped]

from api.demo.watch import PortalServer, server_context


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def self_signed_context(hostname: str) -> ssl.SSLContext:
    """A server context whose certificate signs itself (the name is right; the chain is not)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now() - dt.timedelta(days=1))
            .not_valid_after(now() + dt.timedelta(days=200))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .sign(key, hashes.SHA256()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    with trustme.Blob(cert_pem).tempfile() as cert_file, trustme.Blob(key_pem).tempfile() as key_file:
        ctx.load_cert_chain(cert_file, key_file)
    return ctx


@dataclass
class CertLab:
    """A test CA (its PEM at `ca_file`) and servers with the certificates the acceptance asks for."""

    ca: trustme.CA
    ca_file: Path

    @classmethod
    def create(cls, directory: Path) -> CertLab:
        ca = trustme.CA(organization_name="govsoc test CA")
        path = directory / "test-ca.pem"
        ca.cert_pem.write_to_path(str(path))
        return cls(ca, path)

    def serve(self, hostname: str, *, days: int = 365, names: tuple[str, ...] = (), page: bytes = b"<h1>ok</h1>"
              ) -> PortalServer:
        if days > 0:
            ctx = server_context(self.ca, *(names or (hostname,)), not_after=now() + dt.timedelta(days=days))
        else:  # already expired: valid from a year before until `-days` ago
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ca.issue_cert(*(names or (hostname,)), not_before=now() - dt.timedelta(days=365),
                               not_after=now() + dt.timedelta(days=days)).configure_cert(ctx)
        return PortalServer(tls=ctx, pages={hostname: page}).start()


@contextmanager
def serving(*servers: PortalServer) -> Iterator[tuple[PortalServer, ...]]:
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


@dataclass
class Zone(BaseResolver):  # type: ignore[misc]
    """Answers A queries from `records`; a name not in it is NXDOMAIN, one mapped to () has no answer."""

    records: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        if name not in self.records:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if request.q.qtype == QTYPE.A:
            for ip in self.records[name]:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(ip), ttl=60))
        return reply


@contextmanager
def dns_server(zone: Zone) -> Iterator[str]:
    """A UDP DNS server on 127.0.0.1 (a free port); yields its `ip:port`."""
    server = DNSServer(zone, address="127.0.0.1", port=0, logger=DNSLogger(log="-request,-reply,-truncated,-error",
                                                                           prefix=False))
    server.start_thread()
    try:
        yield f"127.0.0.1:{server.server.server_address[1]}"
    finally:
        server.stop()
        server.server.server_close()
