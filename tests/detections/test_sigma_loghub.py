"""The shipped SSH rules on real logs: loghub's Linux sample (../shared/data/loghub/Linux).

The 2,000 lines hold 489 `sshd(pam_unix)` authentication failures from 47 remote hosts. The
expected alerts below were derived by reading the file: per rhost, a sliding 5-minute window of
failures, an alert at the fifth, then a fresh count.

The line parser here is deliberately tiny and only for this test (the real one lives in sensors/):
it turns the pam_unix failure lines into the ECS events govsoc's parser writes.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from detections.sigma.load import builtin_rules_dir, load_rules
from detections.sigma.match import SigmaEngine
from pipeline.records import Alert, DetectionKind, Event, Severity

LOG = Path(__file__).resolve().parents[3] / "shared" / "data" / "loghub" / "Linux" / "Linux_2k.log"
YEAR = 2005  # syslog lines carry no year; any fixed one will do
BRUTE_FORCE_ID = "5aedc90e-e0f8-4d6e-b8ce-6a49557584fe"
PAM_FAILURE = re.compile(
    r"^(?P<month>\w{3}) +(?P<day>\d+) (?P<time>\d\d:\d\d:\d\d) (?P<host>\S+) "
    r"sshd\(pam_unix\)\[(?P<pid>\d+)\]: authentication failure; .*\brhost=(?P<rhost>\S+)(?:\s+user=(?P<user>\S+))?")


def parse_pam_failure(line: str, number: int) -> Event | None:
    """An sshd authentication-failure event, or None for any other line."""
    m = PAM_FAILURE.match(line)
    if m is None:
        return None
    timestamp = datetime.strptime(f"{YEAR} {m['month']} {m['day']} {m['time']}", "%Y %b %d %H:%M:%S")
    rhost = m["rhost"]
    try:
        ipaddress.ip_address(rhost)
        source: dict[str, Any] = {"address": rhost, "ip": rhost}
    except ValueError:
        source = {"address": rhost, "domain": rhost}
    doc: dict[str, Any] = {
        "@timestamp": timestamp.replace(tzinfo=UTC),
        "organization": {"id": "hanoi"},
        "event": {"dataset": "system.auth", "module": "system", "category": ["authentication"],
                  "type": ["start"], "outcome": "failure", "action": "ssh_login", "original": line},
        "process": {"name": "sshd", "pid": int(m["pid"])},
        "source": source,
        "host": {"hostname": m["host"]},
        "message": line.split(": ", 1)[1],
    }
    if m["user"]:
        doc["user"] = {"name": m["user"]}
    return Event.create(doc, id_parts=[LOG.name, number])


@pytest.fixture(scope="module")
def events() -> dict[int, Event]:
    """Line number (from 1) -> event, for the failure lines."""
    parsed = {}
    with LOG.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            event = parse_pam_failure(line.rstrip("\n"), number)
            if event is not None:
                parsed[number] = event
    return parsed


@pytest.fixture(scope="module")
def alerts(events: dict[int, Event]) -> list[Alert]:
    ruleset, errors = load_rules([builtin_rules_dir()])
    assert errors == []
    return SigmaEngine(ruleset).process(list(events.values()))


def alerts_for(alerts: list[Alert], rhost: str) -> list[Alert]:
    return [a for a in alerts if a.entity == {"source.address": rhost}]


def test_the_parser_sees_every_failure(events: dict[int, Event]) -> None:
    assert len(events) == 489
    assert len({e.get("source.address") for e in events.values()}) == 47
    assert events[4].get("source.domain") == "220-135-151-1.hinet-ip.hinet.net"
    assert events[1].get("source.ip") == "218.188.2.4"


def test_ten_failures_in_one_second_are_two_brute_force_alerts(events: dict[int, Event],
                                                                 alerts: list[Alert]) -> None:
    rhost = "220-135-151-1.hinet-ip.hinet.net"
    first, second = alerts_for(alerts, rhost)  # lines 4-13, all at Jun 15 02:04:59
    at = datetime(YEAR, 6, 15, 2, 4, 59, tzinfo=UTC)
    for alert, lines in ((first, range(4, 9)), (second, range(9, 14))):
        assert alert.event_ids == tuple(events[n].id for n in lines)
        entity = {"source.address": rhost}
        assert alert.id == Alert.make_id("hanoi", BRUTE_FORCE_ID, entity, events[lines[0]].id)
        assert (alert.timestamp, alert.tenant, alert.kind) == (at, "hanoi", DetectionKind.SIGMA_CORRELATION)
        assert (alert.rule_id, alert.severity) == (BRUTE_FORCE_ID, Severity.HIGH)


def test_failures_a_day_apart_do_not_add_up(events: dict[int, Event], alerts: list[Alert]) -> None:
    # 218.188.2.4: two failures on Jun 14 15:16, twelve on Jun 15 from 12:12:34.
    first, second = alerts_for(alerts, "218.188.2.4")
    assert first.event_ids == tuple(events[n].id for n in (20, 22, 24, 26, 28))
    assert second.event_ids == tuple(events[n].id for n in (32, 34, 35, 36, 38))
    # 210.76.59.29: seven failures, but three on Jul 4 and four on Jul 21.
    assert alerts_for(alerts, "210.76.59.29") == []


EXPECTED_ALERTS_PER_SOURCE = {
    "061092085098.ctinets.com": 2, "150.183.249.110": 16, "195.129.24.210": 3,
    "202-132-40-29.adsl.ttn.net": 1, "202.181.236.180": 2, "203.251.225.101": 1, "207.243.167.114": 4,
    "209.152.168.249": 2, "210.229.150.228": 1, "211-76-104-65.ebix.net.tw": 2, "211.115.206.155": 1,
    "211.137.205.253": 2, "211.214.161.141": 2, "211.9.58.217": 2, "217.60.212.66": 1, "218.16.122.48": 1,
    "218.188.2.4": 2, "218.22.3.51": 1, "218.55.234.102": 1, "220-135-151-1.hinet-ip.hinet.net": 2,
    "220.117.241.87": 2, "60.30.224.116": 4, "61.53.154.93": 1, "62-192-102-94.dsl.easynet.nl": 2,
    "65.166.159.14": 2, "68.143.156.89.nw.nuvox.net": 2, "82.77.200.128": 2,
    "adsl-70-242-75-179.dsl.ksc2mo.swbell.net": 2, "biblioteka.wsi.edu.pl": 1,
    "c51471f2c.cable.wanadoo.nl": 2,
    "csnsu.nsuok.edu": 2, "d211-116-254-214.rev.krline.net": 1, "h64-187-1-131.gtconnect.net": 2,
    "ip-216-69-169-168.ip.secureserver.net": 2, "massive.merukuru.org": 2, "n219076184117.netvigator.com": 4,
    "p15105218.pureserver.info": 2, "troi.bluesky-technologies.com": 1, "zummit.com": 2,
}


def test_all_brute_force_alerts_of_the_sample(alerts: list[Alert]) -> None:
    assert all(a.rule_id == BRUTE_FORCE_ID for a in alerts)  # single failures raise nothing
    assert Counter(a.entity["source.address"] for a in alerts) == EXPECTED_ALERTS_PER_SOURCE
    assert len(alerts) == 87
    assert len({a.id for a in alerts}) == 87
    assert all(len(a.event_ids) == 5 for a in alerts)


def test_a_second_run_gives_the_same_alerts(events: dict[int, Event], alerts: list[Alert]) -> None:
    ruleset, _ = load_rules([builtin_rules_dir()])
    assert SigmaEngine(ruleset).process(list(events.values())) == alerts
