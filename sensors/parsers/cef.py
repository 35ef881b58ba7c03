r"""ArcSight Common Event Format (CEF) lines -> ECS documents, as Elastic's `cef` integration.

Stage: sensors, parse step. In: one line, `CEF:Version|Vendor|Product|DeviceVersion|SignatureID|
Name|Severity|Extension`, bare or after a syslog header. Out: a nested ECS document with
`@timestamp` (aware UTC), no tenant or `event.id` (dataset `cef.log`); `ParseError` otherwise.

Escaping (CEF Implementation Standard, "Character Encoding"): in the header `\|` and `\\`; in the
extension `\=`, `\\`, `\n` and `\r` (newline, carriage return). Extension keys are the word before
an unescaped `=`; a value runs to the space before the next key, so values may hold spaces.

Mapping (Filebeat's `decode_cef` processor and the cef module's pipeline): the header goes to
`cef.version`, `cef.device.vendor|product|version|event_class_id`, `cef.name`, `cef.severity`
and to `observer.vendor|product|version`, `event.code`, `message`, `event.severity` (0-10 number,
or, our choice, the words Low/Medium/High/Very-High -> 0/4/7/9). Extension keys are stored under their full names at
`cef.extensions.<fullName>` (text, as sent) and the standard ones copied to ECS (`src` ->
`source.ip`, `spt` -> `source.port`, `suser` -> `source.user.name`, `act` -> `event.action`,
`request` -> `url.original`, ...). `@timestamp` is `rt` (epoch milliseconds or `MMM dd yyyy
HH:mm:ss[.SSS]`), else the syslog header's time, else `LineContext.reference` with the tag
`cef_time_from_reference` (a CEF line need not carry a time; the reference keeps it deterministic).

Difference from Filebeat: `deviceExternalId` stays in `cef.extensions` only (Filebeat copies it to
`observer.name`, which the reader sets to our sensor).

Invariants: linear time (`str.find` scans that never revisit text; hostile 64 KB lines tested).
Total: any `str` gives a document or `ParseError` (Hypothesis-tested).
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, tzinfo
from typing import Any

from pipeline import ecs
from pipeline.errors import ParseError
from pipeline.records import set_path
from sensors.parsers.firewall import normalised_ip
from sensors.parsers.syslog import LineContext, parse_syslog

TIME_FROM_REFERENCE_TAG = "cef_time_from_reference"
HEADER_FIELDS = 7  # Version .. Severity; the extension is the eighth
_SEVERITY_WORDS = {"unknown": 0, "low": 0, "medium": 4, "high": 7, "very-high": 9}
_KEY = re.compile(r"[A-Za-z0-9_.\[\]-]{1,64}")
_UNESCAPE_EXTENSION = {"\\": "\\", "=": "=", "n": "\n", "r": "\r"}

# Short key -> full name (CEF Implementation Standard, "Extension Dictionary").
FULL_NAMES = {
    "act": "deviceAction", "app": "applicationProtocol", "cnt": "baseEventCount", "dhost": "destinationHostName",
    "dmac": "destinationMacAddress", "dntdom": "destinationNtDomain", "dpid": "destinationProcessId",
    "dpriv": "destinationUserPrivileges", "dproc": "destinationProcessName", "dpt": "destinationPort",
    "dst": "destinationAddress", "duid": "destinationUserId", "duser": "destinationUserName",
    "dvc": "deviceAddress", "dvchost": "deviceHostName", "dvcpid": "deviceProcessId", "end": "endTime",
    "fname": "fileName", "fsize": "fileSize", "in": "bytesIn", "msg": "message", "out": "bytesOut",
    "outcome": "eventOutcome", "proto": "transportProtocol", "request": "requestUrl", "rt": "deviceReceiptTime",
    "shost": "sourceHostName", "smac": "sourceMacAddress", "sntdom": "sourceNtDomain", "spid": "sourceProcessId",
    "spriv": "sourceUserPrivileges", "sproc": "sourceProcessName", "spt": "sourcePort", "src": "sourceAddress",
    "start": "startTime", "suid": "sourceUserId", "suser": "sourceUserName", "cat": "deviceEventCategory",
}  # keys already full names (requestMethod, filePath, ...) are used as written
# Full name -> (ECS field, kind): "ip" sets the field only for an IP, "int" only for a number.
ECS_OF = {
    "sourceAddress": ("source.ip", "ip"), "destinationAddress": ("destination.ip", "ip"),
    "sourcePort": ("source.port", "port"), "destinationPort": ("destination.port", "port"),
    "sourceMacAddress": ("source.mac", "text"), "destinationMacAddress": ("destination.mac", "text"),
    "sourceHostName": ("source.domain", "text"), "destinationHostName": ("destination.domain", "text"),
    "sourceUserName": ("source.user.name", "text"), "destinationUserName": ("destination.user.name", "text"),
    "sourceUserId": ("source.user.id", "text"), "destinationUserId": ("destination.user.id", "text"),
    "sourceProcessId": ("process.parent.pid", "int"), "destinationProcessId": ("process.pid", "int"),
    "destinationProcessName": ("process.name", "text"), "sourceNtDomain": ("source.user.domain", "text"),
    "destinationNtDomain": ("destination.user.domain", "text"), "deviceAction": ("event.action", "text"),
    "applicationProtocol": ("network.protocol", "lower"), "transportProtocol": ("network.transport", "lower"),
    "requestUrl": ("url.original", "text"), "requestMethod": ("http.request.method", "text"),
    "requestClientApplication": ("user_agent.original", "text"), "message": (ecs.MESSAGE, "text"),
    "bytesIn": ("source.bytes", "int"), "bytesOut": ("destination.bytes", "int"),
    "eventOutcome": ("event.outcome", "outcome"), "fileName": ("file.name", "text"), "filePath": ("file.path", "text"),
    "fileSize": ("file.size", "int"), "deviceAddress": ("observer.ip", "ip"),
    "deviceHostName": ("observer.hostname", "text"), "startTime": ("event.start", "time"),
    "endTime": ("event.end", "time"), "sourceProcessName": ("process.parent.name", "text"),
    "sourceTranslatedAddress": ("source.nat.ip", "ip"), "destinationTranslatedAddress": ("destination.nat.ip", "ip"),
}


def parse_cef_line(line: str, ctx: LineContext) -> dict[str, Any]:
    """The "cef" format: one CEF record, bare or after a syslog header."""
    at = 0 if line.startswith("CEF:") else line.find(" CEF:") + 1
    if at == 0 and not line.startswith("CEF:"):
        raise ParseError("not CEF: expected CEF:Version|Vendor|Product|Version|SignatureID|Name|Severity|")
    header, extension = split_header(line[at + 4:])
    doc: dict[str, Any] = {}
    _set_header(doc, header)
    values = parse_extension(extension)
    set_path(doc, "cef.extensions", values)
    _map_extension(doc, values)
    _map_times(doc, values, ctx.tz)
    doc[ecs.TIMESTAMP] = _timestamp(doc, values.get("deviceReceiptTime"), line[:at], ctx)
    return doc


def split_header(text: str) -> tuple[list[str], str]:
    r"""The seven header fields (unescaped: `\|` -> `|`, `\\` -> `\`) and the raw extension."""
    fields: list[str] = []
    current: list[str] = []
    pos, bar = 0, text.find("|")
    while len(fields) < HEADER_FIELDS:
        if 0 <= bar < pos:  # look again only past an escaped bar: linear in the text
            bar = text.find("|", pos)
        backslash = text.find("\\", pos, bar if bar >= 0 else len(text))
        if backslash >= 0:
            current.append(text[pos:backslash] + text[backslash + 1:backslash + 2])
            pos = backslash + 2
            continue
        if bar < 0:
            raise ParseError(f"CEF header: {HEADER_FIELDS} fields separated by '|' expected, got {len(fields) + 1}")
        current.append(text[pos:bar])
        fields.append("".join(current))
        current, pos = [], bar + 1
    return fields, text[pos:]


def parse_extension(text: str) -> dict[str, str]:
    r"""`src=10.0.0.1 msg=a b\=c` -> {"sourceAddress": "10.0.0.1", "message": "a b=c"}, keys by
    their full names (unknown keys as written); a repeated key keeps its last value."""
    keys = _key_positions(text)
    values: dict[str, str] = {}
    for index, (key_start, eq) in enumerate(keys):
        end = keys[index + 1][0] - 1 if index + 1 < len(keys) else len(text)
        key = text[key_start:eq]
        values[FULL_NAMES.get(key, key)] = _unescape_value(text[eq + 1:end].rstrip(" "))
    return values


def _key_positions(text: str) -> list[tuple[int, int]]:
    """(key start, `=` position) of each unescaped `=` whose key word follows a space (or starts
    the extension). Linear: the space is looked for only back to the previous `=`."""
    found: list[tuple[int, int]] = []
    previous = -1
    eq = text.find("=")
    while eq >= 0:
        slashes = 0
        while eq - slashes > 0 and text[eq - slashes - 1] == "\\":
            slashes += 1
        space = text.rfind(" ", previous + 1, eq)
        start = space + 1 if space >= 0 else (0 if previous < 0 else -1)
        if slashes % 2 == 0 and start >= 0 and _KEY.fullmatch(text, start, eq):
            found.append((start, eq))
        previous, eq = eq, text.find("=", eq + 1)
    return found


def _unescape_value(raw: str) -> str:
    if "\\" not in raw:
        return raw
    parts: list[str] = []
    pos = 0
    while (backslash := raw.find("\\", pos)) >= 0:
        escaped = raw[backslash + 1:backslash + 2]
        parts.append(raw[pos:backslash] + _UNESCAPE_EXTENSION.get(escaped, "\\" + escaped))
        pos = backslash + 2
    parts.append(raw[pos:])
    return "".join(parts)


def _set_header(doc: dict[str, Any], header: list[str]) -> None:
    version, vendor, product, device_version, signature, name, severity = header
    version = version.strip()
    if not version.isdigit():
        raise ParseError(f"CEF header: version is not a number: {version!r}")
    doc["event"] = {"kind": "event", "module": "cef", "dataset": "cef.log", "code": signature}
    set_path(doc, "cef", {"version": version, "name": name, "severity": severity,
                          "device": {"vendor": vendor, "product": product, "version": device_version,
                                     "event_class_id": signature}})
    set_path(doc, "observer", {"vendor": vendor, "product": product, "version": device_version})
    doc[ecs.MESSAGE] = name
    level = _severity(severity)
    if level is not None:
        set_path(doc, ecs.EVENT_SEVERITY, level)


def _severity(text: str) -> int | None:
    word = text.strip().lower()
    if word.isascii() and word.isdigit() and len(word) <= 2:
        return int(word)
    return _SEVERITY_WORDS.get(word)


def _map_extension(doc: dict[str, Any], values: dict[str, str]) -> None:
    for full_name, value in values.items():
        target = ECS_OF.get(full_name)
        if target is None or not value:
            continue
        field, kind = target
        if kind == "ip":
            ip = normalised_ip(value)
            if ip is not None:
                set_path(doc, field, ip)
                related = doc.setdefault("related", {}).setdefault("ip", [])
                if ip not in related:
                    related.append(ip)
        elif kind in ("int", "port"):
            if value.isascii() and value.isdigit() and len(value) <= 18 and (kind == "int" or int(value) <= 65535):
                set_path(doc, field, int(value))
        elif kind == "lower":
            set_path(doc, field, value.lower())
        elif kind == "outcome":
            set_path(doc, field, {"success": "success", "failure": "failure"}.get(value.lower().lstrip("/"),
                                                                                "unknown"))
        elif kind == "text":
            set_path(doc, field, value)


def _map_times(doc: dict[str, Any], values: dict[str, str], tz: tzinfo) -> None:
    for full_name, field in (("startTime", "event.start"), ("endTime", "event.end")):
        parsed = cef_time(values[full_name].strip(), tz) if values.get(full_name) else None
        if parsed is not None:
            set_path(doc, field, parsed)


def _timestamp(doc: dict[str, Any], rt: str | None, prefix: str, ctx: LineContext) -> datetime:
    if rt:
        parsed = cef_time(rt.strip(), ctx.tz)
        if parsed is not None:
            return parsed
    if prefix.strip():
        try:
            return parse_syslog(prefix + "CEF", tz=ctx.tz, reference=ctx.reference).timestamp
        except ParseError:
            pass
    doc.setdefault(ecs.TAGS, []).append(TIME_FROM_REFERENCE_TAG)
    return ctx.reference.astimezone(UTC)


@functools.lru_cache(maxsize=1024)
def cef_time(text: str, tz: tzinfo) -> datetime | None:
    """A CEF time: epoch milliseconds, or `MMM dd yyyy HH:mm:ss[.SSS][ zone]` (zone-less: `tz`)."""
    try:
        if text.isascii() and text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, UTC)
        for fmt in ("%b %d %Y %H:%M:%S.%f", "%b %d %Y %H:%M:%S", "%b %d %H:%M:%S.%f %Y", "%b %d %H:%M:%S %Y"):
            try:
                parsed = datetime.strptime(text, fmt)
            except ValueError:
                continue
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None
