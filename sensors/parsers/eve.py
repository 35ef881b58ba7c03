"""Suricata EVE JSON records -> ECS documents, as Elastic's `suricata` integration (`suricata.eve`).

Stage: sensors, parse step. In: one line holding one EVE JSON object (alert, flow, dns, http,
tls, fileinfo, and any other event_type). Out: a nested ECS document with `@timestamp` (aware UTC,
from `timestamp`), no tenant or `event.id`; `ParseError` for a line that is not an EVE record
(not JSON, not an object, no `event_type` or `timestamp`).

Mapping (Filebeat's suricata/eve pipeline):
- the whole record stays at `suricata.eve.*` (JSON types as Suricata wrote them), minus the
  addresses and `timestamp`, which move to ECS;
- `src_ip`/`src_port`/`dest_ip`/`dest_port` -> source/destination, `proto` -> `network.transport`
  (lower case), `app_proto` -> `network.protocol`, `community_id` -> `network.community_id`,
  `flow_id` -> kept, `in_iface` -> `observer.ingress.interface.name`;
- every app-layer section present is mapped (an alert carries its transaction's http, tls, dns,
  flow, fileinfo sections); `event.category` / `event.type` follow the event_type;
- alert: `event.kind` alert, `rule.id` (signature_id, as text), `rule.name` / `message`
  (signature), `rule.category`, `event.severity`, `alert.action` allowed/blocked -> `event.type`
  allowed/denied; every other event_type: `event.kind` event;
- flow: `source.packets|bytes` (to server), `destination.packets|bytes` (to client),
  `network.packets|bytes` (their sums), `event.start` / `event.end`;
- dns: `dns.type` (query/answer), `dns.id`, `dns.question.name|type`, `dns.response_code`,
  `dns.answers` (name, type, data, ttl) from v1 (one answer per record), v2 (`answers` list) and
  v3 (Suricata 8: `queries` list, request/response);
- http: `url.domain`, `url.original` / `url.path` / `url.query`, `http.request.method`,
  `http.response.status_code`, `http.version`, `http.request.referrer`, `user_agent.original`,
  `http.response.body.bytes`;
- tls: `tls.version` / `tls.version_protocol` (from `TLS 1.2`), `tls.client.server_name` (and
  `destination.domain`), `tls.client.ja3`, `tls.client.ja4`, `tls.server.ja3s`,
  `tls.server.subject|issuer`, `tls.server.hash.sha1` (fingerprint, upper case, no colons),
  `tls.server.not_before|not_after`;
- fileinfo: `file.name` (basename of `filename`), `file.path`, `file.size`, `file.hash.*`.

Invariants: fields of the wrong JSON type are left in `suricata.eve` and not copied; a value keeps
the type ECS gives it (ports, bytes: integers; ids: text). Total: any `str` gives a document or
`ParseError` (Hypothesis-tested).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline import ecs
from pipeline.errors import ParseError
from pipeline.records import set_path
from sensors.parsers.firewall import normalised_ip
from sensors.parsers.syslog import LineContext
from sensors.parsers.web import set_url

_MOVED = ("timestamp", "src_ip", "src_port", "dest_ip", "dest_port")
_DNS_TYPES = {"request": "query", "response": "answer"}
_ALERT_TYPES = {"allowed": ["allowed"], "blocked": ["denied"]}
_CATEGORIES: dict[str, tuple[list[str], list[str]]] = {
    "alert": (["network", "intrusion_detection"], ["info"]), "flow": (["network"], ["connection"]),
    "dns": (["network"], ["protocol"]), "http": (["network", "web"], ["access", "protocol"]),
    "tls": (["network"], ["protocol"]), "fileinfo": (["network", "file"], ["info"]),
}


def parse_eve_line(line: str, ctx: LineContext) -> dict[str, Any]:
    """The "eve" format: one Suricata EVE JSON record; `ctx` is unused (EVE times carry a zone)."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise ParseError(f"not JSON: {e}") from e
    if not isinstance(record, dict):
        raise ParseError(f"an EVE record is a JSON object, got {type(record).__name__}")
    event_type, stamp = record.get("event_type"), record.get("timestamp")
    if not isinstance(event_type, str) or not isinstance(stamp, str):
        raise ParseError("not an EVE record: event_type and timestamp (text) expected")
    doc: dict[str, Any] = {
        ecs.TIMESTAMP: _time(stamp, "timestamp"),
        "event": {"kind": "alert" if event_type == "alert" else "event", "module": "suricata",
                  "dataset": "suricata.eve"},
        "suricata": {"eve": {k: v for k, v in record.items() if k not in _MOVED}},
    }
    _set_network(doc, record)
    # Every app-layer section is mapped, not only the event_type's: an alert carries the http,
    # tls, dns, flow or fileinfo metadata of its transaction (suricata-verify records show it).
    for name, handler in _HANDLERS.items():
        section = record.get(name)
        if isinstance(section, dict):
            handler(doc, section)
    if event_type in _CATEGORIES:
        category, kind = _CATEGORIES[event_type]
        set_path(doc, ecs.EVENT_CATEGORY, list(category))  # copies: documents never share a list
        set_path(doc, ecs.EVENT_TYPE, list(kind))
    if event_type == "alert":
        action = record["alert"].get("action") if isinstance(record.get("alert"), dict) else None
        set_path(doc, ecs.EVENT_TYPE, list(_ALERT_TYPES.get(str(action), ["info"])))
    elif event_type == "flow" and isinstance(record.get("flow"), dict) and record["flow"].get("state") == "closed":
        set_path(doc, ecs.EVENT_TYPE, ["connection", "end"])
    return doc


def _time(text: str, field: str) -> datetime:
    """`2009-11-24T21:27:09.534255+0100` -> aware UTC (`fromisoformat` reads `+0100` on 3.11)."""
    try:
        parsed = datetime.fromisoformat(text)
    except (ValueError, OverflowError) as e:
        raise ParseError(f"{field}: not an ISO 8601 time: {text[:40]!r}") from e
    if parsed.tzinfo is None:
        raise ParseError(f"{field}: time has no zone: {text[:40]!r}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError as e:
        raise ParseError(f"{field}: time out of range: {text[:40]!r}") from e


def _text(section: dict[str, Any], key: str) -> str | None:
    value = section.get(key)
    return value if isinstance(value, str) and value else None


def _count(section: dict[str, Any], key: str) -> int | None:
    value = section.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _copy(doc: dict[str, Any], section: dict[str, Any], pairs: tuple[tuple[str, str], ...],
          read: Callable[[dict[str, Any], str], Any]) -> None:
    for key, field in pairs:
        value = read(section, key)
        if value is not None:
            set_path(doc, field, value)


def _set_network(doc: dict[str, Any], record: dict[str, Any]) -> None:
    related: list[str] = []
    for side, ip_key, port_key in (("source", "src_ip", "src_port"), ("destination", "dest_ip", "dest_port")):
        address = _text(record, ip_key)
        if address is not None:
            set_path(doc, f"{side}.address", address)
            ip = normalised_ip(address)
            if ip is not None:
                set_path(doc, f"{side}.ip", ip)
                if ip not in related:
                    related.append(ip)
        port = _count(record, port_key)
        if port is not None and port <= 65535:
            set_path(doc, f"{side}.port", port)
    if related:
        set_path(doc, ecs.RELATED_IP, related)
    for key, field in (("proto", "network.transport"), ("app_proto", "network.protocol")):
        value = _text(record, key)
        if value is not None:
            set_path(doc, field, value.lower())
    _copy(doc, record, (("community_id", "network.community_id"),
                        ("in_iface", "observer.ingress.interface.name")), _text)


def _on_alert(doc: dict[str, Any], alert: dict[str, Any]) -> None:
    signature_id = _count(alert, "signature_id")
    if signature_id is not None:
        set_path(doc, "rule.id", str(signature_id))
    _copy(doc, alert, (("signature", "rule.name"), ("signature", ecs.MESSAGE), ("category", "rule.category")),
          _text)
    _copy(doc, alert, (("severity", ecs.EVENT_SEVERITY),), _count)


def _on_flow(doc: dict[str, Any], flow: dict[str, Any]) -> None:
    _copy(doc, flow, (("pkts_toserver", "source.packets"), ("bytes_toserver", "source.bytes"),
                      ("pkts_toclient", "destination.packets"), ("bytes_toclient", "destination.bytes")), _count)
    for unit in ("pkts", "bytes"):
        to_server, to_client = _count(flow, f"{unit}_toserver"), _count(flow, f"{unit}_toclient")
        if to_server is not None and to_client is not None:
            set_path(doc, f"network.{'packets' if unit == 'pkts' else 'bytes'}", to_server + to_client)
    for key, field in (("start", "event.start"), ("end", "event.end")):
        text = _text(flow, key)
        if text is not None:
            try:
                set_path(doc, field, _time(text, f"flow.{key}"))
            except ParseError:
                pass  # the record's own timestamp already placed it; the text stays in suricata.eve


def _on_dns(doc: dict[str, Any], dns: dict[str, Any]) -> None:
    """EVE dns v1/v2 (`rrname` at the top, type query/answer) and v3 (Suricata 8: `queries` list,
    type request/response, mapped to ECS's query/answer)."""
    kind = _text(dns, "type")
    if kind is not None:
        set_path(doc, "dns.type", _DNS_TYPES.get(kind, kind))
    question = dns
    for key in ("queries", "query"):  # v3 records, and the dns metadata of v2/v3 alerts
        listed = dns.get(key)
        if _text(dns, "rrname") is None and isinstance(listed, list) and listed and isinstance(listed[0], dict):
            question = listed[0]
            break
    _copy(doc, question, (("rrname", "dns.question.name"), ("rrtype", "dns.question.type")), _text)
    _copy(doc, dns, (("rcode", "dns.response_code"),), _text)
    if _count(dns, "id") is not None:
        set_path(doc, "dns.id", str(dns["id"]))
    answers = [_dns_answer(a) for a in dns.get("answers", []) if isinstance(a, dict)] \
        if isinstance(dns.get("answers"), list) else []
    if kind == "answer" and "rdata" in dns:  # EVE v1: one answer per record
        answers.append(_dns_answer(dns))
    answers = [a for a in answers if a]
    if answers:
        set_path(doc, "dns.answers", answers)


def _dns_answer(answer: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, name in (("rrname", "name"), ("rrtype", "type"), ("rdata", "data")):
        if _text(answer, key) is not None:
            out[name] = answer[key]
    if _count(answer, "ttl") is not None:
        out["ttl"] = answer["ttl"]
    return out


def _on_http(doc: dict[str, Any], http: dict[str, Any]) -> None:
    url = _text(http, "url")
    if url is not None:
        set_url(doc, url)
    _copy(doc, http, (("hostname", "url.domain"), ("http_method", "http.request.method"),
                      ("http_refer", "http.request.referrer"), ("http_user_agent", "user_agent.original")), _text)
    _copy(doc, http, (("status", "http.response.status_code"), ("length", "http.response.body.bytes")), _count)
    protocol = _text(http, "protocol")
    if protocol is not None:
        set_path(doc, "http.version", protocol.removeprefix("HTTP/"))


def _on_tls(doc: dict[str, Any], tls: dict[str, Any]) -> None:
    version = _text(tls, "version")
    if version is not None:
        protocol, _, number = version.partition(" ")
        if number:
            set_path(doc, "tls.version_protocol", protocol.lower())
            set_path(doc, "tls.version", number)
    _copy(doc, tls, (("sni", "tls.client.server_name"), ("sni", "destination.domain"),
                     ("subject", "tls.server.subject"), ("issuerdn", "tls.server.issuer"),
                     ("ja4", "tls.client.ja4")), _text)
    for key, field in (("ja3", "tls.client.ja3"), ("ja3s", "tls.server.ja3s")):
        section = tls.get(key)
        if isinstance(section, dict) and _text(section, "hash") is not None:
            set_path(doc, field, section["hash"])
    fingerprint = _text(tls, "fingerprint")
    if fingerprint is not None:
        set_path(doc, "tls.server.hash.sha1", fingerprint.replace(":", "").upper())
    for key, field in (("notbefore", "tls.server.not_before"), ("notafter", "tls.server.not_after")):
        text = _text(tls, key)
        if text is not None:
            try:
                set_path(doc, field, datetime.fromisoformat(text).replace(tzinfo=UTC))  # Suricata: UTC
            except (ValueError, OverflowError):
                pass


def _on_fileinfo(doc: dict[str, Any], fileinfo: dict[str, Any]) -> None:
    filename = _text(fileinfo, "filename")
    if filename is not None:
        set_path(doc, "file.path", filename)
        set_path(doc, "file.name", filename.rpartition("/")[2])
    _copy(doc, fileinfo, (("size", "file.size"),), _count)
    _copy(doc, fileinfo, (("md5", "file.hash.md5"), ("sha1", "file.hash.sha1"), ("sha256", "file.hash.sha256")), _text)


_HANDLERS: dict[str, Callable[[dict[str, Any], dict[str, Any]], None]] = {
    "alert": _on_alert, "flow": _on_flow, "dns": _on_dns, "http": _on_http, "tls": _on_tls,
    "fileinfo": _on_fileinfo,
}
