"""Enrichment from the tenant tree: organization name, assets by host name and address."""

from __future__ import annotations

import pytest

from config.settings import AssetConfig, TenantConfig
from config.tenants import TenantTree
from pipeline.enrich import Enricher
from pipeline.errors import ParseError
from tests.factories import make_event

TREE = TenantTree.from_config([
    TenantConfig(id="national", name="Trung tâm giám sát quốc gia", kind="national"),
    TenantConfig(id="hanoi", name="Thành phố Hà Nội", parent="national", assets=(
        AssetConfig(id="portal", name="Cổng", hostnames=("portal.hanoi.example",), addresses=("198.51.100.10",),
                    security_level=4),
        AssetConfig(id="ws", name="Máy trạm", addresses=("10.20.0.0/16",), security_level=1),
    )),
])


def test_organization_name_is_added() -> None:
    enriched = Enricher(TREE).enrich(make_event("hanoi"))
    assert enriched.get("organization.name") == "Thành phố Hà Nội"


@pytest.mark.parametrize("fields, asset", [
    ({"host__hostname": "portal"}, "portal"),
    ({"host__name": "PORTAL.hanoi.example"}, "portal"),
    ({"source__ip": "10.20.3.4"}, "ws"),
    ({"host__ip": ["10.99.0.1", "198.51.100.10"]}, "portal"),
    ({"source__ip": "192.0.2.1"}, None),
])
def test_assets_are_found_by_name_then_address(fields: dict[str, object], asset: str | None) -> None:
    enriched = Enricher(TREE).enrich(make_event("hanoi", **fields))
    assert enriched.get("govsoc.asset.id") == asset


def test_unknown_tenant_is_refused() -> None:
    with pytest.raises(ParseError, match="unknown tenant 'nowhere'"):
        Enricher(TREE).enrich(make_event("nowhere"))
