"""Real receivers on loopback for connectors and runs: an HTTP server that records every request,
and an SMTP server (aiosmtpd) that keeps every mail, plain, with STARTTLS or with implicit TLS."""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from config.settings import IncidentSettings, TenantConfig, TenantKind
from config.tenants import TenantTree
from detections.incidents import IncidentLifecycle, IncidentService
from detections.intel import IntelStore
from detections.sigma.load import RuleSet
from pipeline.records import Incident
from pipeline.store.base import EventStore, IncidentStore
from pipeline.store.registry import open_event_store, open_incident_store
from playbooks import ConnectorRegistry, PlaybookRunner, PlaybookSources, SqliteRunStore, runs_db_path
from tests.factories import make_alert


@dataclass
class Receiver:
    """Requests received, and the statuses to answer with (then 200 once the list is used up)."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with http_receiver() as recv:
        yield recv


@contextmanager
def http_receiver() -> Iterator[Receiver]:
    """An HTTP server on a free loopback port that records each POST, stopped on exit."""
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"null")
            recv = holder[0]
            recv.requests.append({"path": self.path, "headers": dict(self.headers), "json": body})
            status = recv.statuses.pop(0) if recv.statuses else 200
            data = json.dumps({"ok": status < 400}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hook"))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class Mailbox:
    """Mails an SMTP server on loopback accepted, and the replies to give first (then 250)."""

    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)  # (mail from, rcpt tos)
    replies: list[str] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        if self.replies:
            return self.replies.pop(0)
        parsed = BytesParser(policy=policy.default).parsebytes(envelope.content)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        user, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((user, password))
        # handled=False: aiosmtpd then answers 535 itself (its default, True, sends nothing)
        return AuthResult(success=(user, password) == ("soc-mailer", "s3cret pass"), handled=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def smtp_server(*, auth: bool = False, **controller_options: Any) -> Iterator[Mailbox]:
    """An aiosmtpd server on a free loopback port (asking for a login when `auth`), stopped on exit.

    aiosmtpd counts only STARTTLS as TLS for `auth_require_tls`, so with implicit TLS
    (`ssl_context`) the login is offered on the already encrypted connection."""
    mailbox = Mailbox(port=free_port())
    if auth:
        controller_options.update(authenticator=mailbox.authenticate,
                                  auth_require_tls="ssl_context" not in controller_options)
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port, **controller_options)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 (the connector trusts it as its `ca_file`)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return Certificate(folder / "cert.pem", folder / "key.pem")


AGENCY_TREE = TenantTree.from_config([
    TenantConfig(id="national", name="Trung tâm quốc gia", kind=TenantKind.NATIONAL),
    TenantConfig(id="hanoi", name="Hà Nội", parent="national", kind=TenantKind.PROVINCE),
    TenantConfig(id="hanoi-bavi", name="Ba Vì", parent="hanoi", kind=TenantKind.COMMUNE),
    TenantConfig(id="danang", name="Đà Nẵng", parent="national", kind=TenantKind.PROVINCE),
    TenantConfig(id="hue", name="Huế", parent="national", kind=TenantKind.PROVINCE),
])


@dataclass
class Agencies:
    """Real SQLite stores (events, incidents, indicators, runs) in one folder, over `AGENCY_TREE`."""

    url: str
    events: EventStore
    incidents: IncidentStore
    intel: IntelStore
    runs: SqliteRunStore
    rules: RuleSet = field(default_factory=RuleSet)

    def runner(self, connectors: ConnectorRegistry | None = None, runs: SqliteRunStore | None = None) -> PlaybookRunner:
        """A runner as a fresh process builds it: a restart is a new runner over the same files."""
        sources = PlaybookSources(events=self.events, events_url=self.url, rules=self.rules, intel=self.intel)
        return PlaybookRunner(self.incidents, IncidentLifecycle(self.incidents, IncidentSettings()),
                              connectors or ConnectorRegistry(), AGENCY_TREE, runs or self.runs, sources=sources)

    def incident(self, tenant: str, n: int = 0, **alert: Any) -> Incident:
        [incident] = IncidentService(self.incidents, AGENCY_TREE, IncidentSettings()).ingest(
            [make_alert(tenant, n, **alert)])
        return incident


@pytest.fixture
def agencies(tmp_path: Path) -> Iterator[Agencies]:
    url = f"sqlite:///{tmp_path / 'govsoc.db'}"
    world = Agencies(url, open_event_store(url), open_incident_store(url), IntelStore.open(url, AGENCY_TREE),
                     SqliteRunStore(runs_db_path(url)))
    try:
        yield world
    finally:
        for store in (world.runs, world.intel, world.incidents, world.events):
            store.close()
