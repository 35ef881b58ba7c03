r"""CEF: header and extension escaping, the extension dictionary, and Elastic's cef mapping.

The escaping samples (`detected a \| in message`, `act=blocked a \= dst=...`, the `\n` in `msg`)
and `Sep 19 08:26:10 host CEF:0|Security|threatmanager|1.0|100|worm successfully stopped|10|...`
are the examples of ArcSight's "Implementing ArcSight Common Event Format (CEF)" standard, quoted
as short excerpts for interoperability testing (Micro Focus / OpenText documentation).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pipeline.errors import ParseError
from sensors.parsers import LineContext, parse_cef_line
from sensors.parsers.cef import TIME_FROM_REFERENCE_TAG, parse_extension, split_header

ICT = ZoneInfo("Asia/Ho_Chi_Minh")
REF = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CTX = LineContext(tz=ICT, reference=REF)


def test_spec_example_after_a_syslog_header() -> None:
    line = ("Sep 19 08:26:10 host CEF:0|Security|threatmanager|1.0|100|worm successfully stopped|10|"
            "src=10.0.0.1 dst=2.1.2.2 spt=1232")
    doc = parse_cef_line(line, CTX)
    assert doc == {
        "@timestamp": datetime(2026, 9, 19, 1, 26, 10, tzinfo=UTC),
        "event": {"kind": "event", "module": "cef", "dataset": "cef.log", "code": "100", "severity": 10},
        "cef": {"version": "0", "name": "worm successfully stopped", "severity": "10",
                "device": {"vendor": "Security", "product": "threatmanager", "version": "1.0",
                           "event_class_id": "100"},
                "extensions": {"sourceAddress": "10.0.0.1", "destinationAddress": "2.1.2.2", "sourcePort": "1232"}},
        "observer": {"vendor": "Security", "product": "threatmanager", "version": "1.0"},
        "message": "worm successfully stopped",
        "source": {"ip": "10.0.0.1", "port": 1232},
        "destination": {"ip": "2.1.2.2"},
        "related": {"ip": ["10.0.0.1", "2.1.2.2"]},
    }


@pytest.mark.parametrize("text, header, extension", [
    (r"0|security|threatmanager|1.0|100|detected a \| in message|10|src=10.0.0.1 act=blocked a | dst=1.1.1.1",
     ["0", "security", "threatmanager", "1.0", "100", "detected a | in message", "10"],
     "src=10.0.0.1 act=blocked a | dst=1.1.1.1"),
    (r"0|security|threatmanager|1.0|100|detected a \\ in packet|10|src=10.0.0.1 act=blocked a \\ dst=1.1.1.1",
     ["0", "security", "threatmanager", "1.0", "100", "detected a \\ in packet", "10"],
     r"src=10.0.0.1 act=blocked a \\ dst=1.1.1.1"),
    (r"0|v|p|1|2|pipe at end \\|3|", ["0", "v", "p", "1", "2", "pipe at end \\", "3"], ""),
])
def test_header_escapes(text: str, header: list[str], extension: str) -> None:
    assert split_header(text) == (header, extension)


@pytest.mark.parametrize("extension, expected", [
    (r"src=10.0.0.1 act=blocked a \= dst=1.1.1.1",
     {"sourceAddress": "10.0.0.1", "deviceAction": "blocked a =", "destinationAddress": "1.1.1.1"}),
    (r"src=10.0.0.1 act=blocked a \\ dst=1.1.1.1",
     {"sourceAddress": "10.0.0.1", "deviceAction": "blocked a \\", "destinationAddress": "1.1.1.1"}),
    (r"msg=Detected a threat.\n No action needed. cs1Label=x",
     {"message": "Detected a threat.\n No action needed.", "cs1Label": "x"}),
    (r"msg=ends in backslash\\", {"message": "ends in backslash\\"}),
    (r"msg=a\=b\=c", {"message": "a=b=c"}),
    (r"msg=a\=b=c d=1", {"message": r"a=b=c", "d": "1"}),  # an unescaped = inside a value stays there
    (r"request=https://x.example/?a\=1&b\=2 requestMethod=GET",
     {"requestUrl": "https://x.example/?a=1&b=2", "requestMethod": "GET"}),
    ("", {}),
])
def test_extension_escapes_and_full_names(extension: str, expected: dict[str, str]) -> None:
    assert parse_extension(extension) == expected


def test_standard_keys_map_to_ecs() -> None:
    line = ("CEF:0|Vendor|WAF|2.1|942100|SQL injection|High|rt=1763866800000 src=203.0.113.9 spt=51515 "
            "dst=10.0.0.5 dpt=443 suser=alice duser=bob act=blocked proto=TCP app=HTTPS "
            "request=/login?id=1 requestMethod=POST requestClientApplication=sqlmap/1.8 outcome=failure "
            "in=512 out=128 dvchost=waf01 fname=x.php fsize=12 cs1Label=Rule cs1=942100")
    doc = parse_cef_line(line, CTX)
    assert doc["@timestamp"] == datetime(2025, 11, 23, 3, 0, tzinfo=UTC)
    assert doc["event"]["severity"] == 7 and doc["event"]["action"] == "blocked"
    assert doc["event"]["outcome"] == "failure"
    assert doc["source"] == {"ip": "203.0.113.9", "port": 51515, "user": {"name": "alice"}, "bytes": 512}
    assert doc["destination"] == {"ip": "10.0.0.5", "port": 443, "user": {"name": "bob"}, "bytes": 128}
    assert doc["network"] == {"transport": "tcp", "protocol": "https"}
    assert doc["url"] == {"original": "/login?id=1"} and doc["http"] == {"request": {"method": "POST"}}
    assert doc["user_agent"] == {"original": "sqlmap/1.8"} and doc["observer"]["hostname"] == "waf01"
    assert doc["file"] == {"name": "x.php", "size": 12}
    assert doc["cef"]["extensions"]["cs1"] == "942100"


def test_text_times_and_reference_fallback() -> None:
    doc = parse_cef_line("CEF:0|v|p|1|2|n|3|rt=Nov 23 2026 10:00:00 start=Nov 23 2026 09:59:00.500", CTX)
    assert doc["@timestamp"] == datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    assert doc["event"]["start"] == datetime(2026, 11, 23, 2, 59, 0, 500000, tzinfo=UTC)
    doc = parse_cef_line("CEF:0|v|p|1|2|n|3|src=1.2.3.4", CTX)
    assert doc["@timestamp"] == REF and doc["tags"] == [TIME_FROM_REFERENCE_TAG]


@pytest.mark.parametrize("line, reason", [
    ("not a log line", "not CEF"),
    ("CEF:0|v|p|1|2|n", "7 fields"),
    ("CEF:x|v|p|1|2|n|3|", "version is not a number"),
    ("xCEF:0|v|p|1|2|n|3|", "not CEF"),
])
def test_not_cef(line: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_cef_line(line, CTX)


cefish = st.one_of(st.text(), st.builds(lambda head, rest: head + rest, st.sampled_from([
    "CEF:0|", "CEF:0|v|p|1|2|n|3|", "CEF:0|v|p|1|2|n|3|rt=", "CEF:0|v|p|1|2|n|3|src=1.2.3.4 msg=",
    "Nov 23 10:00:00 h CEF:0|v|p|1|2|n|3|", "CEF:0|v|p|1|2|n|3|spt=99999 start=",
]), st.text()))


@given(cefish)
@example("CEF:0|v|p|1|2|n|3|rt=99999999999999999")
@example("CEF:0|v|p|1|2|n|3|rt=Dec 31 9999 23:59:59")
@example("CEF:0|v|p|1|2|n|\\")
def test_any_text_gives_a_document_or_parse_error(line: str) -> None:
    try:
        doc = parse_cef_line(line, CTX)
    except ParseError as e:
        assert e.reason
        return
    assert doc["@timestamp"].tzinfo is not None


@pytest.mark.parametrize("line", ["CEF:0|v|p|1|2|n|3|" + "a=" * 30_000, "CEF:0|v|p|1|2|n|3|" + "\\=" * 30_000,
                                  "CEF:0|" + "\\a" * 30_000 + "|", "CEF:0|v|p|1|2|n|3|x=" + "\\" * 60_000 + "=",
                                  "CEF:0|" + "\\|" * 30_000, "CEF:0|v|p|1|2|n|3|" + " k=v" * 15_000])
def test_long_hostile_lines_parse_in_linear_time(line: str) -> None:
    started = time.perf_counter()
    try:
        parse_cef_line(line, CTX)
    except ParseError:
        pass
    assert time.perf_counter() - started < 0.5
