"""The matcher: lookups by family, expiry at the event's time, TLP per event tenant, deterministic alerts."""

from __future__ import annotations

from datetime import timedelta

from detections.intel import IndicatorType, IntelMatcher, Tlp, indicator_id_of
from pipeline.records import DetectionKind, Severity
from tests.detections.intel.intel_factories import TREE, indicator
from tests.factories import T0, make_event

I = IndicatorType  # noqa: E741


def test_domains_match_subdomains_but_not_lookalikes() -> None:
    matcher = IntelMatcher([indicator(I.DOMAIN, "evil.example")], TREE)
    hit = make_event("btc", 1, dns__question__name="A.B.Evil.Example.")
    miss = make_event("btc", 2, dns__question__name="notevil.example")
    assert len(matcher.process([hit])) == 1
    assert matcher.process([miss]) == []


def test_networks_match_hosts_inside_overlapping_ranges_of_both_families() -> None:
    wide, narrow = indicator(I.CIDR, "198.51.100.0/24"), indicator(I.CIDR, "198.51.100.128/25")
    six = indicator(I.CIDR, "2001:db8:bad::/48")
    matcher = IntelMatcher([wide, narrow, six], TREE)
    found = matcher.process([make_event("btc", 1, destination__ip="198.51.100.200"),
                             make_event("btc", 2, source__ip="198.51.100.5"),
                             make_event("btc", 3, source__ip="2001:db8:bad::1"),
                             make_event("btc", 4, source__ip="198.51.101.1"),
                             make_event("btc", 5, source__ip="not-an-ip")])
    assert sorted(indicator_id_of(a) or "" for a in found) == sorted([wide.id, narrow.id, wide.id, six.id])


def test_lists_and_every_field_family_are_read() -> None:
    made = [indicator(I.IPV4, "203.0.113.77"), indicator(I.EMAIL, "boss@evil.example"),
            indicator(I.JA3, "e7d705a3286e19ea42f587b344ee6865"), indicator(I.USER_AGENT, "EvilBot/1.0"),
            indicator(I.URL, "http://evil.example/x.sh"), indicator(I.MD5, "d41d8cd98f00b204e9800998ecf8427e")]
    event = make_event("hanoi", 1, related__ip=["10.0.0.1", "203.0.113.77"], email__to__address=["Boss@Evil.Example"],
                       tls__client__ja3="E7D705A3286E19EA42F587B344EE6865", user_agent__original="EvilBot/1.0",
                       url__full="http://evil.example/x.sh", process__hash__md5="d41d8cd98f00b204e9800998ecf8427e")
    assert {indicator_id_of(a) for a in IntelMatcher(made, TREE).process([event])} == {i.id for i in made}


def test_one_alert_per_indicator_and_event_with_evidence() -> None:
    ind = indicator(I.IPV4, "203.0.113.77", confidence=90, name="Brute-force source")
    event = make_event("danang", 1, source__ip="203.0.113.77", related__ip=["203.0.113.77"])
    [alert] = IntelMatcher([ind], TREE).process([event])
    assert alert.kind is DetectionKind.INTEL and alert.severity is Severity.HIGH
    assert alert.entity == {"source.ip": "203.0.113.77"}
    assert ind.id in alert.description and "test" in alert.description and "TLP:GREEN" in alert.description
    assert "intel.source:test" in alert.tags
    assert IntelMatcher([ind], TREE).process([event])[0].id == alert.id  # deterministic


def test_expired_and_not_yet_valid_indicators_do_not_match() -> None:
    ind = indicator(I.IPV4, "203.0.113.77", valid_from=T0, valid_until=T0 + timedelta(days=1))
    matcher = IntelMatcher([ind], TREE)
    assert matcher.process([make_event("btc", 1, at=T0 - timedelta(seconds=1), source__ip="203.0.113.77")]) == []
    assert len(matcher.process([make_event("btc", 2, at=T0, source__ip="203.0.113.77")])) == 1
    assert matcher.process([make_event("btc", 3, at=T0 + timedelta(days=1), source__ip="203.0.113.77")]) == []


def test_tlp_limits_which_tenants_events_match() -> None:
    amber = indicator(I.IPV4, "203.0.113.1", publisher="hanoi", tlp=Tlp.AMBER)
    red = indicator(I.IPV4, "203.0.113.2", publisher="national", tlp=Tlp.RED, recipients=("danang",))
    matcher = IntelMatcher([amber, red], TREE)

    def tenants_matching(value: str) -> set[str]:
        events = [make_event(t, n, source__ip=value) for n, t in enumerate(t.id for t in TREE)]
        return {a.tenant for a in matcher.process(events)}

    assert tenants_matching("203.0.113.1") == {"hanoi", "hanoi-bavi", "national"}
    assert tenants_matching("203.0.113.2") == {"national", "danang"}
    assert matcher.process([make_event("unknown-tenant", 1, source__ip="203.0.113.1")]) == []


def test_a_field_sent_as_one_flat_dotted_key_is_read_too() -> None:
    from pipeline.records import Event

    flat = Event.from_document({"@timestamp": "2026-11-23T07:00:00Z", "organization": {"id": "btc"},
                                "event": {"id": "flat-1"}, "source.ip": "203.0.113.77"})
    assert len(IntelMatcher([indicator(I.IPV4, "203.0.113.77")], TREE).process([flat])) == 1
