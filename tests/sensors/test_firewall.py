"""FortiGate and generic key=value firewall logs: Elastic's fortinet_fortigate conventions.

No FortiGate log is in ../shared/data, and Fortinet's log reference is not under an open licence,
so the lines here are written for these tests in the FortiOS traffic-log form (the key names and
value shapes of FortiOS 6.x/7.x: `date= time= devname= logid= type= subtype= srcip= ...`).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pipeline.errors import ParseError
from sensors.parsers import LineContext, parse_fortigate_line, parse_kv_firewall_line
from sensors.parsers.firewall import split_key_values

ICT = ZoneInfo("Asia/Ho_Chi_Minh")
CTX = LineContext(tz=ICT, reference=datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
T = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # 10:00 in Ho Chi Minh City

TRAFFIC = ('<189>date=2026-11-23 time=10:00:00 devname="FGT-HN-01" devid="FGT60F0000000001" '
           'eventtime=1763866800123456789 tz="+0700" logid="0000000013" type="traffic" subtype="forward" '
           'level="notice" vd="root" srcip=10.1.100.11 srcport=58012 srcintf="port12" srcintfrole="lan" '
           'dstip=203.0.113.35 dstport=443 dstintf="wan1" dstintfrole="wan" sessionid=8058 proto=6 '
           'action="close" policyid=1 policytype="policy" service="HTTPS" dstcountry="Reserved" '
           'srccountry="Reserved" trandisp="snat" duration=2 sentbyte=1800 rcvdbyte=4122 sentpkt=10 rcvdpkt=8 '
           'appcat="unscanned"')
DENY = ('date=2026-11-23 time=10:00:00 devname="FGT-HN-01" logid="0000000013" type="traffic" subtype="forward" '
        'level="warning" srcip=198.51.100.7 srcport=4444 dstip=10.1.1.10 dstport=3389 proto=17 action="deny" '
        'policyid=0 policyname="implicit deny" msg="Denied by forward policy check (policy 0)"')


def test_split_key_values_quotes_and_escapes() -> None:
    assert split_key_values(r'a=1 b="x y" c=\'z\' d="q\"uote" e= f="open') == {
        "a": "1", "b": "x y", "c": r"\'z\'", "d": 'q"uote', "e": "", "f": '"open'}
    assert split_key_values("c='z w' x") == {"c": "z w"}
    assert split_key_values("no pairs here") == {}


def test_fortigate_traffic_close() -> None:
    doc = parse_fortigate_line(TRAFFIC, CTX)
    assert doc["@timestamp"] == T
    assert doc["event"] == {"kind": "event", "module": "fortinet", "dataset": "fortinet.firewall",
                            "category": ["network"], "code": "0000000013", "duration": 2_000_000_000,
                            "action": "close", "outcome": "success", "type": ["connection", "allowed"]}
    assert doc["source"] == {"address": "10.1.100.11", "ip": "10.1.100.11", "port": 58012, "bytes": 1800,
                             "packets": 10}
    assert doc["destination"] == {"address": "203.0.113.35", "ip": "203.0.113.35", "port": 443, "bytes": 4122,
                                  "packets": 8}
    assert doc["network"] == {"iana_number": "6", "transport": "tcp", "protocol": "https"}
    assert doc["observer"] == {"vendor": "Fortinet", "product": "FortiGate", "hostname": "FGT-HN-01",
                               "serial_number": "FGT60F0000000001", "ingress": {"interface": {"name": "port12"}},
                               "egress": {"interface": {"name": "wan1"}}}
    assert doc["rule"] == {"id": "1"} and doc["log"] == {"level": "notice"}
    assert doc["fortinet"]["firewall"]["sessionid"] == "8058" and "geo" not in doc["source"]
    assert doc["fortinet"]["firewall"]["appcat"] == "unscanned"
    assert doc["related"] == {"ip": ["10.1.100.11", "203.0.113.35"]}


def test_fortigate_deny_without_tz_uses_the_configured_zone() -> None:
    doc = parse_fortigate_line(DENY, CTX)
    assert doc["@timestamp"] == T
    assert (doc["event"]["action"], doc["event"]["outcome"], doc["event"]["type"]) == (
        "deny", "failure", ["connection", "denied"])
    assert doc["network"]["transport"] == "udp" and doc["rule"] == {"id": "0", "name": "implicit deny"}
    assert doc["message"] == "Denied by forward policy check (policy 0)"


def test_fortigate_after_a_syslog_header() -> None:
    doc = parse_fortigate_line("Nov 23 10:00:00 fgt " + DENY, CTX)
    assert doc["@timestamp"] == T and doc["source"]["port"] == 4444


@pytest.mark.parametrize("line, reason", [
    ("not a log line", "not a FortiGate log"),
    ("date=2026-13-01 time=10:00:00 srcip=1.2.3.4", "FortiGate time"),
    ("xdate=2026-11-23 time=10:00:00", "not a FortiGate log"),
])
def test_not_fortigate(line: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_fortigate_line(line, CTX)


def test_kv_firewall_after_syslog_header() -> None:
    line = "Nov 23 10:00:00 fw1 filterlog: action=block src=203.0.113.5 dst=10.0.0.2 spt=4444 dpt=22 proto=TCP"
    doc = parse_kv_firewall_line(line, CTX)
    assert doc["@timestamp"] == T
    assert doc["event"] == {"kind": "event", "module": "kv_firewall", "dataset": "kv_firewall.log",
                            "category": ["network"], "action": "block", "outcome": "failure",
                            "type": ["connection", "denied"]}
    assert doc["source"] == {"address": "203.0.113.5", "ip": "203.0.113.5", "port": 4444}
    assert doc["destination"] == {"address": "10.0.0.2", "ip": "10.0.0.2", "port": 22}
    assert doc["network"] == {"transport": "tcp"} and doc["kv"]["proto"] == "TCP"


def test_iptables_kernel_line() -> None:
    line = ("Nov 23 10:00:00 fw1 kernel: [12345.678901] IN=eth0 OUT= MAC=00:16:3e:00:00:01:00:16:3e:00:00:02:08:00 "
            "SRC=203.0.113.5 DST=10.0.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID=1234 DF PROTO=TCP SPT=4444 DPT=22 "
            "WINDOW=29200 RES=0x00 SYN URGP=0")
    doc = parse_kv_firewall_line(line, CTX)
    assert doc["source"] == {"address": "203.0.113.5", "ip": "203.0.113.5", "port": 4444}
    assert doc["destination"]["port"] == 22 and doc["network"] == {"transport": "tcp"}
    assert doc["observer"] == {"ingress": {"interface": {"name": "eth0"}}} and doc["kv"]["OUT"] == ""
    assert doc["event"]["type"] == ["connection"] and "outcome" not in doc["event"]


def test_session_ends_are_allowed() -> None:
    doc = parse_fortigate_line(DENY.replace('action="deny"', 'action="server-rst"'), CTX)
    assert (doc["event"]["outcome"], doc["event"]["type"]) == ("success", ["connection", "allowed"])


def test_kv_firewall_time_keys() -> None:
    doc = parse_kv_firewall_line("timestamp=2026-11-23T03:00:00Z SRC=10.0.0.1 DST=10.0.0.2 rule=7", CTX)
    assert doc["@timestamp"] == T and doc["rule"] == {"id": "7"} and doc["event"]["type"] == ["connection"]
    doc = parse_kv_firewall_line("date=2026-11-23 time=10:00:00 src=10.0.0.1 action=accept", CTX)
    assert doc["@timestamp"] == T and doc["event"]["outcome"] == "success"
    doc = parse_kv_firewall_line("2026-11-23T10:00:00 src=10.0.0.1 dst=10.0.0.2", CTX)  # no host, no tag
    assert doc["@timestamp"] == T and doc["destination"]["ip"] == "10.0.0.2"


@pytest.mark.parametrize("line, reason", [
    ("not a log line", "fewer than 2"),
    ("a=1 b=2", "no time"),
    ("Nov 23 10:00:00 fw1 kernel: only=one", "fewer than 2"),
])
def test_not_kv_firewall(line: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_kv_firewall_line(line, CTX)


kvish = st.one_of(st.text(), st.builds(lambda head, rest: head + rest, st.sampled_from([
    "date=2026-11-23 time=10:00:00 ", "date=2026-11-23 time=10:00:00 tz=", "<189>date=", "a=1 b=",
    'a="', "Nov 23 10:00:00 fw1 x: a=1 ", "timestamp=", "srcport=99999999 srcip=",
]), st.text()))


@given(kvish)
@example("date=2026-11-23 time=10:00:00 tz=+9999")
@example("timestamp=9999-12-31T23:59:59-10:00 a=1")
@example("date=2026-11-23 time=10:00:00 srcport=99999")
def test_any_text_gives_a_document_or_parse_error(line: str) -> None:
    for parse_line in (parse_fortigate_line, parse_kv_firewall_line):
        try:
            doc = parse_line(line, CTX)
        except ParseError as e:
            assert e.reason
            continue
        assert doc["@timestamp"].tzinfo is not None


@pytest.mark.parametrize("line", ['a="' + '\\"' * 30_000, "a=" * 30_000, "=" * 60_000, " x=1" * 15_000])
def test_long_hostile_lines_parse_in_linear_time(line: str) -> None:
    started = time.perf_counter()
    for parse_line in (parse_fortigate_line, parse_kv_firewall_line):
        try:
            parse_line(line, CTX)
        except ParseError:
            pass
    assert time.perf_counter() - started < 0.5
