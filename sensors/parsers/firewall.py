"""Firewall key=value logs (FortiGate, and any `key=value ...` firewall) -> ECS documents.

Stage: sensors, parse step. In: one line: a `key=value` payload, bare or after a syslog header
(`<189>date=...`, `Nov 23 10:00:00 fw1 date=...`). Out: a nested ECS document with `@timestamp`
(aware UTC), no tenant or `event.id`; `ParseError` for anything else.

- "fortigate" (`parse_fortigate_line`): FortiOS traffic / utm / event logs, fields as Elastic's
  `fortinet_fortigate` integration (dataset `fortinet.firewall`): every pair kept verbatim (text)
  at `fortinet.firewall.<key>`; `srcip`/`srcport`/`dstip`/`dstport` -> source/destination,
  `proto` -> `network.iana_number` and `network.transport`, `action` -> `event.action`, outcome
  failure for deny/block/dropped actions, `policyid` -> `rule.id`, `sentbyte`/`rcvdbyte`/
  `sentpkt`/`rcvdpkt` -> source/destination bytes and packets, `level` -> `log.level`, `logid`
  -> `event.code`, `msg` -> `message`, `srcintf`/`dstintf` -> observer ingress/egress interface.
  Difference from Elastic: `devname` goes to `observer.hostname`, not `observer.name`, which the
  reader sets to our sensor. The time is `date` + `time` with `tz` (FortiOS 6.2+) or else read in
  `LineContext.tz`.
- "kv_firewall" (`parse_kv_firewall_line`): any other key=value firewall; common key spellings
  (`src`, `src_ip`, `srcip`, `SRC`, `spt`, `sport`, ...) map to the same ECS fields; every pair is
  kept at `kv.<key>`. The time is the syslog header's, else a `date`+`time` / `timestamp` key.

Invariants: values are text (`"quoted"`, `'quoted'` or bare; `\\"` inside quotes unescaped); a
key repeated keeps its last value. `split_key_values` is one anchored-by-lookbehind regex with
disjoint alternatives (linear; hostile 64 KB lines are tested). Total: any `str` gives a document
or `ParseError` (Hypothesis-tested).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

from pipeline import ecs
from pipeline.errors import ParseError
from pipeline.records import object_at, set_path
from sensors.parsers.syslog import LineContext, parse_syslog

_PAIR = re.compile(r"""(?<![^ ])([^\s="']+)=(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|([^ ]*))""")
MIN_PAIRS = 2  # fewer key=value pairs than this is not a key=value log
IANA_PROTOCOLS = {"1": "icmp", "2": "igmp", "6": "tcp", "17": "udp", "41": "ipv6", "47": "gre", "50": "esp",
                  "51": "ah", "58": "ipv6-icmp", "89": "ospf", "132": "sctp"}
# Sessions a policy let through and that then ended (close, timeout, server-rst, client-rst) are
# allowed, as in Elastic's pipeline; only these say the firewall refused the traffic.
DENY_ACTIONS = frozenset({"deny", "denied", "block", "blocked", "drop", "dropped", "reject", "rejected",
                          "fail", "failed"})

# ECS destination of each FortiGate key whose value is copied as text / as an integer.
_FORTI_TEXT = {"srcintf": "observer.ingress.interface.name", "dstintf": "observer.egress.interface.name",
               "devname": "observer.hostname", "devid": "observer.serial_number", "level": "log.level",
               "logid": "event.code", "msg": ecs.MESSAGE, "policyname": "rule.name",
               "srcmac": "source.mac", "dstmac": "destination.mac", "user": "source.user.name",
               "srccountry": "source.geo.country_name", "dstcountry": "destination.geo.country_name",
               "hostname": "url.domain", "url": "url.path", "attack": "rule.name"}
_FORTI_INT = {"sentbyte": "source.bytes", "rcvdbyte": "destination.bytes", "sentpkt": "source.packets",
              "rcvdpkt": "destination.packets"}

# The tables as (key, parent objects, leaf name): `set_path`'s walk without its call and cache
# lookup per pair, same keys in the same order (a third of the FortiGate parse, cProfile).
_FORTI_TEXT_PLAN = tuple((key, tuple(field.split(".")[:-1]), field.rpartition(".")[2])
                         for key, field in _FORTI_TEXT.items())
_FORTI_INT_PLAN = tuple((key, tuple(field.split(".")[:-1]), field.rpartition(".")[2])
                        for key, field in _FORTI_INT.items())

# Generic key spellings (compared in lower case: iptables writes SRC=, DST=, SPT=) -> ECS field.
_KV_ALIASES: dict[str, str] = {
    **dict.fromkeys(("src", "srcip", "src_ip", "sip", "source", "source_ip"), "source.address"),
    **dict.fromkeys(("dst", "dstip", "dst_ip", "dip", "destination", "dest_ip"), "destination.address"),
    **dict.fromkeys(("spt", "sport", "srcport", "src_port", "source_port"), "source.port"),
    **dict.fromkeys(("dpt", "dport", "dstport", "dst_port", "dest_port", "destination_port"), "destination.port"),
    **dict.fromkeys(("proto", "protocol", "transport"), "network.transport"),
    **dict.fromkeys(("action", "act", "disposition"), "event.action"),
    **dict.fromkeys(("rule", "rule_id", "ruleid", "policyid", "policy_id"), "rule.id"),
    **dict.fromkeys(("user", "username", "usr", "suser"), "source.user.name"),
    **dict.fromkeys(("msg", "message"), ecs.MESSAGE),
    **dict.fromkeys(("in", "inif", "in_if", "srcintf"), "observer.ingress.interface.name"),
    **dict.fromkeys(("out", "outif", "out_if", "dstintf"), "observer.egress.interface.name"),
}


def split_key_values(text: str) -> dict[str, str]:
    r"""`a=1 b="x y" c='z'` -> {"a": "1", "b": "x y", "c": "z"}; text without `=` is skipped.

    A key starts the text or follows a space. A quoted value ends at its closing quote (`\"` /
    `\'` inside are unescaped); an unquoted one, or one whose quote is never closed, at the next
    space. One `findall` (28 µs for a 25-pair FortiGate line against 44 µs for a `str.find`
    loop, timeit on this machine); linear: a quoted scan stops at the next quote, and a key scan
    at the next space or `=`, and keys are only tried after a space.
    """
    pairs: dict[str, str] = {}
    for key, double, single, bare in _PAIR.findall(text):
        if double:
            pairs[key] = double.replace('\\"', '"') if "\\" in double else double
        elif single:
            pairs[key] = single.replace("\\'", "'") if "\\" in single else single
        else:
            pairs[key] = bare
    return pairs


def parse_fortigate_line(line: str, ctx: LineContext) -> dict[str, Any]:
    """The "fortigate" format: a FortiOS key=value log line, dataset `fortinet.firewall`."""
    payload = _payload(line, "date=")
    if payload is None:
        raise ParseError("not a FortiGate log: expected date=... time=... key=value pairs")
    pairs = split_key_values(payload)
    doc: dict[str, Any] = {ecs.TIMESTAMP: _forti_time(pairs, ctx.tz)}
    _set_event(doc, "fortinet", "fortinet.firewall")
    set_path(doc, "fortinet.firewall", pairs)
    set_path(doc, "observer.vendor", "Fortinet")
    set_path(doc, "observer.product", "FortiGate")
    _set_endpoint(doc, "source", pairs.get("srcip"), pairs.get("srcport"))
    _set_endpoint(doc, "destination", pairs.get("dstip"), pairs.get("dstport"))
    for key, parents, leaf in _FORTI_TEXT_PLAN:
        value = pairs.get(key)
        if value and not (key.endswith("country") and value == "Reserved"):  # private range
            object_at(doc, *parents)[leaf] = value
    for key, parents, leaf in _FORTI_INT_PLAN:
        value = pairs.get(key)
        if _is_count(value):
            object_at(doc, *parents)[leaf] = int(value or 0)
    if _is_count(pairs.get("duration")):
        set_path(doc, "event.duration", int(pairs["duration"]) * 1_000_000_000)  # ECS: nanoseconds
    if pairs.get("proto"):
        _set_transport(doc, pairs["proto"])
    if pairs.get("service"):
        set_path(doc, "network.protocol", pairs["service"].lower())
    if pairs.get("policyid"):
        set_path(doc, "rule.id", pairs["policyid"])
    _set_action(doc, pairs.get("action") or pairs.get("utmaction"))
    return doc


def parse_kv_firewall_line(line: str, ctx: LineContext) -> dict[str, Any]:
    """The "kv_firewall" format: a generic key=value firewall line, dataset `kv_firewall.log`."""
    timestamp: datetime | None = None
    payload = line
    try:
        record = parse_syslog(line, tz=ctx.tz, reference=ctx.reference)
        timestamp, payload = record.timestamp, record.message
    except ParseError:
        pass
    pairs = split_key_values(payload)
    if len(pairs) < MIN_PAIRS and payload is not line:  # the header took a pair (`<time> a=1 b=2`)
        pairs = split_key_values(line)
    if len(pairs) < MIN_PAIRS:
        raise ParseError(f"not a key=value log: fewer than {MIN_PAIRS} key=value pairs")
    timestamp = timestamp or _kv_time(pairs, ctx.tz)
    doc: dict[str, Any] = {ecs.TIMESTAMP: timestamp}
    _set_event(doc, "kv_firewall", "kv_firewall.log")
    set_path(doc, "kv", pairs)
    found = {field: value for key, value in pairs.items() if (field := _KV_ALIASES.get(key.lower())) and value}
    _set_endpoint(doc, "source", found.get("source.address"), found.get("source.port"))
    _set_endpoint(doc, "destination", found.get("destination.address"), found.get("destination.port"))
    for field in ("rule.id", "source.user.name", ecs.MESSAGE, "observer.ingress.interface.name",
                  "observer.egress.interface.name"):
        if field in found:
            set_path(doc, field, found[field])
    if "network.transport" in found:
        _set_transport(doc, found["network.transport"])
    _set_action(doc, found.get("event.action"))
    return doc


def _payload(line: str, first_key: str) -> str | None:
    """The key=value part of a line: from `first_key` at the start or after a space."""
    if line.startswith(first_key):
        return line
    at = line.find(" " + first_key)
    if at < 0:
        at = line.find(">" + first_key)  # `<189>date=...`: a PRI and no header
    return None if at < 0 else line[at + 1:]


def _set_event(doc: dict[str, Any], module: str, dataset: str) -> None:
    doc["event"] = {"kind": "event", "module": module, "dataset": dataset, "category": ["network"]}


def _set_action(doc: dict[str, Any], action: str | None) -> None:
    if not action:
        set_path(doc, ecs.EVENT_TYPE, ["connection"])
        return
    denied = action.lower() in DENY_ACTIONS
    set_path(doc, ecs.EVENT_ACTION, action)
    set_path(doc, ecs.EVENT_OUTCOME, "failure" if denied else "success")
    set_path(doc, ecs.EVENT_TYPE, ["connection", "denied"] if denied else ["connection", "allowed"])


def _set_transport(doc: dict[str, Any], proto: str) -> None:
    """A protocol number -> `network.iana_number` (+ name); a name -> `network.transport`."""
    if proto.isascii() and proto.isdigit():
        set_path(doc, "network.iana_number", proto)
        if proto in IANA_PROTOCOLS:
            set_path(doc, "network.transport", IANA_PROTOCOLS[proto])
    else:
        set_path(doc, "network.transport", proto.lower())


def _set_endpoint(doc: dict[str, Any], side: str, address: str | None, port: str | None) -> None:
    """`<side>.address|ip|port` set as one object (set_path per field cost a fifth of the parse)."""
    endpoint: dict[str, Any] = {}
    if address:
        endpoint["address"] = address
        ip = normalised_ip(address)
        if ip is not None:
            endpoint["ip"] = ip
            related = doc.setdefault("related", {}).setdefault("ip", [])
            if ip not in related:
                related.append(ip)
    if _is_count(port) and int(port or 0) <= 65535:
        endpoint["port"] = int(port or 0)
    if endpoint:
        doc.setdefault(side, {}).update(endpoint)


def _is_count(value: str | None) -> bool:
    return value is not None and 0 < len(value) <= 18 and value.isascii() and value.isdigit()


@functools.lru_cache(maxsize=4096)
def normalised_ip(address: str) -> str | None:
    """The canonical text of an IP address, or None (cached: `ipaddress` costs 3-10 µs a call)."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def _forti_time(pairs: dict[str, str], tz: tzinfo) -> datetime:
    """`date=2019-05-10 time=11:50:48 [tz="+0700"]`; no `tz` key: the configured zone."""
    return _forti_clock(pairs.get("date", ""), pairs.get("time", ""), pairs.get("tz", ""), tz)


@functools.lru_cache(maxsize=1024)
def _forti_clock(date: str, time: str, zone: str, tz: tzinfo) -> datetime:
    """Cached: `strptime` costs 18 µs here, and a firewall logs hundreds of lines a second. The
    exact layout (`yyyy-mm-dd`, `hh:mm:ss`, `+hhmm`) is read by slicing, the rest by `strptime`:
    a firewall's seconds rarely repeat within the cache, so misses were 6 % of the log sensor's
    CPU (bench/sensor.py); both give the same time or error."""
    try:
        numbers = _clock_numbers(date, time, zone)
        if numbers is not None:
            year, month, day, hour, minute, second, offset = numbers
            zone_info = tz if offset is None else timezone(timedelta(minutes=offset))
            return datetime(year, month, day, hour, minute, second, tzinfo=zone_info).astimezone(UTC)
        if zone:
            return datetime.strptime(f"{date} {time} {zone}", "%Y-%m-%d %H:%M:%S %z").astimezone(UTC)
        return datetime.strptime(f"{date} {time}", "%Y-%m-%d %H:%M:%S").replace(tzinfo=tz).astimezone(UTC)
    except (ValueError, OverflowError) as e:
        raise ParseError(f"FortiGate time: not date=yyyy-mm-dd time=hh:mm:ss: {date!r} {time!r}") from e


def _clock_numbers(date: str, time: str, zone: str) -> tuple[int, int, int, int, int, int, int | None] | None:
    """(year, month, day, hour, minute, second, offset in minutes or None) of exactly
    `yyyy-mm-dd`, `hh:mm:ss` and an empty or `+hhmm` zone in ASCII digits; else None."""
    if len(date) != 10 or date[4] != "-" or date[7] != "-" or len(time) != 8 or time[2] != ":" or time[5] != ":":
        return None
    digits = date[0:4] + date[5:7] + date[8:10] + time[0:2] + time[3:5] + time[6:8]
    offset = None
    if zone:
        if len(zone) != 5 or zone[0] not in "+-" or zone[3] not in "012345":
            return None
        digits += zone[1:]
        offset = int(zone[1:3]) * 60 + int(zone[3:5])
        offset = -offset if zone[0] == "-" else offset
    if not (digits.isascii() and digits.isdigit()):
        return None
    return (int(date[0:4]), int(date[5:7]), int(date[8:10]), int(time[0:2]), int(time[3:5]), int(time[6:8]),
            offset)


def _kv_time(pairs: dict[str, str], tz: tzinfo) -> datetime:
    """`date`+`time`, or an ISO 8601 `timestamp`/`time`/`ts`; a time without offset is in `tz`."""
    candidates = [f"{pairs['date']}T{pairs['time']}"] if "date" in pairs and "time" in pairs else []
    candidates += [pairs[k] for k in ("timestamp", "time", "ts", "datetime") if k in pairs]
    for text in candidates:
        try:
            parsed = datetime.fromisoformat(text.replace(" ", "T", 1))
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).astimezone(UTC)
        except (ValueError, OverflowError):
            continue
    raise ParseError("key=value log: no time (no syslog header, no date/time or timestamp key)")
