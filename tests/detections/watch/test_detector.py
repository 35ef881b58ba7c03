"""The acceptance scenarios: real checks against loopback servers, then the detector; each raises exactly
the expected alerts and none for the benign change."""

from __future__ import annotations

import asyncio
import ssl
import warnings
from collections.abc import Sequence

import pytest

from api.demo.watch import PortalServer
from config.watch import ServiceWatchSettings, WatchExpect, WatchTarget
from detections.watch import WatchDetector
from detections.watch.corpus import PortalSpec, defaced_page, portal_page
from pipeline.records import Alert, DetectionKind, Event, Severity
from sensors.watch import run_once
from tests.sensors.watch.loopback import CertLab, Zone, dns_server, self_signed_context, serving

HANOI = PortalSpec(agency="Cổng thông tin điện tử Thành phố Hà Nội", city="Hà Nội", host="portal.hanoi.example",
                   seed=101)
DANANG = PortalSpec(agency="Cổng thông tin điện tử Thành phố Đà Nẵng", city="Đà Nẵng", host="portal.danang.example",
                    seed=202)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> CertLab:
    return CertLab.create(tmp_path_factory.mktemp("ca"))


def checks(settings: ServiceWatchSettings, vantage: str | None = None) -> list[Event]:
    return asyncio.run(run_once(settings, vantage))


def rules_of(alerts: Sequence[Alert]) -> list[tuple[str, str]]:
    return sorted((a.rule_id, a.entity.get("url.full") or a.entity.get("dns.question.name", "")) for a in alerts)


def test_certificates_valid_expiring_expired_self_signed_and_wrong_name(lab: CertLab) -> None:
    servers = {"ok.example": lab.serve("ok.example"), "soon.example": lab.serve("soon.example", days=3),
               "old.example": lab.serve("old.example", days=-2),
               "own.example": PortalServer(tls=self_signed_context("own.example"), pages={"own.example": b"x"}).start(),
               "wrong.example": lab.serve("wrong.example", names=("other.example",))}
    settings = ServiceWatchSettings(targets=tuple(
        WatchTarget(id=name.split(".")[0], tenant="hanoi", url=f"https://{name}/", connect_to=s.address,
                    ca_file=lab.ca_file, security_level=4) for name, s in servers.items()))
    detector = WatchDetector(settings)
    with serving(*servers.values()):
        first = detector.process(checks(settings))
        again = detector.process(checks(settings))
    assert rules_of(first) == [("govsoc-watch-cert-expired", "https://old.example/"),
                               ("govsoc-watch-cert-expiring", "https://soon.example/"),
                               ("govsoc-watch-cert-name-mismatch", "https://wrong.example/"),
                               ("govsoc-watch-cert-untrusted", "https://own.example/")]
    assert again == []  # one alert per episode, not one per check
    assert all(a.kind is DetectionKind.SERVICE_WATCH and a.security_level == 4 for a in first)
    assert "self-signed" in next(a.description for a in first if a.rule_id == "govsoc-watch-cert-untrusted")


def test_dns_answers_that_change_then_vanish_then_return() -> None:
    zone = Zone({"portal.danang.example": ("203.0.113.10",)})
    with dns_server(zone) as resolver:
        settings = ServiceWatchSettings(resolver=resolver, targets=(WatchTarget(
            id="danang-dns", tenant="danang", domain="portal.danang.example",
            expect=WatchExpect(dns_answers=("203.0.113.10",))),))
        detector = WatchDetector(settings)
        rounds = []
        for answers in (("203.0.113.10",), ("198.51.100.66",), ("198.51.100.66",), None, (), ("203.0.113.10",)):
            zone.records = {"portal.danang.example": answers} if answers is not None else {}
            rounds.append(rules_of(detector.process(checks(settings))))
    assert rounds == [[], [("govsoc-watch-dns-changed", "portal.danang.example")], [],
                      [("govsoc-watch-dns-nxdomain", "portal.danang.example")],
                      [("govsoc-watch-dns-missing", "portal.danang.example")], []]


def test_a_site_that_goes_down_and_comes_back_raises_one_outage_and_one_recovery() -> None:
    server = PortalServer(pages={"dvc.hanoi.example": b"<p>ok</p>"}).start()
    settings = ServiceWatchSettings.model_validate({
        "outage": {"consecutive_failures": 3, "vantage_points": 1},
        "targets": [{"id": "dvc", "tenant": "hanoi", "url": f"http://dvc.hanoi.example:{server.port}/",
                     "connect_to": "127.0.0.1", "timeout_s": 2}]})
    detector = WatchDetector(settings)
    per_round = [detector.process(checks(settings))]
    server.stop()
    per_round += [detector.process(checks(settings)) for _ in range(4)]
    server.start()  # the same port again
    per_round += [detector.process(checks(settings)) for _ in range(2)]
    server.stop()
    counts = [[(a.rule_id, a.severity) for a in alerts] for alerts in per_round]
    assert counts == [[], [], [], [("govsoc-watch-outage", Severity.HIGH)], [],
                      [("govsoc-watch-outage", Severity.INFORMATIONAL)], []]
    outage, recovery = per_round[3][0], per_round[5][0]
    assert outage.entity == recovery.entity and "service_watch.recovered" in recovery.tags
    assert len(outage.event_ids) == 3  # the three failed checks


def test_a_flaky_link_at_one_vantage_point_is_not_an_outage_when_two_are_required() -> None:
    server = PortalServer(pages={"dvc.hanoi.example": b"<p>ok</p>"}).start()
    port = server.port
    server.stop()
    settings = ServiceWatchSettings.model_validate({
        "outage": {"consecutive_failures": 2, "vantage_points": 2},
        "targets": [{"id": "dvc", "tenant": "hanoi", "url": f"http://dvc.hanoi.example:{port}/",
                     "connect_to": "127.0.0.1"}]})
    detector = WatchDetector(settings)
    only_one = [detector.process(checks(settings, "hanoi-s1")) for _ in range(3)]
    assert only_one == [[], [], []]
    both = [detector.process(checks(settings, "national-s1")) for _ in range(2)]
    assert [len(a) for a in both] == [0, 1] and both[1][0].rule_id == "govsoc-watch-outage"
    assert "hanoi-s1" in both[1][0].description and "national-s1" in both[1][0].description


def test_defacement_raised_for_danang_not_for_hanoi_daily_news(lab: CertLab) -> None:
    server = PortalServer(tls=lab.serve("x").tls, pages={
        HANOI.host: portal_page(HANOI, 0).encode(), DANANG.host: portal_page(DANANG, 0).encode()}).start()
    settings = ServiceWatchSettings(targets=tuple(
        WatchTarget(id=f"{tenant}-portal", tenant=tenant, url=f"https://{spec.host}/", connect_to=server.address,
                    ca_file=lab.ca_file) for tenant, spec in (("hanoi", HANOI), ("danang", DANANG))))
    detector = WatchDetector(settings)
    with serving(server):
        learned = detector.process(checks(settings))
        server.pages = {HANOI.host: portal_page(HANOI, 1).encode(),
                        DANANG.host: defaced_page(DANANG, 1, "replaced").encode()}
        changed = detector.process(checks(settings))
        still = detector.process(checks(settings))
        server.pages[DANANG.host] = portal_page(DANANG, 1).encode()  # restored
        restored = detector.process(checks(settings))
    # the certificate names "x", so each portal also raises one name-mismatch alert on its first check
    assert rules_of(learned) == [("govsoc-watch-cert-name-mismatch", "https://portal.danang.example/"),
                                 ("govsoc-watch-cert-name-mismatch", "https://portal.hanoi.example/")]
    assert rules_of(changed) == [("govsoc-watch-defacement", "https://portal.danang.example/")]
    assert still == [] and restored == []
    alert = changed[0]
    assert alert.tenant == "danang" and len(alert.event_ids) == 2  # before and after snapshots
    assert "Hacked by" in alert.description and "-Cổng thông tin điện tử Thành phố Đà Nẵng - Trang chủ" in \
        alert.description
    assert detector.baseline("hanoi", "hanoi-portal") is not None


def test_alert_ids_are_deterministic_on_replay(lab: CertLab) -> None:
    with serving(lab.serve("soon.example", days=3)) as (server,):
        settings = ServiceWatchSettings(targets=(WatchTarget(id="soon", tenant="hanoi", url="https://soon.example/",
                                                             connect_to=server.address, ca_file=lab.ca_file),))
        events = checks(settings)
    assert [a.id for a in WatchDetector(settings).process(events)] == \
        [a.id for a in WatchDetector(settings).process(events)]


def test_legacy_protocols_and_an_unpinned_key(lab: CertLab) -> None:
    legacy = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    lab.ca.issue_cert("old.example").configure_cert(legacy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        legacy.minimum_version = ssl.TLSVersion.TLSv1
    legacy.set_ciphers("ALL:@SECLEVEL=0")
    old = PortalServer(tls=legacy, pages={"old.example": b"x"}).start()
    pinned = lab.serve("pinned.example")
    with serving(old, pinned):
        settings = ServiceWatchSettings(targets=(
            WatchTarget(id="old", tenant="hanoi", url="https://old.example/", connect_to=old.address,
                        ca_file=lab.ca_file),
            WatchTarget(id="pinned", tenant="hanoi", url="https://pinned.example/", connect_to=pinned.address,
                        ca_file=lab.ca_file,
                        expect=WatchExpect(spki_sha256=("ab" * 32,), cert_issuer="govsoc test CA"))))
        alerts = WatchDetector(settings).process(checks(settings))
    assert [(a.rule_id, a.severity) for a in sorted(alerts, key=lambda a: a.rule_id)] == [
        ("govsoc-watch-cert-unexpected", Severity.HIGH), ("govsoc-watch-tls-weak", Severity.LOW)]
    assert "TLSv1" in next(a.description for a in alerts if a.rule_id == "govsoc-watch-tls-weak")
