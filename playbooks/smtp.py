"""The `smtp` connector: a playbook's `notify_email` step as a mail through an SMTP relay.

In: a `ConnectorRequest` whose payload holds `subject`, `body` and either `to` (addresses) or
`tenant` (mailed at the addresses `recipients` configures for it). Out: a `ConnectorResult` with
status 250 and the accepted recipients, or a raised `ConnectorError`.

Contract:
- Options are checked when the connector is built (`from_options`, pydantic, `extra="forbid"`):
  `host`, `port`, `from`, `security` (`none`, `starttls`, or `tls` for implicit TLS on connect),
  `credentials_file`, `timeout_s`, `retries`, `backoff_s`, `recipients` ({tenant: [addresses]}).
- Credentials are never written inline: `credentials_file` names a file whose first line is the
  user and second the password, read at each send (a rotated password needs no restart). A
  `password` option is refused. Credentials are sent only over TLS (`starttls` or `tls`).
- At-least-once with a stable identity: the `Message-ID` derives from the request's idempotency
  key, so a mail resent after a restart carries the same id and a receiving system can drop the
  copy; the key is also sent as the `X-Idempotency-Key` header.
- Transient failures (connection refused or dropped, timeouts, 4xx replies) are retried with
  exponential backoff (`backoff_s * 2**attempt`); a 5xx reply (a refused login, sender, recipient
  or message) and a relay without the STARTTLS or AUTH it is configured to use are raised at once.
"""

from __future__ import annotations

import email.policy
import hashlib
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import structlog
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from playbooks.connectors import ConnectorError, ConnectorRequest, ConnectorResult
from playbooks.errors import PlaybookError

log = structlog.get_logger(__name__)

Address = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$")]
# Headers fold at RFC 5322's 998, not 78: a subject holding a 32-character incident id folded at 78
# starts with a space once unfolded, and that is what mail clients show.
_POLICY = email.policy.default.clone(max_line_length=998)


class SmtpOptions(BaseModel):
    """What a deployment writes for an `smtp` connector (`from` is the sender's address)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    host: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    sender: Address = Field(alias="from")
    security: Literal["none", "starttls", "tls"] = "starttls"
    credentials_file: Path | None = None
    ca_file: Path | None = None  # a private CA for the relay's certificate; the system's by default
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    retries: Annotated[int, Field(ge=0, le=10)] = 3
    backoff_s: Annotated[float, Field(ge=0, le=60)] = 0.5
    recipients: Mapping[str, tuple[Address, ...]] = Field(default_factory=dict)


@dataclass
class SmtpConnector:
    name: str
    options: SmtpOptions
    sleep: Callable[[float], None] = field(default=time.sleep)

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> Self:
        if "password" in options:
            raise PlaybookError(f"connector {name!r}: no inline password; name a credentials_file "
                                "(first line the user, second the password)")
        try:
            parsed = SmtpOptions.model_validate(dict(options))
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise PlaybookError(f"connector {name!r}: {where}: {first['msg']}") from e
        if parsed.credentials_file is not None and parsed.security == "none":
            raise PlaybookError(f"connector {name!r}: credentials are sent only over TLS: set security to "
                                "starttls or tls")
        return cls(name=name, options=parsed)

    def send(self, request: ConnectorRequest) -> ConnectorResult:
        message = self.message(request)
        retries = self.options.retries if request.retries is None else request.retries
        timeout_s = self.options.timeout_s if request.timeout_s is None else request.timeout_s
        last = ""
        for attempt in range(retries + 1):
            if attempt:
                self.sleep(self.options.backoff_s * 2 ** (attempt - 1))
            try:
                refused = self._deliver(message, timeout_s)
            except smtplib.SMTPResponseException as e:
                if e.smtp_code >= 500:
                    raise ConnectorError(f"connector {self.name!r}: {self._where} refused the mail "
                                         f"({e.smtp_code} {_text(e.smtp_error)})") from e
                last = f"{e.smtp_code} {_text(e.smtp_error)}"
            except smtplib.SMTPNotSupportedError as e:  # no STARTTLS or AUTH there: a configuration fault
                raise ConnectorError(f"connector {self.name!r}: {self._where}: {e}") from e
            except smtplib.SMTPRecipientsRefused as e:
                raise ConnectorError(f"connector {self.name!r}: {self._where} refused every recipient: "
                                     f"{', '.join(sorted(e.recipients))}") from e
            except (smtplib.SMTPException, OSError) as e:
                last = f"{type(e).__name__}: {e}"
            else:
                accepted = sorted(set(_addresses(message)) - set(refused))
                return ConnectorResult(250, {"accepted": accepted, "message_id": message["Message-ID"]}, attempt + 1)
            log.warning("connector_retry", connector=self.name, attempt=attempt + 1, reason=last)
        raise ConnectorError(f"connector {self.name!r}: {self._where} failed after {retries + 1} attempts: {last}")

    @property
    def _where(self) -> str:
        return f"smtp://{self.options.host}:{self.options.port}"

    def message(self, request: ConnectorRequest) -> EmailMessage:
        """The mail for `request`; a `PlaybookError` when it has nobody to go to."""
        payload = request.payload
        to = [str(a) for a in payload.get("to", ())]
        tenant = payload.get("tenant")
        if not to and tenant is not None:
            to = list(self.options.recipients.get(str(tenant), ()))
            if not to:
                raise ConnectorError(f"connector {self.name!r}: no recipients configured for tenant {tenant!r}")
        if not to:
            raise ConnectorError(f"connector {self.name!r}: the mail has no recipients")
        message = EmailMessage(policy=_POLICY)
        message["From"] = self.options.sender
        message["To"] = ", ".join(to)
        message["Subject"] = str(payload.get("subject", ""))
        message["Date"] = formatdate(usegmt=True)
        digest = hashlib.sha256(request.idempotency_key.encode("utf-8")).hexdigest()[:32]
        message["Message-ID"] = f"<{digest}@govsoc.playbooks>"
        message["X-Idempotency-Key"] = request.idempotency_key
        message.set_content(str(payload.get("body", "")))
        return message

    def _deliver(self, message: EmailMessage, timeout_s: float) -> dict[str, Any]:
        options = self.options
        context = ssl.create_default_context(cafile=str(options.ca_file) if options.ca_file else None)
        smtp: smtplib.SMTP
        if options.security == "tls":
            smtp = smtplib.SMTP_SSL(options.host, options.port, timeout=timeout_s, context=context)
        else:
            smtp = smtplib.SMTP(options.host, options.port, timeout=timeout_s)
        with smtp:
            if options.security == "starttls":
                smtp.starttls(context=context)
            if options.credentials_file is not None:
                user, password = read_credentials(options.credentials_file)
                smtp.login(user, password)
            return dict(smtp.send_message(message))


def read_credentials(path: Path) -> tuple[str, str]:
    """(user, password) from `path`: the user on line 1, the password on line 2."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConnectorError(f"{path}: cannot read the SMTP credentials: {e}") from e
    if len(lines) < 2 or not lines[0].strip() or not lines[1]:
        line = 1 if not lines or not lines[0].strip() else 2
        raise ConnectorError(f"{path}:{line}: expected the user on line 1 and the password on line 2")
    return lines[0].strip(), lines[1]


def _addresses(message: EmailMessage) -> list[str]:
    return [a.strip() for a in str(message["To"]).split(",") if a.strip()]


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
