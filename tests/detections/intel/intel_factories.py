"""A tenant tree like the demo's, and events that carry an indicator's value where the matcher looks."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any

from config.settings import TenantConfig, TenantKind
from config.tenants import TenantTree
from detections.intel import ImportOptions, Indicator, IndicatorType, Tlp
from detections.intel.model import make_indicator
from pipeline.records import Event
from tests.factories import make_event

TREE = TenantTree.from_config([
    TenantConfig(id="national", name="N", kind=TenantKind.NATIONAL),
    TenantConfig(id="btc", name="BTC", kind=TenantKind.MINISTRY, parent="national"),
    TenantConfig(id="byt", name="BYT", kind=TenantKind.MINISTRY, parent="national"),
    TenantConfig(id="hanoi", name="HN", kind=TenantKind.PROVINCE, parent="national"),
    TenantConfig(id="hanoi-bavi", name="BV", kind=TenantKind.COMMUNE, parent="hanoi"),
    TenantConfig(id="danang", name="DN", kind=TenantKind.PROVINCE, parent="national"),
    TenantConfig(id="danang-haichau", name="HC", kind=TenantKind.COMMUNE, parent="danang"),
])
TENANTS = [t.id for t in TREE]

FIELD_FOR = {
    IndicatorType.IPV4: "source.ip", IndicatorType.IPV6: "destination.ip", IndicatorType.URL: "url.original",
    IndicatorType.MD5: "file.hash.md5", IndicatorType.SHA1: "file.hash.sha1", IndicatorType.SHA256: "file.hash.sha256",
    IndicatorType.EMAIL: "email.from.address", IndicatorType.JA3: "tls.client.ja3", IndicatorType.JA4: "tls.client.ja4",
    IndicatorType.USER_AGENT: "user_agent.original",
}


def carried(indicator: Indicator) -> tuple[str, str]:
    """(ECS field, value) of an event that carries the indicator: a subdomain, a host inside a network."""
    if indicator.type is IndicatorType.DOMAIN:
        return "dns.question.name", f"www.{indicator.value}"
    if indicator.type is IndicatorType.CIDR:
        net = ipaddress.ip_network(indicator.value)
        return "source.ip", str(net.network_address + 1)
    return FIELD_FOR[indicator.type], indicator.value


def event_carrying(indicator: Indicator, tenant: str, at: datetime, n: int = 0) -> Event:
    field, value = carried(indicator)
    fields: dict[str, Any] = {field.replace(".", "__"): value}
    return make_event(tenant, n, at=at, message=f"carries {indicator.id}", **fields)


def indicator(kind: IndicatorType, value: str, *, publisher: str = "national", tlp: Tlp = Tlp.GREEN,
              **fields: Any) -> Indicator:
    return make_indicator(ImportOptions(publisher=publisher, source="test", default_tlp=tlp), kind, value, **fields)
