"""Forwarding: a report escalated upward, to a parent tenant or to an external national platform.

In: a stored report and the name of a configured recipient (`config.reports.ReportSettings`).
Out: a `ForwardOutcome`, and one `Delivery` row per attempt in the report store.

Contract:
- `tenant` recipients are tenants of the tree above the reporter (`parent`, the national
  coordinator, or an ancestor's id): they already read the report through their scope, so the
  delivery is one recorded attempt that marks the escalation; a tenant that is not an ancestor
  is refused (`ForwardError`), since it could not read what it was sent.
- `http` recipients get the report as JSON through `playbooks.connectors.HttpConnector` (one
  request per attempt, `Idempotency-Key: <reference>:v<version>:<recipient>`, so a platform that
  honours it files a retried delivery once); `email` recipients get a message through SMTP whose
  subject starts with the configured prefix, with the report as a JSON attachment.
- An attempt that fails (connection, timeout, any HTTP error, any SMTP error) is recorded with
  its reason and retried after `backoff_s * 2**n` seconds, up to `attempts` in all; the
  outcome says whether one attempt succeeded. Nothing here raises for a failed delivery.
"""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import orjson
import structlog

from api.reports.store import Delivery, ReportRecord, SqliteReportStore
from config.errors import GovsocError
from config.reports import EmailRecipient, HttpRecipient, ReportSettings, TenantRecipient
from config.tenants import TenantTree
from playbooks.connectors import ConnectorError, ConnectorRequest, HttpConnector

log = structlog.get_logger(__name__)


class ForwardError(GovsocError):
    """A report cannot be sent to that recipient at all (unknown, or not above the reporter)."""


@dataclass(frozen=True, slots=True)
class ForwardOutcome:
    recipient: str
    channel: str
    delivered: bool
    attempts: tuple[Delivery, ...]


def report_payload(record: ReportRecord) -> dict[str, Any]:
    """The report as sent upward: its reference, tenant, incident and every version so far."""
    s = record.summary
    return {
        "reference": s.reference, "tenant": s.tenant, "incident_id": s.incident_id, "title": s.title,
        "versions": [{"version": v.version, "kind": v.kind, "filed_at": v.filed_at.isoformat(),
                      "actor": v.actor, "body": v.body} for v in record.versions],
    }


class Forwarder:
    """Delivers reports to the configured recipients, recording every attempt."""

    def __init__(self, settings: ReportSettings, store: SqliteReportStore, tree: TenantTree,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._settings = settings
        self._store = store
        self._tree = tree
        self._sleep = sleep

    def forward(self, record: ReportRecord, recipient_name: str) -> ForwardOutcome:
        recipient = self._settings.recipient(recipient_name)
        if recipient is None:
            known = ", ".join(r.name for r in self._settings.recipients) or "none configured"
            raise ForwardError(f"recipient: unknown recipient {recipient_name!r} (configured: {known})")
        if isinstance(recipient, TenantRecipient):
            return self._to_tenant(record, recipient)
        send = self._http(record, recipient) if isinstance(recipient, HttpRecipient) else self._email(record, recipient)
        return self._with_retries(record, recipient.name, recipient.kind, send)

    def target_tenant(self, reporter: str, recipient: TenantRecipient) -> str:
        """The tenant id a tenant recipient names for a report of `reporter`; refused if not above it."""
        ancestors = self._tree.ancestors(reporter)
        wanted = {"parent": ancestors[0] if ancestors else None,
                  "national": self._settings.national_coordinator}.get(recipient.tenant, recipient.tenant)
        if wanted is None or wanted not in ancestors:
            raise ForwardError(f"recipient {recipient.name!r}: tenant {wanted or recipient.tenant!r} is not above "
                               f"the reporting tenant {reporter!r}")
        return wanted

    def _to_tenant(self, record: ReportRecord, recipient: TenantRecipient) -> ForwardOutcome:
        target = self.target_tenant(record.summary.tenant, recipient)
        delivery = self._record(record, recipient.name, f"tenant:{target}", 1, True, f"escalated to {target}")
        return ForwardOutcome(recipient.name, f"tenant:{target}", True, (delivery,))

    def _http(self, record: ReportRecord, recipient: HttpRecipient) -> Callable[[], str]:
        connector = HttpConnector(name=recipient.name, url=recipient.url, timeout_s=recipient.timeout_s, retries=0,
                                  headers=recipient.headers)
        latest = record.versions[-1].version
        request = ConnectorRequest(action="report.forward", target=recipient.name, payload=report_payload(record),
                                   idempotency_key=f"{record.summary.reference}:v{latest}:{recipient.name}")

        def send() -> str:
            result = connector.send(request)
            return f"HTTP {result.status}"

        return send

    def _email(self, record: ReportRecord, recipient: EmailRecipient) -> Callable[[], str]:
        message = email_message(record, recipient)

        def send() -> str:
            with smtplib.SMTP(recipient.smtp_host, recipient.smtp_port, timeout=recipient.timeout_s) as smtp:
                if recipient.starttls:
                    smtp.starttls()
                refused = smtp.send_message(message)
            if refused:
                raise smtplib.SMTPRecipientsRefused(refused)
            return f"sent to {', '.join(recipient.to)}"

        return send

    def _with_retries(self, record: ReportRecord, name: str, channel: str,
                      send: Callable[[], str]) -> ForwardOutcome:
        attempts: list[Delivery] = []
        policy = self._settings.forwarding
        for attempt in range(1, policy.attempts + 1):
            if attempt > 1:
                self._sleep(policy.backoff_s * 2 ** (attempt - 2))
            try:
                detail = send()
            except (ConnectorError, smtplib.SMTPException, OSError) as e:
                attempts.append(self._record(record, name, channel, attempt, False, f"{type(e).__name__}: {e}"))
                log.warning("report_delivery_failed", reference=record.summary.reference, recipient=name,
                            attempt=attempt, reason=str(e))
                continue
            attempts.append(self._record(record, name, channel, attempt, True, detail))
            return ForwardOutcome(name, channel, True, tuple(attempts))
        log.error("report_not_delivered", reference=record.summary.reference, recipient=name, attempts=len(attempts))
        return ForwardOutcome(name, channel, False, tuple(attempts))

    def _record(self, record: ReportRecord, name: str, channel: str, attempt: int, ok: bool,
                detail: str) -> Delivery:
        delivery = Delivery(record.summary.reference, record.summary.tenant, name, channel, attempt,
                            datetime.now(UTC), ok, detail[:2000])
        self._store.record_delivery(delivery)
        return delivery


def email_message(record: ReportRecord, recipient: EmailRecipient) -> EmailMessage:
    """The e-mail of a report: the configured subject prefix, a short text, the report as JSON."""
    s = record.summary
    message = EmailMessage()
    subject = f"{recipient.subject_prefix} {s.reference}: {s.title}"
    message["Subject"] = " ".join(subject.split())  # one line, whatever a title held
    message["From"] = recipient.sender
    message["To"] = ", ".join(recipient.to)
    kinds: Mapping[str, str] = {"initial": "báo cáo ban đầu", "follow_up": "báo cáo bổ sung",
                                "final": "báo cáo kết thúc ứng cứu"}
    latest = record.versions[-1]
    message.set_content(
        f"Số hiệu báo cáo / Reference: {s.reference}\n"
        f"Đơn vị báo cáo / Reporting tenant: {s.tenant}\n"
        f"Sự cố / Incident: {s.title} ({s.incident_id})\n"
        f"Phiên bản / Version: {latest.version} ({kinds.get(latest.kind, latest.kind)})\n"
        "Nội dung đầy đủ trong tệp đính kèm / The full report is attached as JSON.\n")
    message.add_attachment(orjson.dumps(report_payload(record), option=orjson.OPT_INDENT_2),
                           maintype="application", subtype="json", filename=f"{s.reference}.json")
    return message
