"""Enrichment: what the tenant's configuration knows about an event's hosts and addresses.

In: an event whose `organization.id` a sensor set. Out: the same event with `organization.name`
and, when one of its addresses or host names belongs to a configured asset of the tenant,
`govsoc.asset.id`, `govsoc.asset.name` and `govsoc.asset.security_level` (information-system
security level 1-5, used for incident severity). An event of a tenant that is not configured raises
`ParseError` (it becomes a dead letter): events never land under a tenant nobody can see.
Deterministic: the same event and configuration always enrich the same way.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from config.settings import AssetConfig
from config.tenants import TenantTree
from pipeline import ecs
from pipeline.errors import ParseError
from pipeline.records import Event, get_path, set_path

ADDRESS_FIELDS = (ecs.HOST_IP, ecs.SOURCE_IP, ecs.DESTINATION_IP)
NAME_FIELDS = (ecs.HOST_NAME, ecs.HOST_HOSTNAME)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class _TenantAssets:
    by_name: dict[str, AssetConfig]
    networks: tuple[tuple[IPNetwork, AssetConfig], ...]


class Enricher:
    def __init__(self, tree: TenantTree) -> None:
        self._tree = tree
        self._assets: dict[str, _TenantAssets] = {}
        for tenant in tree:
            by_name: dict[str, AssetConfig] = {}
            networks: list[tuple[IPNetwork, AssetConfig]] = []
            for asset in tenant.assets:
                for hostname in asset.hostnames:
                    by_name[hostname.lower()] = asset
                    by_name[hostname.split(".", 1)[0].lower()] = asset
                networks.extend((ipaddress.ip_network(a, strict=False), asset) for a in asset.addresses)
            # most specific network first, so a /32 server wins over its /16 workstation range
            networks.sort(key=lambda pair: -pair[0].prefixlen)
            self._assets[tenant.id] = _TenantAssets(by_name, tuple(networks))

    def enrich(self, event: Event) -> Event:
        if event.tenant not in self._tree:
            raise ParseError(f"{ecs.ORGANIZATION_ID}: unknown tenant {event.tenant!r}")
        doc: dict[str, Any] = dict(event.doc)
        set_path(doc, ecs.ORGANIZATION_NAME, self._tree.get(event.tenant).name)
        asset = self.asset_for(event.tenant, doc)
        if asset is not None:
            set_path(doc, "govsoc.asset", {
                "id": asset.id, "name": asset.name, "security_level": asset.security_level,
            })
        return Event(id=event.id, timestamp=event.timestamp, tenant=event.tenant, doc=doc)

    def asset_for(self, tenant: str, doc: dict[str, Any]) -> AssetConfig | None:
        """The tenant's asset named by the event's host, else owning one of its addresses."""
        assets = self._assets[tenant]
        for name_field in NAME_FIELDS:
            name = get_path(doc, name_field)
            if isinstance(name, str) and name.lower() in assets.by_name:
                return assets.by_name[name.lower()]
        for address in _addresses(doc):
            for network, asset in assets.networks:
                if address.version == network.version and address in network:
                    return asset
        return None


def _addresses(doc: dict[str, Any]) -> Iterable[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    for address_field in ADDRESS_FIELDS:
        value = get_path(doc, address_field)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                try:
                    yield ipaddress.ip_address(item)
                except ValueError:
                    continue
