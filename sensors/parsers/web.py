"""Web server logs (nginx and Apache httpd, access and error) -> ECS documents.

Stage: sensors, parse step. In: one line of text. Out: a nested ECS document with `@timestamp`
(aware UTC), no tenant or `event.id`; `ParseError` for a line that is not the format. Field names
follow Elastic's nginx and apache integrations (`nginx.access`, `nginx.error`, `apache.access`,
`apache.error` datasets):
- access (combined or common format, `%h %l %u [%t] "%r" %>s %b ["%{Referer}i" "%{User-agent}i"]`):
  `source.address` (+ `source.ip` when an IP, else `source.domain`), `user.name` (`-` is none),
  `http.request.method`, `url.original` / `url.path` / `url.query` / `url.fragment` /
  `url.extension`, `http.version`, `http.response.status_code`, `http.response.body.bytes`
  (`-` is none), `http.request.referrer`, `user_agent.original`; `event.category` web, `event.type`
  access, `event.outcome` failure from status 400 on, as Elastic's pipelines set them. A request
  line that is not `METHOD URL HTTP/x` (a TLS probe, `-`) keeps `url.original` only when present.
  Fields a custom format appends after the user agent are left in `event.original`.
- Apache error, 2.2 `[Sun Dec 04 04:47:44 2005] [error] [client 1.2.3.4] msg` and 2.4
  `[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 35708:tid 4328636416] [client 1.2.3.4:80]
  msg`: `log.level`, `apache.error.module`, `process.pid`, `process.thread.id`, `source.address`
  / `source.port`; `message` is the text after the bracketed prefixes (Filebeat's split).
- nginx error, `2016/10/25 14:49:34 [error] 54053#0: *1 msg`: `log.level`, `process.pid`,
  `process.thread.id`, `nginx.error.connection_id`, `message`; a `client: A` in the message ->
  `source.address`.

Invariants: times without an offset (error logs) are read in `LineContext.tz`. Total: any `str`
gives a document or `ParseError` (Hypothesis-tested). Patterns are anchored and use disjoint
alternations only (linear time); the time of an access line is parsed once per distinct text.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

from pipeline import ecs
from pipeline.errors import ParseError
from pipeline.records import set_path
from sensors.parsers.syslog import LineContext

# ECS names not yet in pipeline/ecs.py (to move there). The access document's http / url / user
# objects are built whole, by their ECS shape, for speed (see `_access_document`).
LOG_LEVEL = "log.level"
PROCESS_THREAD_ID = "process.thread.id"

_QUOTED = r'"((?:[^"\\]|\\.)*)"'  # disjoint alternatives: no backtracking blow-up
_ACCESS = re.compile(
    r"(\S+) (\S+) (\S+) \[([^\]]{1,64})\] " + _QUOTED + r" ([0-9]{3}|-) ([0-9]{1,18}|-)"
    r"(?: " + _QUOTED + " " + _QUOTED + r")?(?: .*)?", re.DOTALL)
_REQUEST = re.compile(r"([A-Za-z][A-Za-z_-]{0,31}) (\S+) HTTP/([0-9]{1,2}(?:\.[0-9]{1,2})?)")
_APACHE_ERROR = re.compile(
    r"\[[A-Za-z]{3} ([A-Za-z]{3}) ([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,6})? ([0-9]{4})\] "
    r"\[(?:([^\]:\s]{1,64}):)?([a-z]{1,8}[0-9]?)\] ?")
_APACHE_PID = re.compile(r"\[pid ([0-9]{1,10})(?::tid ([0-9]{1,20}))?\] ?")
_APACHE_CLIENT = re.compile(r"\[client (\[[0-9A-Fa-f:.]{2,45}\](?::[0-9]{1,5})?|[^\]\s]{1,255})\] ?")
_NGINX_ERROR = re.compile(
    r"([0-9]{4})/([0-9]{2})/([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) \[([a-z]{1,8})\] "
    r"([0-9]{1,10})#([0-9]{1,20}): (?:\*([0-9]{1,20}) )?")
_NGINX_CLIENT = re.compile(r", client: ([^,\s]{1,255})")
_MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}
_ERROR_LEVELS = frozenset({"error", "crit", "alert", "emerg"})


def parse_nginx_access_line(line: str, ctx: LineContext) -> dict[str, Any]:
    """The "nginx_access" format: combined (or common) log format, dataset `nginx.access`."""
    return _access_document(line, "nginx")


def parse_apache_access_line(line: str, ctx: LineContext) -> dict[str, Any]:
    """The "apache_access" format: combined (or common) log format, dataset `apache.access`."""
    return _access_document(line, "apache")


def parse_apache_error_line(line: str, ctx: LineContext) -> dict[str, Any]:
    """The "apache_error" format: Apache 2.2 or 2.4 error log lines, dataset `apache.error`."""
    head = _APACHE_ERROR.match(line)
    if head is None:
        raise ParseError("not an Apache error line: expected [Www Mmm dd hh:mm:ss yyyy] [level]")
    month = _MONTHS.get(head.group(1))
    if month is None:
        raise ParseError(f"Apache error time: unknown month {head.group(1)!r}")
    fraction = (head.group(6) or ".")[1:].ljust(6, "0")
    day, hour, minute, second = (int(head.group(i)) for i in (2, 3, 4, 5))
    numbers = (int(head.group(7)), month, day, hour, minute, second, int(fraction))
    doc = _base("apache", "error", _local_time(numbers, ctx.tz))
    if head.group(8):
        set_path(doc, "apache.error.module", head.group(8))
    _set_level(doc, head.group(9))
    pos = head.end()
    pid = _APACHE_PID.match(line, pos)
    if pid is not None:
        set_path(doc, ecs.PROCESS_PID, int(pid.group(1)))
        if pid.group(2):
            set_path(doc, PROCESS_THREAD_ID, int(pid.group(2)))
        pos = pid.end()
    client = _APACHE_CLIENT.match(line, pos)
    if client is not None:
        _set_client(doc, client.group(1))
        pos = client.end()
    doc[ecs.MESSAGE] = line[pos:].strip()
    return doc


def parse_nginx_error_line(line: str, ctx: LineContext) -> dict[str, Any]:
    """The "nginx_error" format: `yyyy/mm/dd hh:mm:ss [level] pid#tid: [*conn ]msg`."""
    head = _NGINX_ERROR.match(line)
    if head is None:
        raise ParseError("not an nginx error line: expected yyyy/mm/dd hh:mm:ss [level] pid#tid: ")
    year, month, day, hour, minute, second = (int(head.group(i)) for i in range(1, 7))
    doc = _base("nginx", "error", _local_time((year, month, day, hour, minute, second, 0), ctx.tz))
    _set_level(doc, head.group(7))
    set_path(doc, ecs.PROCESS_PID, int(head.group(8)))
    set_path(doc, PROCESS_THREAD_ID, int(head.group(9)))
    if head.group(10):
        set_path(doc, "nginx.error.connection_id", int(head.group(10)))
    message = line[head.end():].strip()
    doc[ecs.MESSAGE] = message
    client = _NGINX_CLIENT.search(message)
    if client is not None:
        _set_source(doc, client.group(1))
    return doc


def _access_document(line: str, module: str) -> dict[str, Any]:
    """Objects are built whole rather than by `set_path`: 13k -> 19k lines/s (timeit, 2,000 lines)."""
    match = _ACCESS.fullmatch(line)
    if match is None:
        raise ParseError(f"not a {module} access line: expected the common or combined log format")
    address, _ident, user, stamp, request, status, size, referrer, agent = match.groups()
    doc = _base(module, "access", _http_date(stamp))
    event = doc["event"]
    event["type"] = ["access"]
    _set_source(doc, address)
    if user != "-":
        doc["user"] = {"name": user}
        doc.setdefault("related", {})["user"] = [user]
    http: dict[str, Any] = {}
    _set_request(doc, http, request)
    if status != "-":
        code = int(status)
        http["response"] = {"status_code": code}
        event["outcome"] = "failure" if code >= 400 else "success"
    if size != "-":
        http.setdefault("response", {})["body"] = {"bytes": int(size)}
    if referrer and referrer != "-":
        http.setdefault("request", {})["referrer"] = referrer
    if http:
        doc["http"] = http
    if agent and agent != "-":
        doc["user_agent"] = {"original": agent}
    return doc


def _base(module: str, fileset: str, timestamp: datetime) -> dict[str, Any]:
    return {ecs.TIMESTAMP: timestamp, "event": {"kind": "event", "module": module, "dataset": f"{module}.{fileset}",
                                                "category": ["web"]}}


def _set_level(doc: dict[str, Any], level: str) -> None:
    set_path(doc, LOG_LEVEL, level)
    set_path(doc, ecs.EVENT_TYPE, ["error"] if level in _ERROR_LEVELS else ["info"])


def _set_request(doc: dict[str, Any], http: dict[str, Any], request: str) -> None:
    """`GET /a?b HTTP/1.1` -> method, url.*, version; anything else (`-`, a probe) -> url.original."""
    parts = _REQUEST.fullmatch(request)
    if parts is None:
        if request and request != "-":
            doc["url"] = {"original": request}
        return
    http["request"] = {"method": parts.group(1)}
    http["version"] = parts.group(3)
    set_url(doc, parts.group(2))


def set_url(doc: dict[str, Any], original: str) -> None:
    """`url.original`, and the path, query, fragment and extension of it (Elastic's `uri_parts`
    for a request target; an absolute URL's path starts after its authority)."""
    url = doc.setdefault("url", {})
    url["original"] = original
    rest, _, fragment = original.partition("#")
    path, question, query = rest.partition("?")
    scheme, sep, after = path.partition("://")
    if sep and scheme.isalpha():
        path = "/" + after.partition("/")[2]
    url["path"] = path
    if question:
        url["query"] = query
    if fragment:
        url["fragment"] = fragment
    name = path.rpartition("/")[2]
    if "." in name.strip("."):
        url["extension"] = name.rpartition(".")[2].lower()


def _set_client(doc: dict[str, Any], client: str) -> None:
    """Apache 2.4 writes `[client 1.2.3.4:5678]` (IPv6: `[client 2001:db8::1:5678]`, or bracketed);
    2.2 the address alone. A whole that is an IP is one; else the text after the last `:` is the port."""
    address, port = client, ""
    if client.startswith("["):
        address, _, tail = client[1:].partition("]")
        port = tail.removeprefix(":")
    elif _normalised_ip(client) is None and ":" in client:
        address, _, port = client.rpartition(":")
    _set_source(doc, address)
    if port.isascii() and port.isdigit() and len(port) <= 5 and int(port) <= 65535:
        set_path(doc, ecs.SOURCE_PORT, int(port))


def _set_source(doc: dict[str, Any], address: str) -> None:
    ip = _normalised_ip(address)
    if ip is None:
        doc["source"] = {"address": address, "domain": address}
    else:
        doc["source"] = {"address": address, "ip": ip}
        doc.setdefault("related", {})["ip"] = [ip]


@functools.lru_cache(maxsize=4096)
def _normalised_ip(address: str) -> str | None:
    """Cached: a client repeats its address in thousands of lines (see `sensors.parsers.auth`)."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


@functools.lru_cache(maxsize=1024)
def _http_date(stamp: str) -> datetime:
    """`10/Oct/2000:13:55:36 -0700` -> aware UTC. Cached: a busy server repeats each second.

    The exact layout is read by slicing, anything else by `strptime` (40 µs a call, most of an
    access line's parse on the mixed bench, bench/sensor.py); both give the same time or error.
    """
    try:
        numbers = _http_date_numbers(stamp)
        if numbers is not None:
            year, month, day, hour, minute, second, offset = numbers
            return datetime(year, month, day, hour, minute, second, tzinfo=_zone(offset)).astimezone(UTC)
        return datetime.strptime(stamp, "%d/%b/%Y:%H:%M:%S %z").astimezone(UTC)
    except (ValueError, OverflowError) as e:
        raise ParseError(f"access log time: not dd/Mmm/yyyy:hh:mm:ss +zzzz: {stamp!r}") from e


def _http_date_numbers(stamp: str) -> tuple[int, int, int, int, int, int, int] | None:
    """(year, month, day, hour, minute, second, offset in minutes) of `dd/Mmm/yyyy:hh:mm:ss +hhmm`
    written exactly so (ASCII digits, an English month), or None for `strptime` to judge."""
    if len(stamp) != 26 or stamp[2] != "/" or stamp[6] != "/" or stamp[11] != ":" or stamp[14] != ":" \
            or stamp[17] != ":" or stamp[20] != " " or stamp[21] not in "+-" or stamp[24] not in "012345":
        return None
    digits = stamp[0:2] + stamp[7:11] + stamp[12:14] + stamp[15:17] + stamp[18:20] + stamp[22:26]
    month = _MONTHS.get(stamp[3:6])
    if month is None or not (digits.isascii() and digits.isdigit()):
        return None
    offset = int(stamp[22:24]) * 60 + int(stamp[24:26])
    return (int(stamp[7:11]), month, int(stamp[0:2]), int(stamp[12:14]), int(stamp[15:17]), int(stamp[18:20]),
            -offset if stamp[21] == "-" else offset)


@functools.lru_cache(maxsize=256)
def _zone(offset_minutes: int) -> timezone:
    return timezone(timedelta(minutes=offset_minutes))


_Clock = tuple[int, int, int, int, int, int, int]  # year, month, day, hour, minute, second, microsecond


def _local_time(numbers: _Clock, tz: tzinfo) -> datetime:
    """A wall-clock time read in `tz` -> aware UTC."""
    year, month, day, hour, minute, second, micro = numbers
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz).astimezone(UTC)
    except (ValueError, OverflowError) as e:
        raise ParseError(f"error log time: no such date or time: {numbers[:6]}") from e
