"""Syslog lines -> `SyslogRecord`, and a record -> a generic ECS document (`system.syslog`).

Stage: sensors, first parse step. In: one line of text (no trailing newline). Out: a
`SyslogRecord` (header fields split out, time resolved to aware UTC), or `ParseError` naming why
the line is not syslog. `parse_syslog_line` is the registry's "syslog" format: the generic ECS
document with `@timestamp`, used for any program's line.

Three header forms are recognised, each optionally after an RFC 3164 `<PRI>`:
- RFC 3164 (BSD): `Jun 14 15:16:01 combo sshd(pam_unix)[19939]: msg`. The time has no year and
  no zone: it is read in `LineContext.tz`, and the year is the one that puts it nearest at or
  before `LineContext.reference` (up to `FUTURE_SKEW` ahead is tolerated), as rsyslog and
  Logstash do, so a December line read in January lands in the previous year.
- RFC 5424: `<34>1 2026-11-23T10:00:00.123+07:00 host app 123 ID47 [sd] msg`. A NILVALUE time
  (`-`) takes the reference time, as a receiver stamps what the sender could not.
- ISO 8601-prefixed (rsyslog high-precision, journald short-iso):
  `2026-11-23T10:00:00.123456+07:00 host sshd[1]: msg`; a time without offset is read in `tz`.

Invariants:
- Total: any `str` gives a record or `ParseError`, never another exception (Hypothesis-tested).
- Linear time: the patterns are anchored and have no nested or adjacent overlapping quantifiers,
  so Python's `re` cannot backtrack catastrophically. (`re2` would guarantee it, but costs about
  10 µs a match against 0.5 µs for `re`, measured with timeit on an sshd line: 20x the budget.)
- The BSD tag is split as Filebeat's grok does: everything up to the first `:` (spaces allowed,
  `syslogd 1.4.1:`), with a trailing `[pid]` as the process id. A line with no `:` within
  `MAX_TAG` characters has no appname; its message is the rest of the line.
- The message is stripped of surrounding whitespace (the separator after the tag and trailing
  blanks); the line itself is kept verbatim by the file reader in `event.original`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from pipeline import ecs
from pipeline.errors import ParseError
from pipeline.records import set_path

FUTURE_SKEW = timedelta(days=1)  # a yearless time may be this far after the reference (clock skew)
MAX_TAG = 64  # longest BSD tag (program[pid]) searched for; rsyslog's own limit is 32

# ECS names not yet in pipeline/ecs.py (to move there).
LOG_SYSLOG_PRIORITY = "log.syslog.priority"
LOG_SYSLOG_FACILITY_CODE = "log.syslog.facility.code"
LOG_SYSLOG_SEVERITY_CODE = "log.syslog.severity.code"
LOG_SYSLOG_PROCID = "log.syslog.procid"
LOG_SYSLOG_MSGID = "log.syslog.msgid"
LOG_SYSLOG_VERSION = "log.syslog.version"
LOG_SYSLOG_STRUCTURED_DATA = "log.syslog.structured_data"
RELATED_HOSTS = "related.hosts"

_MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}

_PRI = re.compile(r"<([0-9]{1,3})>")
_BSD_TIME = re.compile(r"([A-Za-z]{3}) {1,2}([0-9]{1,2}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) +")
_ISO_TIME = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:?[0-9]{2})? +")
_RFC5424_HEAD = re.compile(r"([0-9]{1,2}) (\S+) (\S+) (\S+) (\S+) (\S+) ", re.ASCII)


@dataclass(frozen=True, slots=True)
class LineContext:
    """What a line parser needs besides the line: the zone for zoneless times and the time a
    yearless time is placed before (a file's mtime, or now for a live stream). Aware datetime."""

    tz: tzinfo
    reference: datetime


@dataclass(frozen=True, slots=True)
class SyslogRecord:
    """One syslog line's header and message. Absent header parts are None (`-` in RFC 5424)."""

    timestamp: datetime  # aware, UTC
    hostname: str | None
    appname: str | None
    procid: str | None
    message: str
    pri: int | None = None
    version: int | None = None  # RFC 5424 only
    msgid: str | None = None  # RFC 5424 only
    structured_data: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # RFC 5424 only

    @property
    def facility(self) -> int | None:
        return None if self.pri is None else self.pri >> 3

    @property
    def severity(self) -> int | None:
        return None if self.pri is None else self.pri & 7


def parse_syslog(line: str, *, tz: tzinfo, reference: datetime) -> SyslogRecord:
    """Split one syslog line; raises `ParseError` (with the reason) for anything else.

    `reference` must be aware: it places yearless RFC 3164 times and stands in for NILVALUE ones.
    """
    if reference.tzinfo is None:
        raise ValueError("reference must be timezone-aware")
    pri, pos = _read_pri(line)
    if pri is not None:
        head = _RFC5424_HEAD.match(line, pos)
        if head is not None:
            return _parse_rfc5424(line, pri, head, tz, reference)
    iso = _ISO_TIME.match(line, pos)
    if iso is not None:
        return _with_header(line[iso.end():], _iso_time(iso, tz), pri)
    bsd = _BSD_TIME.match(line, pos)
    if bsd is not None:
        return _with_header(line[bsd.end():], _bsd_time(bsd, tz, reference), pri)
    raise ParseError("not syslog: expected an RFC 3164 time (Jun 14 15:16:01), an ISO 8601 time "
                     "or an RFC 5424 header (<PRI>1 ...)")


def parse_syslog_line(line: str, ctx: LineContext) -> dict[str, Any]:
    """The "syslog" format: a generic ECS document with `@timestamp`, for any program's line."""
    record = parse_syslog(line, tz=ctx.tz, reference=ctx.reference)
    doc = syslog_document(record)
    doc[ecs.TIMESTAMP] = record.timestamp
    return doc


def syslog_document(record: SyslogRecord) -> dict[str, Any]:
    """The ECS fields every syslog line has, as Filebeat's `system.syslog` fileset sets them.

    No `@timestamp` (the caller decides), no tenant; absent header parts are left out.
    `process.name` drops a Red Hat PAM suffix (`sshd(pam_unix)` -> `sshd`); the appname keeps it.
    """
    # Built as nested dicts, in the key order the dotted names gave (set_path per field was 10 %
    # of the log sensor's CPU, bench/sensor.py); `_set_rfc5424_fields` (PRI lines only) keeps them.
    doc: dict[str, Any] = {ecs.MESSAGE: record.message,
                           "event": {"kind": "event", "module": "system", "dataset": "system.syslog"}}
    syslog: dict[str, Any] | None = None
    if record.hostname is not None:
        doc["host"] = {"hostname": record.hostname}
        syslog = {"hostname": record.hostname}
        doc["log"] = {"syslog": syslog}
        doc["related"] = {"hosts": [record.hostname]}
    if record.appname is not None:
        doc["process"] = {"name": program_name(record.appname)[0]}
        if syslog is None:
            syslog = {}
            doc["log"] = {"syslog": syslog}
        syslog["appname"] = record.appname
    if record.procid is not None:
        if syslog is None:
            syslog = {}
            doc["log"] = {"syslog": syslog}
        syslog["procid"] = record.procid
        if record.procid.isascii() and record.procid.isdigit() and len(record.procid) <= 18:
            doc.setdefault("process", {})["pid"] = int(record.procid)
    if record.pri is not None or record.version is not None:
        _set_rfc5424_fields(doc, record)
    return doc


def program_name(appname: str) -> tuple[str, str | None]:
    """(program, PAM module) of an appname: `sshd(pam_unix)` -> (`sshd`, `pam_unix`)."""
    if appname.endswith(")"):
        base, _, inner = appname[:-1].partition("(")
        if base and inner.startswith("pam_"):
            return base, inner
    return appname, None


def _set_rfc5424_fields(doc: dict[str, Any], record: SyslogRecord) -> None:
    if record.pri is not None:
        set_path(doc, LOG_SYSLOG_PRIORITY, record.pri)
        set_path(doc, LOG_SYSLOG_FACILITY_CODE, record.facility)
        set_path(doc, LOG_SYSLOG_SEVERITY_CODE, record.severity)
    if record.version is not None:
        set_path(doc, LOG_SYSLOG_VERSION, str(record.version))
    if record.msgid is not None:
        set_path(doc, LOG_SYSLOG_MSGID, record.msgid)
    if record.structured_data:
        set_path(doc, LOG_SYSLOG_STRUCTURED_DATA, {k: dict(v) for k, v in record.structured_data.items()})


def _read_pri(line: str) -> tuple[int | None, int]:
    """(PRI, where the rest starts); no `<` means no PRI."""
    if not line.startswith("<"):
        return None, 0
    match = _PRI.match(line)
    if match is None:
        raise ParseError("syslog PRI: expected <0> to <191>")
    pri = int(match.group(1))
    if pri > 191:
        raise ParseError(f"syslog PRI: {pri} is over 191")
    return pri, match.end()


def _with_header(rest: str, timestamp: datetime, pri: int | None) -> SyslogRecord:
    """The record of a BSD or ISO line, given what follows its time: `[host ]tag: message`."""
    if not rest:
        raise ParseError("syslog: nothing after the time")
    first, _, after = rest.partition(" ")
    hostname: str | None = first
    if first.endswith(":"):  # `Jun 14 15:16:01 sshd[1]: msg`: the tag, no host
        hostname, after = None, rest
    appname, procid, message = _split_tag(after.lstrip(" "))
    return SyslogRecord(timestamp=timestamp, hostname=hostname, appname=appname, procid=procid,
                        message=message, pri=pri)


def _split_tag(text: str) -> tuple[str | None, str | None, str]:
    """(appname, procid, message) of `tag[pid]: message`, the tag up to the first `:`."""
    colon = text.find(":", 0, MAX_TAG + 1)
    if colon < 0:
        return None, None, text.strip()
    tag, message = text[:colon].strip(), text[colon + 1:].strip()
    procid = None
    if tag.endswith("]"):
        name, bracket, pid = tag[:-1].rpartition("[")
        if bracket and pid.isascii() and pid.isdigit():
            tag, procid = name.rstrip(), pid
    return tag or None, procid, message


def _bsd_time(match: re.Match[str], tz: tzinfo, reference: datetime) -> datetime:
    """A yearless local time, in the year nearest at or before `reference` (+ `FUTURE_SKEW`)."""
    return _bsd_clock(match.group(0), tz, reference)


@functools.lru_cache(maxsize=4096)
def _bsd_clock(text: str, tz: tzinfo, reference: datetime) -> datetime:
    """Cached per header text (a pure function of its arguments): a busy host writes many lines
    a second, and resolving the year and zone cost 6 % of the log sensor (bench/sensor.py)."""
    match = _BSD_TIME.fullmatch(text)
    if match is None:  # not reached: `text` is what `_BSD_TIME` matched
        raise ParseError(f"syslog time: not Mmm dd hh:mm:ss: {text.strip()!r}")
    month = _MONTHS.get(match.group(1).lower())
    if month is None:
        raise ParseError(f"syslog time: unknown month {match.group(1)!r}")
    day, hour, minute, second = (int(match.group(i)) for i in range(2, 6))
    latest = reference + FUTURE_SKEW
    this_year = reference.astimezone(tz).year
    # Nine years back always reaches a 29 February; other dates settle within one year.
    for year in range(this_year + 1, this_year - 9, -1):
        try:
            candidate = datetime(year, month, day, hour, minute, second, tzinfo=tz)
            if candidate <= latest:
                return candidate.astimezone(UTC)
        except (ValueError, OverflowError):
            continue
    raise ParseError(f"syslog time: no such date or time: {match.group(0).strip()!r}")


def _iso_time(match: re.Match[str], tz: tzinfo) -> datetime:
    """An RFC 3339 / ISO 8601 time; digits beyond microseconds are cut, no offset means `tz`."""
    text = match.group(1) + (match.group(2) or "")[:7] + (match.group(3) or "")
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=tz)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as e:
        raise ParseError(f"syslog time: not a valid ISO 8601 time: {match.group(0).strip()!r}") from e


def _parse_rfc5424(line: str, pri: int, head: re.Match[str], tz: tzinfo,
                   reference: datetime) -> SyslogRecord:
    version, stamp, hostname, appname, procid, msgid = head.groups()
    if stamp == "-":
        timestamp = reference.astimezone(UTC)
    else:
        iso = _ISO_TIME.fullmatch(stamp + " ")
        if iso is None:
            raise ParseError(f"RFC 5424 time: not an RFC 3339 time: {stamp!r}")
        timestamp = _iso_time(iso, tz)
    structured_data, pos = _read_structured_data(line, head.end())
    if pos < len(line) and line[pos] != " ":
        raise ParseError("RFC 5424: expected a space after the structured data")
    message = line[pos + 1:].removeprefix("\ufeff").strip()
    return SyslogRecord(
        timestamp=timestamp, hostname=_nil(hostname), appname=_nil(appname), procid=_nil(procid),
        message=message, pri=pri, version=int(version), msgid=_nil(msgid), structured_data=structured_data,
    )


def _nil(value: str) -> str | None:
    return None if value == "-" else value


def _read_structured_data(line: str, pos: int) -> tuple[dict[str, dict[str, str]], int]:
    """RFC 5424 STRUCTURED-DATA at `pos`: `-` or `[id k="v" ...]...`; returns (data, end)."""
    if line.startswith("-", pos):
        return {}, pos + 1
    data: dict[str, dict[str, str]] = {}
    if not line.startswith("[", pos):
        raise ParseError("RFC 5424 structured data: expected '-' or '['")
    while line.startswith("[", pos):
        sd_id, pos = _read_sd_name(line, pos + 1, "SD-ID")
        params = data.setdefault(sd_id, {})
        while line.startswith(" ", pos):
            name, pos = _read_sd_name(line, pos + 1, "PARAM-NAME")
            if not line.startswith('="', pos):
                raise ParseError(f'RFC 5424 structured data: expected =" after {name!r}')
            params[name], pos = _read_sd_value(line, pos + 2)
        if not line.startswith("]", pos):
            raise ParseError(f"RFC 5424 structured data: expected ']' to close [{sd_id}")
        pos += 1
    return data, pos


def _read_sd_name(line: str, pos: int, what: str) -> tuple[str, int]:
    end = pos
    while end < len(line) and line[end] not in ' =]"' and end - pos < 32:
        end += 1
    if end == pos:
        raise ParseError(f"RFC 5424 structured data: empty or bad {what}")
    return line[pos:end], end


def _read_sd_value(line: str, pos: int) -> tuple[str, int]:
    r"""A PARAM-VALUE up to its closing quote; `\"`, `\\` and `\]` are unescaped. Linear: each
    `find` starts where the last one stopped."""
    parts: list[str] = []
    quote = line.find('"', pos)
    while quote >= 0:
        backslash = line.find("\\", pos, quote)
        if backslash < 0:
            parts.append(line[pos:quote])
            return "".join(parts), quote + 1
        escaped = line[backslash + 1:backslash + 2]
        parts.append(line[pos:backslash] + (escaped if escaped in ('"', "\\", "]") else "\\" + escaped))
        pos = backslash + 1 + len(escaped)
        if pos > quote:
            quote = line.find('"', pos)
    raise ParseError("RFC 5424 structured data: unterminated parameter value")
