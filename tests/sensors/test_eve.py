"""Suricata EVE JSON: Elastic's suricata/eve mapping, on records rebuilt from Suricata's own checks.

Real data: ../shared/data/suricata-verify (OISF/suricata-verify, MIT-style licence, see that
repository's LICENSE.txt). Each test.yaml's `filter.match` lists fields Suricata writes to EVE for
a capture; the records rebuilt from them (dotted keys nested, a timestamp added) carry real
values (addresses, signatures, rrnames, SNIs, certificate names, flow counters). The alert record
below is the alert example of Suricata's "Eve JSON Format" documentation (GPLv2), shortened.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from pipeline.errors import ParseError
from pipeline.records import MISSING, lookup, set_path
from sensors.parsers import LineContext, parse_eve_line

VERIFY = Path(__file__).resolve().parents[3] / "shared" / "data" / "suricata-verify"
CTX = LineContext(tz=UTC, reference=datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
STAMP = "2026-11-23T10:00:00.000123+0700"
DOCS_ALERT = {"timestamp": "2009-11-24T21:27:09.534255+0100", "event_type": "alert", "src_ip": "192.168.2.7",
              "src_port": 1041, "dest_ip": "203.0.113.50", "dest_port": 80, "proto": "TCP",
              "alert": {"action": "allowed", "gid": 1, "signature_id": 2001999, "rev": 9,
                        "signature": "ET MALWARE BTGrab.com Spyware Downloading Ads",
                        "category": "A Network Trojan was detected", "severity": 1}}


def line(record: dict[str, Any]) -> str:
    return orjson.dumps(record).decode()


def test_docs_alert() -> None:
    doc = parse_eve_line(line(DOCS_ALERT), CTX)
    assert doc["@timestamp"] == datetime(2009, 11, 24, 20, 27, 9, 534255, tzinfo=UTC)
    assert doc["event"] == {"kind": "alert", "module": "suricata", "dataset": "suricata.eve", "severity": 1,
                            "category": ["network", "intrusion_detection"], "type": ["allowed"]}
    assert doc["rule"] == {"id": "2001999", "name": "ET MALWARE BTGrab.com Spyware Downloading Ads",
                           "category": "A Network Trojan was detected"}
    assert doc["message"] == "ET MALWARE BTGrab.com Spyware Downloading Ads"
    assert doc["source"] == {"address": "192.168.2.7", "ip": "192.168.2.7", "port": 1041}
    assert doc["destination"] == {"address": "203.0.113.50", "ip": "203.0.113.50", "port": 80}
    assert doc["network"] == {"transport": "tcp"}
    assert doc["suricata"]["eve"]["alert"]["rev"] == 9 and "src_ip" not in doc["suricata"]["eve"]


def test_blocked_alert_is_denied() -> None:
    record = {**DOCS_ALERT, "alert": {**DOCS_ALERT["alert"], "action": "blocked"}}  # type: ignore[dict-item]
    assert parse_eve_line(line(record), CTX)["event"]["type"] == ["denied"]


def test_flow_dns_http_tls_fileinfo() -> None:
    base = {"timestamp": STAMP, "src_ip": "10.0.0.2", "src_port": 5353, "dest_ip": "2001:db8::1", "dest_port": 53,
            "proto": "UDP", "community_id": "1:abc=", "app_proto": "dns"}
    flow = parse_eve_line(line({**base, "event_type": "flow", "flow": {
        "pkts_toserver": 2, "pkts_toclient": 3, "bytes_toserver": 100, "bytes_toclient": 300,
        "start": "2026-11-23T10:00:00.000000+0700", "end": "2026-11-23T10:00:01.000000+0700", "state": "closed"}}), CTX)
    assert flow["network"] == {"transport": "udp", "protocol": "dns", "community_id": "1:abc=", "packets": 5,
                               "bytes": 400}
    assert (flow["source"]["packets"], flow["destination"]["bytes"]) == (2, 300)
    assert flow["event"]["end"] == datetime(2026, 11, 23, 3, 0, 1, tzinfo=UTC)
    assert flow["event"]["type"] == ["connection", "end"] and flow["event"]["kind"] == "event"
    dns = parse_eve_line(line({**base, "event_type": "dns", "dns": {
        "version": 2, "type": "answer", "id": 4660, "rrname": "example.com", "rrtype": "A", "rcode": "NOERROR",
        "answers": [{"rrname": "example.com", "rrtype": "A", "ttl": 60, "rdata": "93.184.216.34"}]}}), CTX)
    assert dns["dns"] == {"type": "answer", "question": {"name": "example.com", "type": "A"},
                          "response_code": "NOERROR", "id": "4660",
                          "answers": [{"name": "example.com", "type": "A", "data": "93.184.216.34", "ttl": 60}]}
    http = parse_eve_line(line({**base, "event_type": "http", "http": {
        "hostname": "www.example.com", "url": "/index.php?a=1", "http_user_agent": "curl/8", "http_method": "GET",
        "protocol": "HTTP/1.1", "status": 200, "length": 45}}), CTX)
    assert http["url"] == {"original": "/index.php?a=1", "path": "/index.php", "query": "a=1", "extension": "php",
                           "domain": "www.example.com"}
    assert http["http"] == {"request": {"method": "GET"}, "response": {"status_code": 200, "body": {"bytes": 45}},
                            "version": "1.1"}
    tls = parse_eve_line(line({**base, "event_type": "tls", "tls": {
        "version": "TLS 1.3", "sni": "example.org", "ja3": {"hash": "e7d7", "string": "771,..."},
        "ja3s": {"hash": "f4f5"}, "ja4": "t13d1516h2_8daaf6152771_e5627efa2ab1",
        "fingerprint": "cc:aa:48", "notbefore": "2017-03-23T00:00:00"}}), CTX)
    assert tls["tls"] == {"version_protocol": "tls", "version": "1.3",
                          "client": {"server_name": "example.org", "ja4": "t13d1516h2_8daaf6152771_e5627efa2ab1",
                                     "ja3": "e7d7"},
                          "server": {"ja3s": "f4f5", "hash": {"sha1": "CCAA48"},
                                     "not_before": datetime(2017, 3, 23, tzinfo=UTC)}}
    assert tls["destination"]["domain"] == "example.org"
    fileinfo = parse_eve_line(line({**base, "event_type": "fileinfo", "fileinfo": {
        "filename": "/dl/x.exe", "size": 42, "sha256": "ab", "md5": "cd"}}), CTX)
    assert fileinfo["file"] == {"path": "/dl/x.exe", "name": "x.exe", "size": 42,
                                "hash": {"md5": "cd", "sha256": "ab"}}


def test_other_event_types_and_wrong_types_are_kept_not_copied() -> None:
    doc = parse_eve_line(line({"timestamp": STAMP, "event_type": "stats", "stats": {"uptime": 1}}), CTX)
    assert doc["suricata"]["eve"]["stats"] == {"uptime": 1} and doc["event"]["kind"] == "event"
    doc = parse_eve_line(line({"timestamp": STAMP, "event_type": "alert", "src_port": "80", "dest_port": 70000,
                               "alert": {"signature_id": "x", "severity": True}}), CTX)
    assert "source" not in doc and "destination" not in doc and "rule" not in doc
    assert doc["suricata"]["eve"]["alert"] == {"signature_id": "x", "severity": True}


# --- suricata-verify: real field values ---------------------------------------------------------

def _ip(value: Any) -> Any:
    return str(ipaddress.ip_address(value))


# (EVE key, ECS field, how the EVE value becomes the ECS one)
CHECKED: list[tuple[str, str, Any]] = [
    ("src_ip", "source.ip", _ip), ("dest_ip", "destination.ip", _ip), ("src_port", "source.port", int),
    ("dest_port", "destination.port", int), ("proto", "network.transport", str.lower),
    ("community_id", "network.community_id", str), ("app_proto", "network.protocol", str.lower),
    ("alert.signature_id", "rule.id", str), ("alert.signature", "rule.name", str),
    ("alert.category", "rule.category", str), ("alert.severity", "event.severity", int),
    ("dns.rrname", "dns.question.name", str), ("dns.rrtype", "dns.question.type", str),
    ("dns.queries", "dns.question.name", lambda v: v[0]["rrname"] if "rrname" in v[0] else MISSING),
    ("dns.rcode", "dns.response_code", str), ("http.url", "url.original", str),
    ("http.hostname", "url.domain", str), ("http.status", "http.response.status_code", int),
    ("http.http_method", "http.request.method", str), ("http.http_user_agent", "user_agent.original", str),
    ("tls.sni", "tls.client.server_name", str), ("tls.subject", "tls.server.subject", str),
    ("tls.issuerdn", "tls.server.issuer", str), ("tls.ja3.hash", "tls.client.ja3", str),
    ("tls.ja3s.hash", "tls.server.ja3s", str), ("tls.ja4", "tls.client.ja4", str),
    ("tls.fingerprint", "tls.server.hash.sha1", lambda v: v.replace(":", "").upper()),
    ("flow.pkts_toserver", "source.packets", int), ("flow.bytes_toclient", "destination.bytes", int),
    ("fileinfo.size", "file.size", int),
]


def verify_records() -> list[dict[str, Any]]:
    """EVE records rebuilt from every suricata-verify `filter.match` that names an event_type."""
    records = []
    for test in sorted(VERIFY.glob("*/test.yaml")):
        spec = yaml.safe_load(test.read_text(encoding="utf-8")) or {}
        for check in spec.get("checks") or []:
            match = (check.get("filter") or {}).get("match") if isinstance(check, dict) else None
            if not isinstance(match, dict) or not isinstance(match.get("event_type"), str):
                continue
            record: dict[str, Any] = {"timestamp": STAMP}
            for key, value in match.items():
                if "__" not in key and "has-key" not in key:
                    set_indexed(record, key, value)
            records.append(record)
    return records


def set_indexed(record: dict[str, Any], key: str, value: Any) -> None:
    """`set_path`, and `dns.queries[0].rrname`-style keys as lists of objects."""
    head, bracket, rest = key.partition("[")
    if not bracket:
        set_path(record, key, value)
        return
    index, _, tail = rest.partition("].")
    *parents, name = head.split(".")
    node: Any = record
    for part in parents:
        node = node.setdefault(part, {})
    node = node.setdefault(name, [])
    if not isinstance(node, list) or not index.isdigit() or not tail:
        return
    while len(node) <= int(index):
        node.append({})
    set_indexed(node[int(index)], tail, value)


def test_suricata_verify_dns_v3_records() -> None:
    v3 = [r for r in verify_records() if isinstance(r.get("dns"), dict) and r["dns"].get("version") == 3]
    assert v3
    for record in v3:
        doc = parse_eve_line(line(record), CTX)
        assert doc["dns"]["type"] == {"request": "query", "response": "answer"}[record["dns"]["type"]]
        queries = record["dns"].get("queries")
        if queries and "rrname" in queries[0]:
            assert doc["dns"]["question"]["name"] == queries[0]["rrname"]


def test_suricata_verify_records_map_to_ecs() -> None:
    records = verify_records()
    assert len(records) > 300
    compared = 0
    for record in records:
        doc = parse_eve_line(line(record), CTX)
        assert doc["event"]["kind"] == ("alert" if record["event_type"] == "alert" else "event")
        for eve_key, ecs_field, convert in CHECKED:
            value = lookup(record, eve_key)
            if value is MISSING or isinstance(value, bool) or value in ("", None):
                continue
            assert lookup(doc, ecs_field) == convert(value), (eve_key, record)
            compared += 1
    assert compared > 2000


# --- robustness ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, reason", [
    ("not a log line", "not JSON"), ("[1]", "JSON object"), ('{"event_type": "flow"}', "event_type and timestamp"),
    ('{"timestamp": "yesterday", "event_type": "flow"}', "not an ISO 8601 time"),
    ('{"timestamp": "2026-11-23T10:00:00", "event_type": "flow"}', "no zone"),
])
def test_not_eve(text: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_eve_line(text, CTX)


json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(json_scalars,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                           max_leaves=10)
SECTION_KEYS = {k.rpartition(".")[2] for k, _, _ in CHECKED} | {"answers", "ja3", "start", "end", "notbefore",
                                                               "filename", "version", "rdata", "type", "action"}
sections = st.sampled_from(["alert", "flow", "dns", "http", "tls", "fileinfo", "x"])


@given(st.one_of(
    st.text(),
    st.builds(lambda kind, section, extra: line({"timestamp": STAMP, "event_type": kind, kind: section, **extra}),
              sections, st.dictionaries(st.sampled_from(sorted(SECTION_KEYS)),
                                        json_values), st.dictionaries(st.sampled_from(
                                            ["src_ip", "src_port", "dest_ip", "dest_port", "proto", "app_proto"]),
                                            json_values)),
))
@example('{"timestamp": "0001-01-01T00:00:00+01:00", "event_type": "x"}')
@example(line({"timestamp": STAMP, "event_type": "tls", "tls": {"version": "TLS", "notbefore": "9999-99"}}))
@example(line({"timestamp": STAMP, "event_type": "dns", "dns": {"type": "answer", "rdata": 1, "answers": [1]}}))
def test_any_text_gives_a_document_or_parse_error(text: str) -> None:
    try:
        doc = parse_eve_line(text, CTX)
    except ParseError as e:
        assert e.reason
        return
    assert doc["@timestamp"].tzinfo is not None
