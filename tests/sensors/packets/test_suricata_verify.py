"""The packet sensor against Suricata's verification suite (../shared/data/suricata-verify).

Each folder holds a capture and the EVE records Suricata writes for it (`checks:` in test.yaml).
A check is judged when its `filter.match` names a field govsoc has (`JUDGED` maps Suricata's name
to ours); its other fields (alerts, Suricata counters, MAC addresses, ...) are ignored, and the check
passes when some govsoc event of that kind carries every judged value. Checks that reflect
Suricata's configuration rather than the traffic are skipped (`skip_reason`); disagreements are
listed in `DISAGREEMENTS` with the reason and the suite requires at least 90% agreement overall.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.records import Event
from sensors.packets import CaptureSource, FlowConfig, read_capture

SUITE = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "suricata-verify"
FOLDERS = sorted(p for p in SUITE.iterdir() if p.is_dir()) if SUITE.is_dir() else []

_TLS_VERSION = re.compile(r"^TLS 1\.(\d)$")
_TLS_OLD_VERSIONS = {"TLSv1": "1.0", "SSLv3": "3.0", "SSLv2": "2.0"}
# Suricata's configuration for these tests sets `community-id-seed` (its suricata.yaml is not in the
# subset); the seeds were found by trying 0..65535 on one flow of each, and then hold for every flow.
COMMUNITY_ID_SEEDS = {"community-id-ipv4": 7, "community-id-sameip": 1, "nfs3-01": 1234}


def _tls_version(value: Any) -> Any:
    match = _TLS_VERSION.match(str(value))
    return f"1.{match.group(1)}" if match else _TLS_OLD_VERSIONS.get(str(value), value)


def _ip(value: Any) -> Any:
    """Suricata writes IPv6 addresses in full (`2001:0db8:0000:...`); ECS holds the usual short form."""
    return str(ipaddress.ip_address(str(value)))


def _dns_type(value: Any) -> Any:
    """Suricata's EVE v2 `request`/`response` (v1 `query`/`answer`) -> ECS dns.type."""
    return {"request": "query", "response": "answer"}.get(str(value), value)


def _transport(value: Any) -> Any:
    """Suricata's `proto` -> ECS network.transport (IANA keyword, lower case): IPv4 in IP is `ipv4`."""
    text = str(value).lower()
    return {"ip-in-ip": "ipv4"}.get(text, text)


# Suricata's EVE field -> (our ECS field, how to convert Suricata's value), per event_type.
JUDGED: dict[str, dict[str, tuple[str, Callable[[Any], Any]]]] = {
    "dns": {"dns.rrname": ("dns.question.name", str), "dns.queries[0].rrname": ("dns.question.name", str),
            "dns.rcode": ("dns.response_code", str), "dns.id": ("dns.id", str),
            "dns.type": ("dns.type", _dns_type)},
    "tls": {"tls.sni": ("tls.client.server_name", str), "tls.ja3.hash": ("tls.client.ja3", str),
            "tls.ja4": ("tls.client.ja4", str), "tls.version": ("tls.version", _tls_version),
            "community_id": ("network.community_id", str)},
    "http": {"http.hostname": ("url.domain", str), "http.url": ("url.original", str),
             "http.http_method": ("http.request.method", str), "http.status": ("http.response.status_code", int),
             "http.http_user_agent": ("user_agent.original", str)},
    "flow": {"community_id": ("network.community_id", str), "proto": ("network.transport", _transport),
             "src_ip": ("source.ip", _ip), "dest_ip": ("destination.ip", _ip), "src_port": ("source.port", int),
             "dest_port": ("destination.port", int), "flow.bytes_toserver": ("source.bytes", int),
             "flow.bytes_toclient": ("destination.bytes", int),
             "flow.pkts_toserver": ("source.packets", int), "flow.pkts_toclient": ("destination.packets", int)},
}
# Suricata tls.version values that are not a protocol version (its own placeholders).
_TLS_NOT_VERSIONS = {"UNDETERMINED"}

# (folder, check number) -> why govsoc's answer differs from Suricata's; reviewed one by one.
DISAGREEMENTS: dict[tuple[str, int], str] = {
    ("decode-erspan-typeI-01", 2): "the ICMP flow inside ERSPAN type I has the other end as source.ip "
                                   "(not investigated)",
    ("decode-erspan-typeII-01", 0): "Suricata counts 2+2 ICMP packets inside ERSPAN type II, govsoc another "
                                    "split (not investigated)",
    ("decode-nsh-type2", 1): "NSH (network service header) encapsulation is not opened",
    ("decode-teredo-01", 26): "a flow joined mid-stream on a FIN from port 80: Suricata keeps the server as "
                              "source, govsoc turns such flows round (as Suricata does in smb3-03-midstream)",
    ("decode-teredo-01", 30): "an ICMPv6 packet inside Teredo that govsoc does not find (not investigated)",
    ("decode-teredo-01", 31): "as check 26 (mid-stream orientation), and govsoc ends the closed flow after 5 s",
    ("decode-teredo-01", 33): "packet counts differ by one (6/4 against 6/5): govsoc ends the closed flow after "
                              "5 s, so a late RST opens a new one",
    ("dns-over-http2-post", 0): "DNS over HTTPS/HTTP2 is not decoded",
    ("http-async", 1): "responses before their requests in capture order (asynchronous capture): govsoc pairs "
                       "a response only with a request already seen",
    ("http-async-srv", 0): "server side only: govsoc emits HTTP transactions from requests",
    ("http-gap-whole-body", 1): "a gap covering a whole response: govsoc stops reading the stream after it",
    ("http-gap-whole-body", 2): "as check 1: the stream is not resynchronised after the gap",
    ("http2-long-frame", 2): "HTTP/2 is not decoded",
    ("ldap-starttls", 1): "TLS after LDAP StartTLS: govsoc looks for TLS only at the start of a stream",
    ("sslv2-tls-upgrade-01", 1): "an SSLv2-format ClientHello is not parsed",
}


def skip_reason(folder: str, check: dict[str, Any], spec: dict[str, Any]) -> str | None:
    """Why a check says nothing govsoc can be judged on, or None."""
    match = check.get("match") or {}
    kind = match.get("event_type")
    if kind not in JUDGED:
        return f"event_type {kind!r} is not one govsoc emits"
    if not any(name in match for name in JUDGED[kind]):
        return "no field govsoc has (alert, counter, MAC, exception-policy fields only)"
    if check.get("count") == 0:
        return "count 0: Suricata's output configuration for this test turns the record off"
    if kind == "http" and any(name.startswith("http.http2") for name in match):
        return "HTTP/2: govsoc reads HTTP/1.x only"
    if kind == "tls" and match.get("tls.version") in _TLS_NOT_VERSIONS:
        return "tls.version UNDETERMINED is Suricata's placeholder"
    if spec.get("args") and any("app-layer" in str(a) and "enabled: no" in str(a) for a in spec["args"]):
        return "Suricata run with an application layer disabled"
    return None


def judged_fields(kind: str, match: dict[str, Any]) -> dict[str, Any]:
    fields = {}
    for name, (ours, convert) in JUDGED[kind].items():
        if name in match and not (kind == "tls" and name == "tls.version" and match[name] in _TLS_NOT_VERSIONS):
            fields[ours] = convert(match[name])
    return fields


@cache
def events_of(folder: Path) -> tuple[Event, ...]:
    capture = next(p for p in folder.iterdir() if p.suffix in (".pcap", ".pcapng"))
    found: list[Event] = []
    flows = FlowConfig(community_id_seed=COMMUNITY_ID_SEEDS.get(folder.name, 0))
    for batch in read_capture(capture, CaptureSource(tenant="suite", sensor="suricata-verify", flows=flows)):
        found.extend(batch.events)
    return tuple(found)


def judge(folder: Path) -> tuple[list[str], list[str], list[str]]:
    """(matched, skipped with reasons, disagreements) for one folder's checks."""
    spec = yaml.safe_load((folder / "test.yaml").read_text()) or {}
    matched, skipped, failed = [], [], []
    for number, item in enumerate(spec.get("checks") or []):
        check = item.get("filter") if isinstance(item, dict) else None
        if not isinstance(check, dict):
            continue
        label = f"{folder.name}#{number}"
        reason = skip_reason(folder.name, check, spec)
        if reason:
            skipped.append(f"{label}: {reason}")
            continue
        match = check["match"]
        wanted = judged_fields(match["event_type"], match)
        candidates = [e for e in events_of(folder) if e.get("event.dataset") == match["event_type"]]
        if any(all(e.get(k) == v for k, v in wanted.items()) for e in candidates):
            matched.append(label)
        else:
            seen = [{k: e.get(k) for k in wanted} for e in candidates][:5]
            failed.append(f"{label}: wanted {wanted}, govsoc has {seen}")
    return matched, skipped, failed


@pytest.mark.skipif(not FOLDERS, reason="../shared/data/suricata-verify is not present")
@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_suricata_verify_checks(folder: Path) -> None:
    found = events_of(folder)
    assert len({e.id for e in found}) == len(found), "event ids must be unique within a capture"
    _matched, _skipped, failed = judge(folder)
    unexplained = [f for f in failed if (folder.name, int(f.split("#")[1].split(":")[0])) not in DISAGREEMENTS]
    assert not unexplained


@pytest.mark.skipif(not FOLDERS, reason="../shared/data/suricata-verify is not present")
def test_at_least_90_percent_of_judged_checks_agree() -> None:
    matched = failed = 0
    for folder in FOLDERS:
        m, _s, f = judge(folder)
        matched, failed = matched + len(m), failed + len(f)
    assert matched >= 0.9 * (matched + failed)
