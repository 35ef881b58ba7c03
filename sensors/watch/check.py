"""One check of one target from one vantage point -> one ECS event.

In: a `WatchTarget` and a `CheckContext` (vantage point, resolver, shared HTTP client, clock).
Out: an `Event` of `event.dataset: service_watch` holding every measurement made: `dns.*`,
`destination.*`, `tls.*`, `url.*`, `http.*`, `event.duration` (ns), and under `govsoc.watch.*`
what ECS has no name for (target, phase timings, certificate verdicts, the page snapshot).

Phases run in order DNS -> TCP -> TLS -> HTTP; the first that fails ends the check and is named in
`error.type` with `event.outcome: failure`. A status code or content the owner did not expect is
not a failure here: sensors measure, detections/watch judges against the expectations.
The event id derives from (tenant, target, vantage point, start time): re-shipping is idempotent.
Field names are the contract with detections/watch (which may not import this package); the
round trip is tested in tests/detections/watch/.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from config.watch import CertificatePolicy, WatchTarget
from pipeline.records import Event, set_path, to_iso, utc_now
from sensors.watch.content import extract_page
from sensors.watch.probes import DnsResult, HttpResult, connect, fetch, resolve, system_resolver
from sensors.watch.tls import TlsResult, inspect_tls

DATASET = "service_watch"
ACTION = "service_check"


@dataclass(frozen=True, slots=True)
class CheckContext:
    vantage_point: str
    client: httpx.AsyncClient
    resolver: tuple[str, int] | None = None  # None: the system's
    certificates: CertificatePolicy = field(default_factory=CertificatePolicy)
    now: Callable[[], datetime] = utc_now


@dataclass
class _Check:
    """The facts of a check gathered phase by phase (internal; becomes the event)."""

    doc: dict[str, Any]
    failed: str = ""
    error: str = ""

    def put(self, dotted: str, value: Any) -> None:
        set_path(self.doc, dotted, value)

    def fail(self, phase: str, error: str) -> None:
        self.failed, self.error = phase, error


async def check_target(target: WatchTarget, ctx: CheckContext) -> Event:
    """Run the target's phases once; never raises for network trouble (it is in the event)."""
    started, clock = ctx.now(), time.perf_counter()
    check = _Check(_base_doc(target, ctx.vantage_point, started))
    host, port = target.connect_address
    if target.kind == "domain" or host is None or target.expect.dns_answers:
        dns_result = await resolve(target.hostname, target.record_types, ctx.resolver or system_resolver(),
                                   target.timeout_s)
        _put_dns(check, dns_result)
        if host is None and target.kind != "domain":
            if dns_result.error or not dns_result.addresses:
                check.fail("dns", dns_result.error or f"{target.hostname}: no address ({dns_result.response_code})")
            else:
                host = dns_result.addresses[0]
        elif target.kind == "domain" and dns_result.error:
            check.fail("dns", dns_result.error)
    if host is not None and not check.failed:
        await _network_phases(target, ctx, check, host, port)
    elapsed = time.perf_counter() - clock
    check.put("event.duration", int(elapsed * 1e9))
    check.put("event.outcome", "failure" if check.failed else "success")
    if check.failed:
        check.put("error.type", check.failed)
        check.put("error.message", check.error[:500])
    check.put("message", f"{target.id} from {ctx.vantage_point}: "
                         f"{'failed at ' + check.failed + ': ' + check.error if check.failed else 'ok'}"[:300])
    return Event.create(check.doc, id_parts=(DATASET, target.id, ctx.vantage_point, to_iso(started)))


async def _network_phases(target: WatchTarget, ctx: CheckContext, check: _Check, host: str, port: int) -> None:
    check.put("destination.address", host)
    check.put("destination.ip", host)
    check.put("destination.port", port)
    tcp = await connect(host, port, target.timeout_s)
    check.put("govsoc.watch.tcp_ms", tcp.ms)
    if tcp.error:
        check.fail("tcp", tcp.error)
        return
    if target.uses_tls:
        start = time.perf_counter()
        try:
            tls = await inspect_tls(host, port, target.hostname, target.ca_file, target.timeout_s,
                                    ctx.certificates.probe_legacy_protocols)
        except (OSError, TimeoutError, ValueError) as e:  # ssl.SSLError is an OSError
            check.put("tls.established", False)
            check.fail("tls", f"tls: {e or type(e).__name__}")
            return
        check.put("govsoc.watch.tls_ms", round((time.perf_counter() - start) * 1000, 3))
        _put_tls(check, tls, ctx.now())
    if target.url:
        result = await fetch(ctx.client, target.url, host, port, target.timeout_s)
        _put_http(check, result)


def _base_doc(target: WatchTarget, vantage: str, started: datetime) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@timestamp": started,
        "organization": {"id": target.tenant},
        "observer": {"name": vantage, "type": "service_watch"},
        "event": {"kind": "event", "category": ["network", "web"] if target.url else ["network"],
                  "type": ["info"], "action": ACTION, "dataset": DATASET, "module": DATASET},
        "govsoc": {"watch": {"target": target.id, "kind": target.kind, "name": target.name or target.id,
                             "owner": target.owner, "security_level": target.security_level,
                             "hostname": target.hostname}},
    }
    if target.asset_id:
        set_path(doc, "govsoc.watch.asset_id", target.asset_id)
    if target.url:
        parts = urlsplit(target.url)
        doc["url"] = {"full": target.url, "original": target.url, "scheme": parts.scheme,
                      "domain": target.hostname, "path": parts.path or "/", "port": target.port}
    elif target.address:
        doc["url"] = {"domain": target.hostname, "port": target.port}
    return doc


def _put_dns(check: _Check, result: DnsResult) -> None:
    check.put("dns.question.name", result.name)
    check.put("dns.response_code", result.response_code)
    check.put("dns.resolved_ip", list(result.addresses))
    check.put("dns.answers", [{"type": a.type, "data": a.data, "ttl": a.ttl} for a in result.answers])
    check.put("govsoc.watch.dns_ms", result.ms)
    if result.error:
        check.put("govsoc.watch.dns_error", result.error[:300])


def _put_tls(check: _Check, tls: TlsResult, now: datetime) -> None:
    proto, _, number = tls.version.partition("v")
    check.put("tls.established", True)
    check.put("tls.version_protocol", proto.lower() or "tls")
    check.put("tls.version", number)
    check.put("tls.cipher", tls.cipher)
    facts: dict[str, Any] = {"verified": tls.verified, "verify_code": tls.verify_code,
                             "verify_error": tls.verify_error, "hostname_match": tls.hostname_match,
                             "weak_cipher": tls.weak_cipher, "legacy_protocols": list(tls.legacy_protocols),
                             "legacy_probe": tls.legacy_probe}
    cert = tls.certificate
    if cert is not None:
        check.put("tls.server.not_before", to_iso(cert.not_before))
        check.put("tls.server.not_after", to_iso(cert.not_after))
        check.put("tls.server.issuer", cert.issuer)
        check.put("tls.server.subject", cert.subject)
        check.put("tls.server.hash.sha256", cert.sha256)
        check.put("tls.server.x509.alternative_names", list(cert.names))
        facts.update(days_to_expiry=round((cert.not_after - now).total_seconds() / 86400, 3),
                     self_signed=cert.self_signed, spki_sha256=cert.spki_sha256)
    check.put("govsoc.watch.tls", facts)


def _put_http(check: _Check, result: HttpResult) -> None:
    check.put("govsoc.watch.ttfb_ms", result.ttfb_ms)
    check.put("govsoc.watch.http_ms", result.ms)
    if result.status:
        check.put("http.response.status_code", result.status)
        check.put("http.response.body.bytes", len(result.body))
        check.put("http.response.mime_type", result.content_type.split(";")[0].strip())
    if result.error:
        check.fail("http", result.error)
        return
    if result.body:
        check.put("govsoc.watch.page", extract_page(result.body, result.content_type).to_doc())
