"""dns: messages from scapy's encoder, compression, and what is not DNS."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.dns import DNS, DNSQR, DNSRR

from sensors.packets.dns import DnsError, parse_dns


def test_a_response_with_answers() -> None:
    raw = bytes(DNS(id=9, qr=1, rd=1, ra=1, qd=DNSQR(qname="www.gov.vn", qtype="A"),
                    an=[DNSRR(rrname="www.gov.vn", type="CNAME", ttl=30, rdata="web.gov.vn"),
                        DNSRR(rrname="web.gov.vn", type="A", ttl=60, rdata="203.0.113.9")]))
    message = parse_dns(raw)
    assert message.is_response and message.response_code == "NOERROR" and message.id == 9
    assert (message.question_name, message.question_type) == ("www.gov.vn", "A")
    assert [(a.type, a.data) for a in message.answers] == [("CNAME", "web.gov.vn"), ("A", "203.0.113.9")]
    assert message.header_flags == ("RD", "RA")


def test_nxdomain_and_aaaa() -> None:
    message = parse_dns(bytes(DNS(id=1, qr=1, rcode=3, qd=DNSQR(qname="nope.gov.vn", qtype="AAAA"))))
    assert message.response_code == "NXDOMAIN" and message.question_type == "AAAA" and message.answers == ()


def test_a_pointer_loop_is_an_error_not_a_hang() -> None:
    raw = bytes(DNS(id=1, qd=DNSQR(qname="a.b")))[:12] + b"\xc0\x0c\x00\x01\x00\x01"
    with pytest.raises(DnsError, match="loop"):
        parse_dns(raw)


def test_unprintable_label_bytes_are_escaped() -> None:
    raw = bytes(DNS(id=1, qd=DNSQR(qname=b"a\x01b.vn")))
    assert parse_dns(raw).question_name == "a\\001b.vn"


@given(st.binary(max_size=600))
def test_arbitrary_bytes_parse_or_raise_dns_error(data: bytes) -> None:
    try:
        parse_dns(data)
    except DnsError:
        pass
