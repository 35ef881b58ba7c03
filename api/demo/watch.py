"""DEMO.md step 7: the service watch sees Đà Nẵng's portal defaced, and not Hà Nội's daily news.

`run_demo_watch` starts one HTTPS server on loopback for `portal.hanoi.example` and
`portal.danang.example` (a certificate from a CA made on the spot with trustme; its PEM is kept
under `data_dir` so the checks verify the chain as in production), serving the pages of
detections/watch/corpus.py. The real checks (sensors/watch) run twice from the national centre's
vantage point: yesterday, to learn each page; today, after Hà Nội's news list changed (benign) and
Đà Nẵng's portal was defaced. Events go through the runtime's bus (ingest, store), the detector's
alerts too (incidents), so the defacement incident carries the before/after evidence, and the
shipped `website-defacement` playbook triggers on it. Loopback only; about a second.

`PortalServer` is also what the tests and bench/watch.py serve pages with.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api.wiring import Runtime
from config.watch import ServiceWatchSettings, WatchTarget
from detections.watch import WatchDetector
from detections.watch.corpus import PortalSpec, defaced_page, portal_page
from pipeline.bus import topics
from pipeline.records import Alert, Event
from sensors.watch import run_once

if TYPE_CHECKING:
    import trustme

VANTAGE = "national-s1"
HANOI = PortalSpec(agency="Cổng thông tin điện tử Thành phố Hà Nội", city="Hà Nội", host="portal.hanoi.example",
                   seed=101)
DANANG = PortalSpec(agency="Cổng thông tin điện tử Thành phố Đà Nẵng", city="Đà Nẵng", host="portal.danang.example",
                    seed=202)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.settimeout(5)
            self.connection.do_handshake()  # here, in the request's thread, not in accept()

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].lower()
        site = self.server.owner
        body = site.pages.get(host)
        status = site.status.get(host, 200) if body is not None else 404
        payload = body if body is not None else b"not found"
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512

    def __init__(self, owner: PortalServer, port: int) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", port), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        if self.owner.tls is not None:
            sock = self.owner.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # probes that connect and leave, refused legacy handshakes: expected, not news


@dataclass
class PortalServer:
    """An HTTP(S) server on 127.0.0.1 serving `pages[host]` by the Host header; stop and start again on
    the same port to play an outage. `tls` None serves plain HTTP."""

    tls: ssl.SSLContext | None = None
    pages: dict[str, bytes] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    port: int = 0
    _server: _Server | None = None
    _thread: threading.Thread | None = None

    def start(self) -> PortalServer:
        self._server = _Server(self, self.port)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"portal-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def server_context(ca: trustme.CA, *hostnames: str, not_after: datetime | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(*hostnames, not_after=not_after).configure_cert(ctx)
    return ctx


@dataclass(frozen=True, slots=True)
class WatchDemoStats:
    events: int
    alerts: int
    defaced: tuple[str, ...]  # tenants whose portal the watch found defaced


def demo_watch_settings(port: int, ca_file: Path) -> ServiceWatchSettings:
    def target(spec: PortalSpec, tenant: str, asset: str) -> WatchTarget:
        return WatchTarget(id=f"{tenant}-portal", tenant=tenant, name=spec.agency, url=f"https://{spec.host}/",
                           connect_to=f"127.0.0.1:{port}", owner=f"Văn phòng UBND {spec.city}", asset_id=asset,
                           security_level=3, ca_file=ca_file, timeout_s=5)

    return ServiceWatchSettings(vantage_point=VANTAGE, jitter_s=0, targets=(
        target(HANOI, "hanoi", "hanoi-portal"), target(DANANG, "danang", "danang-portal")))


def run_demo_watch(runtime: Runtime, data_dir: Path, now: datetime) -> WatchDemoStats:
    """Serve, learn, change, check and publish (see the module docstring); returns what it raised."""
    import trustme  # only the demo makes certificates; `govsoc up` without --demo never needs it

    data_dir.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="govsoc demo CA")
    ca_file = data_dir / "watch-demo-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    yesterday = (now - timedelta(days=1)).date()
    hanoi, danang = replace(HANOI, start=yesterday), replace(DANANG, start=yesterday)  # pages dated as the story
    server = PortalServer(tls=server_context(ca, HANOI.host, DANANG.host)).start()
    try:
        settings = demo_watch_settings(server.port, ca_file)
        server.pages = {HANOI.host: portal_page(hanoi, 0).encode(), DANANG.host: portal_page(danang, 0).encode()}
        events = check_round(settings, now - timedelta(days=1))
        server.pages = {HANOI.host: portal_page(hanoi, 1).encode(),
                        DANANG.host: defaced_page(danang, 1, "message_title").encode()}
        events += check_round(settings, now - timedelta(minutes=20))
    finally:
        server.stop()
    alerts = WatchDetector(settings).process(events)
    publish(runtime, events, alerts)
    defaced = tuple(sorted({a.tenant for a in alerts if a.rule_id == "govsoc-watch-defacement"}))
    return WatchDemoStats(events=len(events), alerts=len(alerts), defaced=defaced)


def check_round(settings: ServiceWatchSettings, at: datetime) -> list[Event]:
    """Every target checked once, the events stamped `at` (the demo compresses a day)."""
    return asyncio.run(run_once(settings, now=_fixed(at)))


def _fixed(at: datetime) -> Callable[[], datetime]:
    return lambda: at


def publish(runtime: Runtime, events: Sequence[Event], alerts: Sequence[Alert]) -> None:
    """Events through ingest (stored, enriched), then the alerts through the incident service."""
    bus = runtime.pipeline.bus
    bus.publish(topics.RAW, [(e.tenant, e.to_json()) for e in events])
    runtime.pipeline.drain()
    if alerts:
        bus.publish(topics.ALERTS, [(a.tenant, a.to_json()) for a in alerts])
        runtime.pipeline.drain()
