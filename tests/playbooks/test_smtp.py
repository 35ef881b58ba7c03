"""SmtpConnector against a real SMTP server on loopback (aiosmtpd): the mail it sends, retries on a
temporary refusal, a permanent refusal, STARTTLS and implicit TLS with credentials from a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from playbooks import ConnectorError, ConnectorRegistry, ConnectorRequest, PlaybookError
from playbooks.smtp import SmtpConnector
from tests.playbooks.conftest import Certificate, Mailbox, smtp_server

MAIL = ConnectorRequest("email", "soc@hanoi.gov.vn", {"to": ["soc@hanoi.gov.vn", "lead@hanoi.gov.vn"],
                                                      "subject": "Sự cố inc-1", "body": "Chặn 203.0.113.77?",
                                                      "incident_id": "inc-1"}, "run-1:mail")


def smtp(port: int, sleeps: list[float] | None = None, **options: Any) -> SmtpConnector:
    connector = SmtpConnector.from_options("mail", {"host": "127.0.0.1", "port": port, "from": "govsoc@soc.gov.vn",
                                                    "security": "none", "backoff_s": 0.25, **options})
    connector.sleep = (sleeps if sleeps is not None else []).append
    return connector


def test_sends_one_mail_whose_message_id_comes_from_the_idempotency_key(mailbox: Mailbox) -> None:
    result = smtp(mailbox.port).send(MAIL)
    again = smtp(mailbox.port).send(MAIL)  # a resend after a restart: the same identity
    assert result.status == 250 and result.body["accepted"] == ["lead@hanoi.gov.vn", "soc@hanoi.gov.vn"]
    first, second = mailbox.messages
    assert first["Message-ID"] == second["Message-ID"] == result.body["message_id"] == again.body["message_id"]
    assert first["X-Idempotency-Key"] == "run-1:mail"
    assert (first["From"], first["To"], first["Subject"]) == ("govsoc@soc.gov.vn",
                                                              "soc@hanoi.gov.vn, lead@hanoi.gov.vn", "Sự cố inc-1")
    assert first.get_content().strip() == "Chặn 203.0.113.77?"
    assert mailbox.envelopes[0] == ("govsoc@soc.gov.vn", ["soc@hanoi.gov.vn", "lead@hanoi.gov.vn"])


def test_a_temporary_refusal_is_retried_with_backoff(mailbox: Mailbox) -> None:
    mailbox.replies = ["451 4.3.0 try again later", "421 4.3.2 busy"]
    sleeps: list[float] = []
    result = smtp(mailbox.port, sleeps).send(MAIL)
    assert result.attempts == 3 and len(mailbox.messages) == 1 and sleeps == [0.25, 0.5]


def test_a_permanent_refusal_is_raised_at_once(mailbox: Mailbox) -> None:
    mailbox.replies = ["554 5.7.1 rejected"]
    with pytest.raises(ConnectorError, match=r"smtp://127.0.0.1:\d+ refused the mail \(554 5.7.1 rejected\)"):
        smtp(mailbox.port).send(MAIL)
    assert mailbox.messages == []


def test_a_step_limits_the_retries(mailbox: Mailbox) -> None:
    mailbox.replies = ["451 later", "451 later", "451 later"]
    request = ConnectorRequest(MAIL.action, MAIL.target, MAIL.payload, MAIL.idempotency_key, retries=1, timeout_s=2)
    with pytest.raises(ConnectorError, match="failed after 2 attempts: 451 later"):
        smtp(mailbox.port, retries=5).send(request)


def test_per_tenant_recipients_come_from_the_connector(mailbox: Mailbox) -> None:
    connector = smtp(mailbox.port, recipients={"danang": ["soc@danang.gov.vn"]})
    request = ConnectorRequest("email", "danang", {"tenant": "danang", "subject": "s", "body": "b"}, "run-1:m:danang")
    connector.send(request)
    assert mailbox.envelopes[0][1] == ["soc@danang.gov.vn"]
    unknown = ConnectorRequest("email", "hue", {"tenant": "hue", "subject": "s", "body": "b"}, "run-1:m:hue")
    with pytest.raises(ConnectorError, match="no recipients configured for tenant 'hue'"):
        connector.send(unknown)


def credentials(tmp_path: Path, password: str = "s3cret pass") -> Path:
    secret = tmp_path / "smtp.cred"
    secret.write_text(f"soc-mailer\n{password}\n", encoding="utf-8")
    return secret


def test_starttls_then_login_with_credentials_from_a_file(certificate: Certificate, tmp_path: Path) -> None:
    with smtp_server(auth=True, tls_context=certificate.server_context(), require_starttls=True) as box:
        connector = smtp(box.port, security="starttls", credentials_file=str(credentials(tmp_path)),
                         ca_file=str(certificate.cert))
        assert connector.send(MAIL).status == 250
    assert box.logins == [("soc-mailer", "s3cret pass")] and len(box.messages) == 1


def test_implicit_tls_and_a_wrong_password_is_refused(certificate: Certificate, tmp_path: Path) -> None:
    with smtp_server(auth=True, ssl_context=certificate.server_context()) as box:
        good = smtp(box.port, security="tls", credentials_file=str(credentials(tmp_path)),
                    ca_file=str(certificate.cert))
        assert good.send(MAIL).status == 250
        bad = smtp(box.port, security="tls", credentials_file=str(credentials(tmp_path, "wrong")),
                   ca_file=str(certificate.cert))
        with pytest.raises(ConnectorError, match="refused the mail \\(535"):
            bad.send(MAIL)
    assert len(box.messages) == 1


def test_an_untrusted_certificate_is_not_accepted(certificate: Certificate) -> None:
    with smtp_server(ssl_context=certificate.server_context()) as box:
        with pytest.raises(ConnectorError, match="CERTIFICATE_VERIFY_FAILED"):
            smtp(box.port, security="tls", retries=0).send(MAIL)
    assert box.messages == []


def test_options_are_checked_and_credentials_are_never_inline(tmp_path: Path) -> None:
    base = {"kind": "smtp", "host": "127.0.0.1", "from": "govsoc@soc.gov.vn"}
    with pytest.raises(PlaybookError, match="connector 'mail': no inline password"):
        ConnectorRegistry.from_config({"mail": {**base, "password": "x"}})
    with pytest.raises(PlaybookError, match="connector 'mail': credentials are sent only over TLS"):
        ConnectorRegistry.from_config({"mail": {**base, "security": "none", "credentials_file": "x"}})
    with pytest.raises(PlaybookError, match="connector 'mail': security: Input should be"):
        ConnectorRegistry.from_config({"mail": {**base, "security": "ssl"}})
    with pytest.raises(PlaybookError, match="connector 'mail': from: String should match"):
        ConnectorRegistry.from_config({"mail": {**base, "from": "nobody"}})
    registry = ConnectorRegistry.from_config({"mail": base})
    assert isinstance(registry.get("mail"), SmtpConnector)


def test_a_bad_credentials_file_is_named_with_its_line(certificate: Certificate, tmp_path: Path) -> None:
    secret = tmp_path / "smtp.cred"
    secret.write_text("soc-mailer\n", encoding="utf-8")
    with smtp_server(auth=True, tls_context=certificate.server_context()) as box:
        connector = smtp(box.port, security="starttls", credentials_file=str(secret), ca_file=str(certificate.cert),
                         retries=0)
        with pytest.raises(ConnectorError, match=f"{secret}:2: expected the user on line 1 and the password"):
            connector.send(MAIL)
