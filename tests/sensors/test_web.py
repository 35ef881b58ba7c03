"""nginx and Apache access and error logs: Elastic's nginx / apache integration conventions.

Ground truth: loghub's Apache_2k.log (Apache 2.2 error log) and its structured CSV
(../shared/data/loghub, research use with attribution, see loghub/LICENSE). Other samples:
- `127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 ...`:
  the Apache httpd documentation, "Log Files" (Apache License 2.0).
- The Apache 2.4 error line and the nginx error line are written in the forms those documents and
  nginx's `ngx_log_error` produce; nginx access lines are written here in the combined format.
"""

from __future__ import annotations

import csv
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pipeline.errors import ParseError
from sensors.parsers import (
    LineContext,
    parse_apache_access_line,
    parse_apache_error_line,
    parse_nginx_access_line,
    parse_nginx_error_line,
)

LOGHUB = Path(__file__).resolve().parents[3] / "shared" / "data" / "loghub" / "Apache"
ICT = ZoneInfo("Asia/Ho_Chi_Minh")
CTX = LineContext(tz=ICT, reference=datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
APACHE_DOCS_COMBINED = ('127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 '
                        '"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"')
APACHE_DOCS_COMMON = '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326'


# --- Apache error: loghub ground truth ----------------------------------------------------------

def loghub_pairs() -> list[tuple[str, dict[str, str]]]:
    lines = (LOGHUB / "Apache_2k.log").read_text(encoding="utf-8").split("\n")
    with (LOGHUB / "Apache_2k.log_structured.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(lines) == len(rows) == 2000
    return list(zip(lines, rows, strict=True))


def test_every_loghub_apache_line_matches_the_structured_csv() -> None:
    clients = 0
    for line, row in loghub_pairs():
        doc = parse_apache_error_line(line, CTX)
        local = doc["@timestamp"].astimezone(ICT)
        assert local.strftime("%a %b %d %H:%M:%S %Y") == row["Time"], line
        assert doc["log"]["level"] == row["Level"], line
        content = row["Content"]
        if content.startswith("[client "):
            client, _, content = content.partition("] ")
            assert doc["source"]["address"] == doc["source"]["ip"] == client.removeprefix("[client ")
            clients += 1
        assert doc["message"] == content, line
        assert doc["event"]["dataset"] == "apache.error"
        assert doc["event"]["type"] == (["error"] if row["Level"] == "error" else ["info"])
    assert clients > 0


def test_apache_24_error_line() -> None:
    line = ("[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 35708:tid 4328636416] "
            "[client 72.15.99.187:51244] AH00128: File does not exist: /usr/local/apache2/htdocs/favicon.ico")
    assert parse_apache_error_line(line, LineContext(tz=UTC, reference=CTX.reference)) == {
        "@timestamp": datetime(2000, 10, 11, 14, 32, 52, 123456, tzinfo=UTC),
        "event": {"kind": "event", "module": "apache", "dataset": "apache.error", "category": ["web"],
                  "type": ["error"]},
        "apache": {"error": {"module": "core"}},
        "log": {"level": "error"},
        "process": {"pid": 35708, "thread": {"id": 4328636416}},
        "source": {"address": "72.15.99.187", "ip": "72.15.99.187", "port": 51244},
        "related": {"ip": ["72.15.99.187"]},
        "message": "AH00128: File does not exist: /usr/local/apache2/htdocs/favicon.ico",
    }


def test_apache_24_ipv6_client_and_level_with_digit() -> None:
    line = "[Wed Oct 11 14:32:52 2000] [ssl:trace3] [pid 1] [client [2001:db8::1]:443] handshake"
    doc = parse_apache_error_line(line, CTX)
    assert (doc["log"]["level"], doc["source"]["ip"], doc["source"]["port"]) == ("trace3", "2001:db8::1", 443)


# --- nginx error --------------------------------------------------------------------------------

def test_nginx_error_line() -> None:
    line = ('2016/10/25 14:49:34 [error] 54053#0: *1 open() "/usr/local/Cellar/nginx/1.10.2_1/html/favicon.ico" '
            'failed (2: No such file or directory), client: 127.0.0.1, server: localhost, '
            'request: "GET /favicon.ico HTTP/1.1", host: "localhost:8080"')
    doc = parse_nginx_error_line(line, CTX)
    assert doc["@timestamp"] == datetime(2016, 10, 25, 7, 49, 34, tzinfo=UTC)
    assert doc["event"] == {"kind": "event", "module": "nginx", "dataset": "nginx.error", "category": ["web"],
                            "type": ["error"]}
    assert (doc["log"]["level"], doc["process"], doc["nginx"]) == (
        "error", {"pid": 54053, "thread": {"id": 0}}, {"error": {"connection_id": 1}})
    assert doc["message"].startswith('open() "/usr/local/Cellar') and doc["message"].endswith('"localhost:8080"')
    assert doc["source"] == {"address": "127.0.0.1", "ip": "127.0.0.1"}


def test_nginx_error_without_connection() -> None:
    doc = parse_nginx_error_line("2026/11/23 10:00:00 [notice] 1#1: signal process started", CTX)
    assert (doc["message"], doc["event"]["type"], "nginx" in doc) == ("signal process started", ["info"], False)


# --- access logs --------------------------------------------------------------------------------

def test_apache_docs_combined_line() -> None:
    doc = parse_apache_access_line(APACHE_DOCS_COMBINED, CTX)
    assert doc == {
        "@timestamp": datetime(2000, 10, 10, 20, 55, 36, tzinfo=UTC),
        "event": {"kind": "event", "module": "apache", "dataset": "apache.access", "category": ["web"],
                  "type": ["access"], "outcome": "success"},
        "source": {"address": "127.0.0.1", "ip": "127.0.0.1"},
        "related": {"ip": ["127.0.0.1"], "user": ["frank"]},
        "user": {"name": "frank"},
        "http": {"request": {"method": "GET", "referrer": "http://www.example.com/start.html"}, "version": "1.0",
                 "response": {"status_code": 200, "body": {"bytes": 2326}}},
        "url": {"original": "/apache_pb.gif", "path": "/apache_pb.gif", "extension": "gif"},
        "user_agent": {"original": "Mozilla/4.08 [en] (Win98; I ;Nav)"},
    }


def test_common_format_has_no_referrer_or_agent() -> None:
    doc = parse_nginx_access_line(APACHE_DOCS_COMMON, CTX)
    assert doc["event"]["dataset"] == "nginx.access"
    assert "referrer" not in doc["http"]["request"] and "user_agent" not in doc


def test_nginx_combined_with_query_dashes_and_failure() -> None:
    line = ('203.0.113.9 - - [23/Nov/2026:10:00:00 +0700] "POST /login.php?user=admin&x=1#top HTTP/2.0" 401 - '
            '"-" "curl/8.5.0" "-"')
    doc = parse_nginx_access_line(line, CTX)
    assert doc["@timestamp"] == datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    assert doc["url"] == {"original": "/login.php?user=admin&x=1#top", "path": "/login.php",
                          "query": "user=admin&x=1", "fragment": "top", "extension": "php"}
    assert doc["http"] == {"request": {"method": "POST"}, "version": "2.0", "response": {"status_code": 401}}
    assert doc["event"]["outcome"] == "failure"
    assert "user" not in doc and doc["user_agent"] == {"original": "curl/8.5.0"}


def test_escaped_quotes_hostnames_and_probes() -> None:
    line = r'bad.example - - [23/Nov/2026:10:00:00 +0000] "\x16\x03\x01" 400 157 "-" "Mo\"zilla"'
    doc = parse_nginx_access_line(line, CTX)
    assert doc["source"] == {"address": "bad.example", "domain": "bad.example"}
    assert doc["url"] == {"original": r"\x16\x03\x01"} and "method" not in doc["http"].get("request", {})
    assert doc["user_agent"]["original"] == r"Mo\"zilla"
    proxy = parse_apache_access_line('10.0.0.1 - - [23/Nov/2026:10:00:00 +0000] '
                                     '"CONNECT http://example.com:443/a/b.tar.gz?q HTTP/1.1" 200 0', CTX)
    assert proxy["url"]["path"] == "/a/b.tar.gz" and proxy["url"]["extension"] == "gz"


@pytest.mark.parametrize("line, reason", [
    ("", "not a nginx access line"),
    ('1.2.3.4 - - [99/Foo/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 1', "access log time"),
    ('1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" OK 1', "not a nginx access line"),
])
def test_not_an_access_line(line: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_nginx_access_line(line, CTX)


@pytest.mark.parametrize("line", [
    "[Sun Dec 04 04:47:44 2005] notice workerEnv", "[Sun Foo 04 04:47:44 2005] [notice] x",
    "[Sun Feb 31 04:47:44 2005] [notice] x", "2016/10/25 14:49:34 [error] x",
])
def test_not_an_error_line(line: str) -> None:
    with pytest.raises(ParseError):
        parse_apache_error_line(line, CTX)
    with pytest.raises(ParseError):
        parse_nginx_error_line(line, CTX)


# --- robustness ---------------------------------------------------------------------------------

PARSE_FUNCTIONS = [parse_nginx_access_line, parse_apache_access_line, parse_nginx_error_line,
                   parse_apache_error_line]
webbish = st.one_of(st.text(), st.builds(lambda head, rest: head + rest, st.sampled_from([
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "', '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 ',
    "[Sun Dec 04 04:47:44 2005] [", "[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid ",
    "[Sun Dec 04 04:47:44 2005] [error] [client ", "2016/10/25 14:49:34 [error] 1#0: ",
    "0000/00/00 00:00:00 [error] 1#0: ",
]), st.text()))


@given(webbish)
@example("[Sun Dec 04 04:47:44 2005] [error] [client [::1]:99999] x")
@example("0001/01/01 00:00:00 [error] 1#0: x")
def test_any_text_gives_a_document_or_parse_error(line: str) -> None:
    for parse_line in PARSE_FUNCTIONS:
        try:
            doc = parse_line(line, CTX)
        except ParseError as e:
            assert e.reason
            continue
        assert doc["@timestamp"].tzinfo is not None


@pytest.mark.parametrize("line", [
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "' + "\\\\" * 30_000 + 'x 200 1',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "' + '\\"' * 30_000,
    "a " * 30_000, "[client " * 8_000,
    "[Sun Dec 04 04:47:44 2005] [error] " + "[client " * 8_000,
])
def test_long_hostile_lines_parse_in_linear_time(line: str) -> None:
    started = time.perf_counter()
    for parse_line in PARSE_FUNCTIONS:
        try:
            parse_line(line, CTX)
        except ParseError:
            pass
    assert time.perf_counter() - started < 0.5
