"""The service-watch detections, by rule id, and how each becomes an `Alert`.

Every alert is of kind `service_watch`, about the service as its entity (`url.full` for a URL
target, `destination.address` for host:port, `dns.question.name` for a domain), so alerts about
one service group into one incident per rule. Its id is `Alert.make_id(tenant, rule, entity,
key)` where `key` is the id of the event that opened the episode: replaying the same events
raises the same alerts. `security_level` comes from the target's configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from config.watch import WatchTarget
from pipeline.records import Alert, DetectionKind, Severity


@dataclass(frozen=True, slots=True)
class WatchRule:
    id: str
    title: str
    severity: Severity
    tags: tuple[str, ...]


def _rule(rule_id: str, title: str, severity: Severity, *tags: str) -> WatchRule:
    return WatchRule(rule_id, title, severity, ("service_watch", *tags))


OUTAGE = _rule("govsoc-watch-outage", "Service outage (gián đoạn dịch vụ)", Severity.HIGH, "service_watch.availability")
RECOVERED = _rule("govsoc-watch-outage", "Service recovered", Severity.INFORMATIONAL, "service_watch.availability",
                  "service_watch.recovered")
CERT_EXPIRING = _rule("govsoc-watch-cert-expiring", "Certificate expiring soon (chứng thư số sắp hết hạn)",
                      Severity.MEDIUM, "service_watch.tls")
CERT_EXPIRED = _rule("govsoc-watch-cert-expired", "Certificate expired (chứng thư số hết hạn)", Severity.HIGH,
                     "service_watch.tls")
CERT_UNTRUSTED = _rule("govsoc-watch-cert-untrusted", "Certificate not trusted (self-signed or broken chain)",
                       Severity.HIGH, "service_watch.tls")
CERT_NAME = _rule("govsoc-watch-cert-name-mismatch", "Certificate for another name", Severity.HIGH,
                  "service_watch.tls")
CERT_UNEXPECTED = _rule("govsoc-watch-cert-unexpected", "Certificate issuer or key not the expected one",
                        Severity.HIGH, "service_watch.tls", "attack.credential-access", "attack.t1557")
TLS_WEAK = _rule("govsoc-watch-tls-weak", "Legacy TLS protocol or weak cipher offered", Severity.LOW,
                 "service_watch.tls")
DNS_CHANGED = _rule("govsoc-watch-dns-changed", "DNS answers changed from the expected set", Severity.HIGH,
                    "service_watch.dns", "attack.resource-development", "attack.t1584.002")
DNS_NXDOMAIN = _rule("govsoc-watch-dns-nxdomain", "Domain does not resolve (NXDOMAIN)", Severity.HIGH,
                     "service_watch.dns")
DNS_MISSING = _rule("govsoc-watch-dns-missing", "DNS record missing", Severity.MEDIUM, "service_watch.dns")
DEFACEMENT = _rule("govsoc-watch-defacement", "Website defacement (tấn công thay đổi giao diện)", Severity.HIGH,
                   "service_watch.content", "attack.impact", "attack.t1491.002")

RULES: dict[str, WatchRule] = {r.id: r for r in (
    OUTAGE, CERT_EXPIRING, CERT_EXPIRED, CERT_UNTRUSTED, CERT_NAME, CERT_UNEXPECTED, TLS_WEAK, DNS_CHANGED,
    DNS_NXDOMAIN, DNS_MISSING, DEFACEMENT)}


def entity_of(target: WatchTarget) -> dict[str, str]:
    if target.url:
        return {"url.full": target.url}
    if target.address:
        return {"destination.address": target.address}
    return {"dns.question.name": target.hostname}


@dataclass(frozen=True, slots=True)
class Finding:
    """One alert to raise: which rule, about which target, opened by which event, saying what."""

    rule: WatchRule
    target: WatchTarget
    key_event_id: str
    event_ids: tuple[str, ...]
    description: str


def make_alert(finding: Finding, timestamp: datetime) -> Alert:
    entity = entity_of(finding.target)
    rule, tenant = finding.rule, finding.target.tenant
    return Alert(
        id=Alert.make_id(tenant, rule.id, entity, finding.key_event_id), tenant=tenant, timestamp=timestamp,
        kind=DetectionKind.SERVICE_WATCH, rule_id=rule.id, rule_title=rule.title, severity=rule.severity,
        event_ids=finding.event_ids, entity=entity, tags=rule.tags, description=finding.description,
        asset_id=finding.target.asset_id, security_level=finding.target.security_level,
    )
