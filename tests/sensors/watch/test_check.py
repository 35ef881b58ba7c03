"""One check against real loopback servers: the ECS fields each phase writes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from api.demo.watch import PortalServer
from config.watch import ServiceWatchSettings, WatchTarget
from sensors.watch import run_once
from tests.sensors.watch.loopback import CertLab, Zone, dns_server, self_signed_context, serving


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> CertLab:
    return CertLab.create(tmp_path_factory.mktemp("ca"))


def check(*targets: WatchTarget, resolver: str | None = None) -> list[dict[str, object]]:
    settings = ServiceWatchSettings(targets=targets, resolver=resolver)
    return [dict(e.doc) for e in asyncio.run(run_once(settings))]


def url_target(name: str, server: PortalServer, ca_file: Path | None) -> WatchTarget:
    return WatchTarget(id=name, tenant="hanoi", url=f"https://{name}/", connect_to=server.address, ca_file=ca_file,
                       timeout_s=3)


def test_valid_https_service(lab: CertLab) -> None:
    page = "<html><head><title>Cổng Hà Nội</title></head><body><p>Xin chào</p></body></html>".encode()
    with serving(lab.serve("portal.hanoi.example", page=page)) as (server,):
        (doc,) = check(url_target("portal.hanoi.example", server, lab.ca_file))
    assert doc["event"]["dataset"] == "service_watch" and doc["event"]["outcome"] == "success"  # type: ignore[index]
    assert doc["organization"] == {"id": "hanoi"}
    assert doc["observer"] == {"name": "central", "type": "service_watch"}
    assert doc["url"]["domain"] == "portal.hanoi.example"  # type: ignore[index]
    assert doc["http"]["response"]["status_code"] == 200  # type: ignore[index]
    assert doc["tls"]["established"] is True and doc["tls"]["version"] in ("1.2", "1.3")  # type: ignore[index]
    watch = doc["govsoc"]["watch"]  # type: ignore[index]
    assert watch["tls"]["verified"] and watch["tls"]["hostname_match"] and not watch["tls"]["self_signed"]
    assert 364 < watch["tls"]["days_to_expiry"] <= 365
    assert watch["page"]["title"] == "Cổng Hà Nội" and watch["ttfb_ms"] > 0
    assert isinstance(doc["event"]["duration"], int)  # type: ignore[index]


def test_certificate_facts_of_bad_certificates(lab: CertLab) -> None:
    soon = lab.serve("soon.example", days=3)
    wrong = lab.serve("wrong.example", names=("other.example",))
    own = PortalServer(tls=self_signed_context("own.example"), pages={"own.example": b"x"}).start()
    with serving(soon, wrong, own):
        docs = check(url_target("soon.example", soon, lab.ca_file), url_target("wrong.example", wrong, lab.ca_file),
                     url_target("own.example", own, lab.ca_file))
    tls = {d["govsoc"]["watch"]["target"]: d["govsoc"]["watch"]["tls"] for d in docs}  # type: ignore[index]
    assert tls["soon.example"]["verified"] and 2.9 < tls["soon.example"]["days_to_expiry"] <= 3
    assert not tls["wrong.example"]["hostname_match"] and tls["wrong.example"]["verify_code"] == 62
    assert tls["own.example"]["self_signed"] and not tls["own.example"]["verified"]
    assert all(t["legacy_protocols"] == [] for t in tls.values())  # Python's servers refuse TLS 1.0/1.1


def test_dns_answers_and_nxdomain_from_the_configured_resolver() -> None:
    zone = Zone({"portal.danang.example": ("203.0.113.10", "203.0.113.11")})
    with dns_server(zone) as resolver:
        found, gone = check(WatchTarget(id="dn", tenant="danang", domain="portal.danang.example"),
                            WatchTarget(id="gone", tenant="danang", domain="gone.danang.example"), resolver=resolver)
    assert found["dns"]["response_code"] == "NOERROR"  # type: ignore[index]
    assert sorted(found["dns"]["resolved_ip"]) == ["203.0.113.10", "203.0.113.11"]  # type: ignore[index]
    assert gone["dns"]["response_code"] == "NXDOMAIN" and gone["dns"]["resolved_ip"] == []  # type: ignore[index]


def test_a_closed_port_fails_at_tcp(lab: CertLab) -> None:
    server = lab.serve("down.example")
    server.stop()  # the port is now closed
    (doc,) = check(url_target("down.example", server, lab.ca_file))
    assert doc["event"]["outcome"] == "failure" and doc["error"]["type"] == "tcp"  # type: ignore[index]
    assert "http" not in doc


def test_plain_http_and_host_port_targets() -> None:
    with serving(PortalServer(pages={"intranet.hanoi.example": b"<title>t</title>"}).start()) as (server,):
        web, port = check(
            WatchTarget(id="web", tenant="hanoi", url=f"http://intranet.hanoi.example:{server.port}/",
                        connect_to="127.0.0.1"),
            WatchTarget(id="tcp", tenant="hanoi", address=f"mail.hanoi.example:{server.port}", connect_to="127.0.0.1"))
    assert web["http"]["response"]["status_code"] == 200 and "tls" not in web  # type: ignore[index]
    assert port["event"]["outcome"] == "success" and "http" not in port  # type: ignore[index]
