"""Reading `service_watch` events: the typed facts a check event carries, and its availability.

In: an `Event` a service-watch sensor made (sensors/watch/check.py writes these fields; this
package may not import it, so the field names are repeated here and the round trip is tested).
Out: an `Observation`, or None for an event of another dataset. A field of the wrong type reads
as absent, never raises: the event came over the wire.

Availability (`judge_availability`): the check reached the service (no failed phase), the status
is one the target expects, and every `must_contain` text is on the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from config.watch import ServiceWatchSettings, WatchTarget
from pipeline.records import Event

DATASET = "service_watch"


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class Page:
    """The page snapshot of a check (sensors/watch/content.py `PageSnapshot.to_doc`)."""

    title: str
    lines: tuple[str, ...]
    scripts: tuple[str, ...]
    iframes: tuple[str, ...]
    paths: tuple[str, ...]
    size: int
    fingerprint: str
    link_hosts: tuple[str, ...] = ()

    @classmethod
    def from_doc(cls, doc: Any) -> Page | None:
        if not isinstance(doc, Mapping):
            return None
        return cls(title=_str(doc.get("title")), lines=_strs(doc.get("lines")), scripts=_strs(doc.get("scripts")),
                   iframes=_strs(doc.get("iframes")), paths=_strs(doc.get("paths")),
                   size=int(_num(doc.get("size")) or 0), fingerprint=_str(doc.get("fingerprint")),
                   link_hosts=_strs(doc.get("link_hosts")))

    @property
    def text(self) -> str:
        return "\n".join((self.title, *self.lines))


@dataclass(frozen=True, slots=True)
class TlsFacts:
    verified: bool
    verify_code: int
    verify_error: str
    hostname_match: bool
    self_signed: bool
    days_to_expiry: float | None
    issuer: str
    spki_sha256: str
    cert_sha256: str
    names: tuple[str, ...]
    version: str
    cipher: str
    weak_cipher: bool
    legacy_protocols: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Observation:
    event: Event
    tenant: str
    target_id: str
    vantage: str
    at: datetime
    failed_phase: str
    error: str
    status: int | None
    dns_code: str
    dns_answers: tuple[str, ...] | None  # None: no DNS lookup was made
    tls: TlsFacts | None
    page: Page | None

    @classmethod
    def of(cls, event: Event) -> Observation | None:
        if event.get("event.dataset") != DATASET or not _str(event.get("govsoc.watch.target")):
            return None
        answers = event.get("dns.answers")
        status = _num(event.get("http.response.status_code"))
        return cls(
            event=event, tenant=event.tenant, target_id=_str(event.get("govsoc.watch.target")),
            vantage=_str(event.get("observer.name")) or "unknown", at=event.timestamp,
            failed_phase=_str(event.get("error.type")) if event.get("event.outcome") == "failure" else "",
            error=_str(event.get("error.message")), status=int(status) if status is not None else None,
            dns_code=_str(event.get("dns.response_code")),
            dns_answers=tuple(sorted({_str(a.get("data")).lower().rstrip(".") for a in answers
                                      if isinstance(a, Mapping) and a.get("type") in ("A", "AAAA", "CNAME", "MX",
                                                                                         "NS", "TXT")}))
            if isinstance(answers, list) else None,
            tls=_tls(event), page=Page.from_doc(event.get("govsoc.watch.page")),
        )


def _tls(event: Event) -> TlsFacts | None:
    facts = event.get("govsoc.watch.tls")
    if not isinstance(facts, Mapping) or event.get("tls.established") is not True:
        return None
    return TlsFacts(
        verified=facts.get("verified") is True, verify_code=int(_num(facts.get("verify_code")) or 0),
        verify_error=_str(facts.get("verify_error")), hostname_match=facts.get("hostname_match") is True,
        self_signed=facts.get("self_signed") is True, days_to_expiry=_num(facts.get("days_to_expiry")),
        issuer=_str(event.get("tls.server.issuer")), spki_sha256=_str(facts.get("spki_sha256")),
        cert_sha256=_str(event.get("tls.server.hash.sha256")),
        names=_strs(event.get("tls.server.x509.alternative_names")),
        version=_str(event.get("tls.version")), cipher=_str(event.get("tls.cipher")),
        weak_cipher=facts.get("weak_cipher") is True, legacy_protocols=_strs(facts.get("legacy_protocols")),
    )


def judge_availability(obs: Observation, target: WatchTarget) -> tuple[bool, str]:
    """(available, why not) of one check against the target's expectations."""
    if obs.failed_phase:
        return False, f"{obs.failed_phase}: {obs.error}"
    if target.kind == "domain":
        return (True, "") if obs.dns_code in ("NOERROR", "NXDOMAIN") else (False, f"dns: {obs.dns_code or 'no answer'}")
    if target.url is None:
        return True, ""
    if obs.status is None or (target.expect.status and obs.status not in target.expect.status):
        return False, f"http status {obs.status}, expected {', '.join(map(str, target.expect.status))}"
    text = obs.page.text if obs.page else ""
    missing = [t for t in target.expect.must_contain if t not in text]
    if missing:
        return False, f"page lacks {missing[0]!r}"
    return True, ""


def check_row(event: Event, watch: ServiceWatchSettings) -> dict[str, Any]:
    """One row of a check event, as `govsoc watch` prints it and the console shows it: up or down and
    why (judged against the target's expectations when the settings know the target, else by the
    check's own outcome), status, time to first byte, TLS version, days to certificate expiry."""
    obs = Observation.of(event)
    target = watch.target(event.tenant, str(event.get("govsoc.watch.target"))) if obs else None
    up, why = judge_availability(obs, target) if obs and target else (event.get("event.outcome") == "success", "")
    return {
        "tenant": event.tenant, "target": event.get("govsoc.watch.target"), "vantage": event.get("observer.name"),
        "time": event.get("@timestamp"), "state": "up" if up else "down", "why": why,
        "status": event.get("http.response.status_code"), "ttfb_ms": event.get("govsoc.watch.ttfb_ms"),
        "tls": event.get("tls.version"), "cert_days": event.get("govsoc.watch.tls.days_to_expiry"),
        "dns": event.get("dns.response_code"), "page": event.get("govsoc.watch.page.fingerprint"),
    }
