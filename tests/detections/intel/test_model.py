"""Value normalisation and TLP names: what the matcher compares is canonical."""

from __future__ import annotations

import pytest

from detections.intel import IndicatorType, IntelError, Tlp
from detections.intel.model import normalise

I = IndicatorType  # noqa: E741


@pytest.mark.parametrize(("kind", "raw", "expected"), [
    (I.IPV4, " 203.0.113.77 ", (I.IPV4, "203.0.113.77")),
    (I.IPV6, "2001:DB8:0:0::1", (I.IPV6, "2001:db8::1")),
    (I.IPV4, "198.51.100.0/24", (I.CIDR, "198.51.100.0/24")),
    (I.CIDR, "203.0.113.77/32", (I.IPV4, "203.0.113.77")),
    (I.DOMAIN, "Evil.Example.", (I.DOMAIN, "evil.example")),
    (I.SHA256, "EF537F25C895BFA782526529A9B63D97AA631564D5D789C2B765448C8635FB6C",
     (I.SHA256, "ef537f25c895bfa782526529a9b63d97aa631564d5d789c2b765448c8635fb6c")),
    (I.EMAIL, "Phisher@Evil.Example", (I.EMAIL, "phisher@evil.example")),
    (I.URL, " http://evil.example/a?b=1 ", (I.URL, "http://evil.example/a?b=1")),
])
def test_values_are_normalised(kind: IndicatorType, raw: str, expected: tuple[IndicatorType, str]) -> None:
    assert normalise(kind, raw) == expected


@pytest.mark.parametrize(("kind", "raw"), [
    (I.IPV4, "203.0.113.300"), (I.CIDR, "198.51.100.7/24"), (I.MD5, "abc"), (I.SHA1, "z" * 40),
    (I.DOMAIN, "not a domain"), (I.EMAIL, "nobody"), (I.URL, "   "),
])
def test_bad_values_name_the_type_and_value(kind: IndicatorType, raw: str) -> None:
    with pytest.raises(IntelError, match=kind.value):
        normalise(kind, raw)


def test_tlp_names_include_tlp_1_white() -> None:
    assert Tlp.from_text("TLP:AMBER+STRICT") is Tlp.AMBER_STRICT
    assert Tlp.from_text("tlp:white") is Tlp.CLEAR
    with pytest.raises(IntelError, match="unknown TLP"):
        Tlp.from_text("tlp:purple")
