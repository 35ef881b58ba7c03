"""Escalating a report upward: over HTTP to a real local server, over SMTP to a real local relay,
and to a parent tenant; a failure then a success, with a delivery record per attempt."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from api.demo.reports import demo_report_body
from config.reports import EmailRecipient, ForwardingSettings, HttpRecipient, ReportSettings, TenantRecipient
from config.tenants import TenantScope
from tests.api.reports.conftest import NOW, MakeApi, ReportsApi


@dataclass
class Platform:
    """A national platform's intake: answers 503 to the first `failures` posts, then 202."""

    failures: int
    received: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def platform() -> Iterator[Platform]:
    state = Platform(failures=2)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.received.append((dict(self.headers), body))
            failing = len(state.received) <= state.failures
            self.send_response(503 if failing else 202)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"status": "busy"}' if failing else b'{"status": "accepted"}')

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/intake"
    yield state
    server.shutdown()
    server.server_close()


class Mailbox:
    """An SMTP handler that refuses the first message for now (451) and keeps the rest."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.tries = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.tries += 1
        if self.tries == 1:
            return "451 4.3.0 try again later"
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


def file(api: ReportsApi) -> str:
    answer = api.post("/api/v1/reports", "reporter-byt", demo_report_body(NOW))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["reference"])


def settings_with(*recipients: Any, attempts: int = 4) -> ReportSettings:
    return ReportSettings(recipients=(TenantRecipient(name="parent"), *recipients),
                          forwarding=ForwardingSettings(attempts=attempts, backoff_s=0.5))


def test_http_forwarding_retries_with_back_off_and_records_each_attempt(make_api: MakeApi,
                                                                        platform: Platform) -> None:
    api = make_api(settings_with(HttpRecipient(name="national-platform", url=platform.url)))
    reference = file(api)
    answer = api.post(f"/api/v1/reports/{reference}/forward", "reporter-byt", {"recipient": "national-platform"})
    assert answer.status_code == 200, answer.text
    outcome = answer.json()
    assert outcome["delivered"] is True
    assert [(a["attempt"], a["ok"]) for a in outcome["attempts"]] == [(1, False), (2, False), (3, True)]
    assert "503" in outcome["attempts"][0]["detail"] and outcome["attempts"][2]["detail"] == "HTTP 202"
    assert api.sleeps == [0.5, 1.0]

    assert len(platform.received) == 3
    keys = {headers["Idempotency-Key"] for headers, _ in platform.received}
    assert keys == {f"{reference}:v1:national-platform"}
    payload = platform.received[-1][1]["payload"]
    assert payload["reference"] == reference and payload["tenant"] == "byt"
    assert payload["versions"][0]["body"]["system"]["domains"] == ["mail.moh.example", "moh.example"]

    stored = api.get(f"/api/v1/reports/{reference}", "coordinator").json()["deliveries"]
    assert [(d["recipient"], d["ok"]) for d in stored] == [("national-platform", False)] * 2 + [
        ("national-platform", True)]
    audit = api.incidents.audit_trail(TenantScope.everything(), object_id=reference)
    assert audit[0].action == "report.forwarded" and audit[0].details["attempts"] == 3


def test_http_forwarding_gives_up_after_the_configured_attempts(make_api: MakeApi, platform: Platform) -> None:
    platform.failures = 10
    api = make_api(settings_with(HttpRecipient(name="national-platform", url=platform.url), attempts=2))
    reference = file(api)
    outcome = api.post(f"/api/v1/reports/{reference}/forward", "reporter-byt",
                       {"recipient": "national-platform"}).json()
    assert outcome["delivered"] is False and [a["ok"] for a in outcome["attempts"]] == [False, False]
    assert len(platform.received) == 2


def test_email_forwarding_uses_the_subject_prefix_and_retries(make_api: MakeApi,
                                                              smtp: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp
    recipient = EmailRecipient(name="coordinator-mail", to=("ir@coordinator.example",), sender="soc@moh.example",
                               subject_prefix="[BCSC-BYT]", smtp_host="127.0.0.1", smtp_port=port)
    api = make_api(settings_with(recipient))
    reference = file(api)
    outcome = api.post(f"/api/v1/reports/{reference}/forward", "reporter-byt",
                       {"recipient": "coordinator-mail"}).json()
    assert outcome["delivered"] is True
    assert [a["ok"] for a in outcome["attempts"]] == [False, True]
    assert "451" in outcome["attempts"][0]["detail"]

    [message] = mailbox.messages
    assert str(message["Subject"]).startswith(f"[BCSC-BYT] {reference}")
    assert message["To"] == "ir@coordinator.example"
    [attachment] = [part for part in message.walk() if part.get_filename() == f"{reference}.json"]
    payload = attachment.get_payload(decode=True)
    assert isinstance(payload, bytes)
    sent = json.loads(payload)
    assert sent["reference"] == reference and sent["versions"][0]["kind"] == "initial"


def test_escalation_to_the_parent_tenant_is_recorded(api: ReportsApi) -> None:
    reference = file(api)
    outcome = api.post(f"/api/v1/reports/{reference}/forward", "reporter-byt", {"recipient": "parent"}).json()
    assert outcome == {"recipient": "parent", "channel": "tenant:national", "delivered": True,
                       "attempts": [outcome["attempts"][0]]}
    assert outcome["attempts"][0]["detail"] == "escalated to national"


def test_unknown_recipients_and_tenants_not_above_the_reporter_are_refused(make_api: MakeApi) -> None:
    api = make_api(settings_with(TenantRecipient(name="finance", tenant="btc")))
    reference = file(api)
    for name in ("nobody", "finance"):
        answer = api.post(f"/api/v1/reports/{reference}/forward", "reporter-byt", {"recipient": name})
        assert answer.status_code == 422
        assert answer.json()["detail"][0]["loc"] == ["body", "recipient"]
    assert api.get(f"/api/v1/reports/{reference}", "coordinator").json()["deliveries"] == []
