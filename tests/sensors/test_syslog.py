"""The syslog header parser (RFC 3164, RFC 5424, ISO 8601), its generic document, and the registry.

Ground truth: loghub's Linux_2k.log and its structured CSV (../shared/data/loghub, research use
with attribution, see loghub/LICENSE).
"""

from __future__ import annotations

import csv
import importlib
import inspect
import pkgutil
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import sensors.parsers
from pipeline.errors import ParseError
from sensors.parsers import PARSERS, LineContext, parse_syslog, parse_syslog_line
from sensors.parsers.syslog import SyslogRecord, syslog_document

LOGHUB = Path(__file__).resolve().parents[3] / "shared" / "data" / "loghub" / "Linux"
ICT = ZoneInfo("Asia/Ho_Chi_Minh")
REF = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def parse(line: str, reference: datetime = REF) -> SyslogRecord:
    return parse_syslog(line, tz=ICT, reference=reference)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
        microsecond: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


def ict(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=ICT)


# --- loghub ground truth ------------------------------------------------------------------------

def loghub_pairs() -> list[tuple[str, dict[str, str]]]:
    lines = (LOGHUB / "Linux_2k.log").read_bytes().decode("utf-8").split("\n")
    with (LOGHUB / "Linux_2k.log_structured.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(lines) == len(rows) == 2000
    return [(line.removesuffix("\r"), row) for line, row in zip(lines, rows, strict=True)]


def test_every_loghub_line_matches_the_structured_csv() -> None:
    for line, row in loghub_pairs():
        record = parse(line, reference=datetime(2026, 8, 1, tzinfo=UTC))
        local = record.timestamp.astimezone(ICT)
        assert record.timestamp.tzinfo is UTC
        assert (local.strftime("%b"), str(local.day), local.strftime("%H:%M:%S")) == (
            row["Month"], row["Date"], row["Time"]), line
        assert local.year == 2026
        assert record.hostname == row["Level"] == "combo"
        assert record.appname == row["Component"], line
        assert record.procid == (row["PID"] or None), line
        assert record.message == row["Content"], line
        assert record.pri is None and record.facility is None and record.severity is None


def test_loghub_odd_tags_follow_filebeat() -> None:
    """Tags with spaces (`syslogd 1.4.1:`) and a doubled space before the tag (`combo  -- root`)."""
    record = parse("Jun 19 04:09:11 combo syslogd 1.4.1: restart.")
    assert (record.appname, record.procid, record.message) == ("syslogd 1.4.1", None, "restart.")
    record = parse("Jul  7 08:06:15 combo  -- root[2421]: ROOT LOGIN ON tty2")
    assert (record.appname, record.procid, record.message) == ("-- root", "2421", "ROOT LOGIN ON tty2")


# --- RFC 3164 -----------------------------------------------------------------------------------

def test_rfc3164_with_pri() -> None:
    record = parse("<38>Nov 23 10:00:00 web1 sshd[123]: Accepted publickey for alice")
    assert record == SyslogRecord(timestamp=utc(2026, 11, 23, 3, 0, 0), hostname="web1", appname="sshd",
                                  procid="123", message="Accepted publickey for alice", pri=38)
    assert (record.facility, record.severity) == (4, 6)


@pytest.mark.parametrize("line, expected", [
    ("Jun  2 19:08:43 host sudo: x", utc(2026, 6, 2, 12, 8, 43)),
    ("Jun 2 19:08:43 host sudo: x", utc(2026, 6, 2, 12, 8, 43)),
    ("Jun 02 19:08:43 host sudo: x", utc(2026, 6, 2, 12, 8, 43)),
    ("JUN 02 19:08:43 host sudo: x", utc(2026, 6, 2, 12, 8, 43)),
])
def test_rfc3164_day_forms(line: str, expected: datetime) -> None:
    assert parse(line).timestamp == expected


def test_rfc3164_without_hostname() -> None:
    record = parse("Nov 23 10:00:00 sshd[7]: Connection closed")
    assert (record.hostname, record.appname, record.procid, record.message) == (
        None, "sshd", "7", "Connection closed")


def test_rfc3164_without_tag_keeps_the_message() -> None:
    record = parse("Nov 23 10:00:00 web1 just some words")
    assert (record.hostname, record.appname, record.message) == ("web1", None, "just some words")


@pytest.mark.parametrize("line, reason", [
    ("", "not syslog"),
    ("hello world", "not syslog"),
    ("Foo 23 10:00:00 web1 app: x", "unknown month"),
    ("Nov 31 10:00:00 web1 app: x", "no such date"),
    ("Nov 23 25:00:00 web1 app: x", "no such date"),
    ("Nov 23 10:00:00 ", "nothing after the time"),
    ("<192>Nov 23 10:00:00 web1 app: x", "over 191"),
    ("<x>Nov 23 10:00:00 web1 app: x", "PRI"),
])
def test_not_syslog_raises_parse_error_with_reason(line: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse(line)


# --- year inference -----------------------------------------------------------------------------

@pytest.mark.parametrize("line, reference, expected", [
    # December line read in January: the previous year.
    ("Dec 31 23:59:59 h a: x", ict(2027, 1, 1, 0, 5), ict(2026, 12, 31, 23, 59, 59)),
    # January line read a little before midnight on 31 December: clock skew, the next year.
    ("Jan  1 00:00:30 h a: x", ict(2026, 12, 31, 23, 59, 50), ict(2027, 1, 1, 0, 0, 30)),
    # Same day, earlier: this year.
    ("Nov 23 08:00:00 h a: x", ict(2026, 11, 23, 9, 0), ict(2026, 11, 23, 8, 0)),
    # Hours ahead of the reference (within FUTURE_SKEW): still this year.
    ("Nov 23 20:00:00 h a: x", ict(2026, 11, 23, 9, 0), ict(2026, 11, 23, 20, 0)),
    # Days ahead: last year's.
    ("Nov 27 08:00:00 h a: x", ict(2026, 11, 23, 9, 0), ict(2025, 11, 27, 8, 0)),
    # 29 February: the latest leap year at or before the reference.
    ("Feb 29 12:00:00 h a: x", ict(2026, 11, 23), ict(2024, 2, 29, 12, 0)),
    ("Feb 29 12:00:00 h a: x", ict(2028, 3, 1), ict(2028, 2, 29, 12, 0)),
])
def test_year_is_nearest_at_or_before_the_reference(line: str, reference: datetime, expected: datetime) -> None:
    assert parse(line, reference=reference).timestamp == expected


def test_year_follows_the_zone_of_the_line_not_utc() -> None:
    """01:00 on 1 January in Ho Chi Minh City is still 31 December in UTC."""
    reference = datetime(2027, 1, 1, 1, 30, tzinfo=ICT)  # 2026-12-31T18:30Z
    assert parse("Jan  1 01:00:00 h a: x", reference=reference).timestamp == utc(2026, 12, 31, 18, 0)


def test_naive_reference_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_syslog("Nov 23 10:00:00 h a: x", tz=ICT, reference=datetime(2026, 11, 23))


# --- ISO 8601-prefixed --------------------------------------------------------------------------

@pytest.mark.parametrize("stamp, expected", [
    ("2026-11-23T10:00:00+07:00", utc(2026, 11, 23, 3, 0)),
    ("2026-11-23T10:00:00+0700", utc(2026, 11, 23, 3, 0)),
    ("2026-11-23T03:00:00Z", utc(2026, 11, 23, 3, 0)),
    ("2026-11-23T10:00:00.123456+07:00", utc(2026, 11, 23, 3, 0, 0, 123456)),
    ("2026-11-23T10:00:00.123456789-05:00", utc(2026, 11, 23, 15, 0, 0, 123456)),
    ("2026-11-23T10:00:00", utc(2026, 11, 23, 3, 0)),  # no offset: the configured zone
])
def test_iso_prefixed_line(stamp: str, expected: datetime) -> None:
    record = parse(f"{stamp} portal sshd[4242]: Failed password for root from 203.0.113.77 port 1 ssh2")
    assert record == SyslogRecord(timestamp=expected, hostname="portal", appname="sshd", procid="4242",
                                  message="Failed password for root from 203.0.113.77 port 1 ssh2")


def test_iso_line_with_pri() -> None:
    record = parse("<86>2026-11-23T10:00:00+07:00 portal sudo: alice : TTY=pts/0")
    assert (record.pri, record.facility, record.severity, record.appname) == (86, 10, 6, "sudo")


def test_iso_time_out_of_range_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="ISO 8601"):
        parse("2026-13-23T10:00:00Z host app: x")
    with pytest.raises(ParseError, match="ISO 8601"):
        parse("9999-12-31T23:59:59-10:00 host app: x")  # past year 9999 in UTC


# --- RFC 5424 -----------------------------------------------------------------------------------

def test_rfc5424_example_1_without_structured_data() -> None:
    record = parse("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
                   "\ufeff'su root' failed for lonvick on /dev/pts/8")
    assert record == SyslogRecord(
        timestamp=utc(2003, 10, 11, 22, 14, 15, 3000), hostname="mymachine.example.com", appname="su",
        procid=None, message="'su root' failed for lonvick on /dev/pts/8", pri=34, version=1, msgid="ID47")
    assert (record.facility, record.severity) == (4, 2)


def test_rfc5424_example_2_offset_and_microseconds() -> None:
    record = parse("<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - "
                   "%% It's time to make the do-nuts.")
    assert record.timestamp == utc(2003, 8, 24, 12, 14, 15, 3)
    assert (record.hostname, record.appname, record.procid, record.msgid) == ("192.0.2.1", "myproc", "8710", None)
    assert record.message == "%% It's time to make the do-nuts."


def test_rfc5424_structured_data() -> None:
    record = parse('<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 '
                   '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
                   '[examplePriority@32473 class="high"]')
    assert record.structured_data == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
        "examplePriority@32473": {"class": "high"},
    }
    assert record.message == ""


def test_rfc5424_escapes_in_parameter_values() -> None:
    record = parse(r'<13>1 2026-11-23T10:00:00Z h app - - [x@1 a="q\"uote" b="back\\slash" c="br\]" d="\n"] m')
    assert record.structured_data == {"x@1": {"a": 'q"uote', "b": "back\\slash", "c": "br]", "d": "\\n"}}
    assert record.message == "m"


def test_rfc5424_nil_time_takes_the_reference() -> None:
    assert parse("<13>1 - host app - - - hello").timestamp == REF


@pytest.mark.parametrize("line, reason", [
    ('<13>1 2026-11-23T10:00:00Z h app - - [x@1 a="open] m', "unterminated"),
    ("<13>1 2026-11-23T10:00:00Z h app - - {x} m", "expected '-' or '\\['"),
    ('<13>1 2026-11-23T10:00:00Z h app - - [x@1 a=3] m', 'expected ="'),
    ('<13>1 2026-11-23T10:00:00Z h app - - [x@1 a="3"m', "expected '\\]'"),
    ('<13>1 2026-11-23T10:00:00Z h app - - [x@1 a="3"]m', "expected a space"),
    ("<13>1 yesterday h app - - - m", "RFC 3339"),
])
def test_rfc5424_errors(line: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse(line)


# --- the generic document -----------------------------------------------------------------------

def test_syslog_document_of_a_bsd_line() -> None:
    record = parse("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown")
    assert syslog_document(record) == {
        "message": "check pass; user unknown",
        "event": {"kind": "event", "module": "system", "dataset": "system.syslog"},
        "host": {"hostname": "combo"},
        "process": {"name": "sshd", "pid": 19939},
        "log": {"syslog": {"hostname": "combo", "appname": "sshd(pam_unix)", "procid": "19939"}},
        "related": {"hosts": ["combo"]},
    }


def test_syslog_line_parser_adds_timestamp_and_rfc5424_fields() -> None:
    ctx = LineContext(tz=ICT, reference=REF)
    doc = parse_syslog_line('<34>1 2026-11-23T10:00:00+07:00 host app abc ID47 [a@1 k="v"] msg', ctx)
    assert doc == {
        "@timestamp": utc(2026, 11, 23, 3, 0),
        "message": "msg",
        "event": {"kind": "event", "module": "system", "dataset": "system.syslog"},
        "host": {"hostname": "host"},
        "process": {"name": "app"},  # procid "abc" is not a pid
        "log": {"syslog": {"hostname": "host", "appname": "app", "procid": "abc", "priority": 34,
                           "facility": {"code": 4}, "severity": {"code": 2}, "version": "1",
                           "msgid": "ID47", "structured_data": {"a@1": {"k": "v"}}}},
        "related": {"hosts": ["host"]},
    }


# --- robustness ---------------------------------------------------------------------------------

syslogish = st.one_of(
    st.text(),
    st.builds(lambda pri, rest: f"<{pri}>{rest}", st.integers(0, 999), st.text()),
    st.builds(lambda pri, rest: f"<{pri}>1 {rest}", st.integers(0, 191), st.text()),
    st.builds(lambda head, rest: head + rest, st.sampled_from([
        "<13>1 2026-11-23T10:00:00Z h a p m ", "<13>1 - - - - - [", "<13>1 - - - - - [x ",
        '<13>1 - - - - - [x k="', "Feb 29 00:00:00 ", "Dec 31 23:59:59 h ", "2026-11-23T10:00:00 ",
        "2026-11-23T10:00:00.1234567890+99:99 ", "Jun 14 15:16:01 combo sshd(pam_unix)[",
    ]), st.text()),
)


@given(syslogish, st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9998, 12, 30),
                               timezones=st.just(UTC)))
@example("<13>1 - - - - - [x", REF)
@example("Dec 31 23:59:59 h a: x", datetime(1, 1, 2, tzinfo=UTC))
@example("0001-01-01T00:00:00+05:00 h a: x", REF)
def test_any_text_gives_a_record_or_parse_error(line: str, reference: datetime) -> None:
    try:
        record = parse_syslog(line, tz=ICT, reference=reference)
    except ParseError as e:
        assert e.reason
        return
    assert record.timestamp.tzinfo is UTC
    assert isinstance(syslog_document(record), dict)


@pytest.mark.parametrize("line", [
    "<13>1 - - - - - [x k=\"" + "\\\\" * 32_000 + '"] m',
    "<13>1 - - - - - " + "[x k=\"v\"]" * 7_000,
    "Nov 23 10:00:00 h " + "a" * 65_000,
    "Nov 23 10:00:00 h " + "x[" * 32_000 + ": m",
    "2026-11-23T10:00:00Z " + " " * 65_000 + "h a: m",
])
def test_long_hostile_lines_parse_in_linear_time(line: str) -> None:
    started = time.perf_counter()
    try:
        parse(line)
    except ParseError:
        pass
    assert time.perf_counter() - started < 0.5


# --- the registry -------------------------------------------------------------------------------

def test_registry_keys_are_the_format_words() -> None:
    assert set(PARSERS) == {"auth", "syslog", "windows_json", "nginx_access", "apache_access", "nginx_error",
                            "apache_error", "auditd", "eve", "fortigate", "kv_firewall", "cef", "json",
                            "windows_cbs"}


def test_every_parser_module_line_function_is_registered() -> None:
    """Each parser module's public `parse_*_line(line, ctx)` is reachable from configuration."""
    registered = set(PARSERS.values())
    for info in pkgutil.iter_modules(sensors.parsers.__path__):
        module = importlib.import_module(f"sensors.parsers.{info.name}")
        line_parsers = [f for name, f in inspect.getmembers(module, inspect.isfunction)
                        if name.startswith("parse_") and name.endswith("_line") and f.__module__ == module.__name__]
        assert line_parsers, f"{module.__name__} has no parse_*_line function"
        for function in line_parsers:
            assert function in registered, f"{module.__name__}.{function.__name__} is not in PARSERS"


SAMPLE_LINES = {
    "auth": "Nov 23 10:00:00 web1 sshd[1]: Invalid user x from 203.0.113.7 port 22",
    "syslog": "Nov 23 10:00:00 web1 sshd[1]: Invalid user x from 203.0.113.7 port 22",
    "windows_json": '{"winlog": {"channel": "Security", "event_id": 4625, "provider_name": '
                    '"Microsoft-Windows-Security-Auditing", "computer_name": "dc01", "record_id": 7, '
                    '"event_data": {"TargetUserName": "x"}}, "@timestamp": "2026-11-23T03:00:00Z"}',
    "nginx_access": '203.0.113.7 - - [23/Nov/2026:10:00:00 +0700] "GET / HTTP/1.1" 200 12 "-" "curl/8.5.0"',
    "apache_access": '203.0.113.7 - - [23/Nov/2026:10:00:00 +0700] "GET / HTTP/1.1" 404 12',
    "nginx_error": "2026/11/23 10:00:00 [error] 1#0: *1 open() failed, client: 203.0.113.7, server: x",
    "apache_error": "[Mon Nov 23 10:00:00 2026] [error] [client 203.0.113.7] File does not exist: /x",
    "auditd": "type=USER_LOGIN msg=audit(1795402800.000:1): pid=1 uid=0 auid=1000 "
              "msg='op=login acct=\"x\" addr=203.0.113.7 res=failed'",
    "eve": '{"timestamp": "2026-11-23T10:00:00.000000+0700", "event_type": "alert", "src_ip": "203.0.113.7", '
           '"alert": {"signature_id": 1, "signature": "x"}}',
    "fortigate": 'date=2026-11-23 time=10:00:00 srcip=203.0.113.7 dstip=10.0.0.1 action="deny"',
    "kv_firewall": "Nov 23 10:00:00 fw1 kernel: action=drop src=203.0.113.7 dst=10.0.0.1",
    "windows_cbs": "2026-11-23 10:00:00, Info                  CBS    Loaded Servicing Stack v6.1.7601.23505",
    "cef": "CEF:0|Vendor|Product|1.0|100|x|5|rt=1795402800000 src=203.0.113.7",
    "json": '{"@timestamp": "2026-11-23T03:00:00Z", "message": "x"}',
}


def test_registered_parsers_keep_the_contract() -> None:
    ctx = LineContext(tz=timezone(timedelta(hours=7)), reference=REF)
    assert set(SAMPLE_LINES) == set(PARSERS)
    for name, parse_line in PARSERS.items():
        doc = parse_line(SAMPLE_LINES[name], ctx)
        assert doc["@timestamp"] == utc(2026, 11, 23, 3, 0), name
        assert "organization" not in doc and "id" not in doc["event"], name
        with pytest.raises(ParseError):
            parse_line("not a log line", ctx)
