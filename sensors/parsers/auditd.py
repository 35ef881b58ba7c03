"""Linux audit records (audit.log) -> ECS documents, as Filebeat's `auditd/log` fileset makes them.

Stage: sensors, parse step. In: one record, `type=T msg=audit(EPOCH.MS:SERIAL): k=v k=v ...`,
bare or after a syslog header (audisp-syslog, `node=host type=...`). Out: a nested ECS document
with `@timestamp` (aware UTC, from EPOCH.MS), no tenant or `event.id` (dataset `auditd.log`);
`ParseError` for anything else.

Mapping (Elastic's auditd log pipeline): `auditd.log.record_type` (T), `auditd.log.sequence`
(SERIAL, a number), every other pair at `auditd.log.<key>` as text, and the pairs of a nested
`msg='...'` (user-space records) flattened there too, as Filebeat does; `event.action` is T
lower-cased; `auid` -> `user.audit.id`, `uid` -> `user.id`, `euid` -> `user.effective.id`, `gid`
-> `group.id`, and the enriched names (`AUID="alice"`, `UID=`, `EUID=`, after the 0x1d separator
that auditd 2.6+ writes) -> `user.audit.name`, `user.name`, `user.effective.name`; `acct` ->
`user.name` when no `UID` name; `pid` / `ppid` / `exe` / `comm` -> `process.pid`,
`process.parent.pid`, `process.executable`, `process.name`; `addr` / `hostname` -> `source.*`;
`res` (success/failed) or `success` (yes/no) -> `event.outcome`; the names -> `related.user`.
An unset id (`4294967295`, -1) and `?` are left out of the ECS copies (kept under `auditd.log`).
Beyond Filebeat: `event.category` / `event.type` for common record types (`CATEGORIES`: logins,
sessions, user and group management, EXECVE, services, configuration changes).

Invariants: values that auditd writes hex-encoded (an unquoted even-length hex string for `exe`,
`comm`, `cwd`, `name`, `proctitle`, `cmd`, `acct`, `data`, and EXECVE's `a0`, `a1`, ...) are
decoded (NULs in `proctitle` become spaces); undecodable hex stays as written. SYSCALL's `a0`-`a3`
are numbers in hex and stay as written. Linear-time scanning (`split_key_values`). Total: any
`str` gives a document or `ParseError` (Hypothesis-tested).
"""

from __future__ import annotations

import binascii
from datetime import UTC, datetime
from typing import Any

from pipeline import ecs
from pipeline.errors import ParseError
from pipeline.records import set_path
from sensors.parsers.firewall import normalised_ip, split_key_values
from sensors.parsers.syslog import LineContext

UNSET_IDS = frozenset({"4294967295", "-1", "?", "unset", ""})
HEX_ENCODED = frozenset({"exe", "comm", "cwd", "name", "proctitle", "cmd", "acct", "data"})
ENRICHED_SEPARATOR = "\x1d"  # auditd's `log_format = ENRICHED` puts the resolved names after it
_ID_FIELDS = {"auid": "user.audit.id", "uid": "user.id", "euid": "user.effective.id", "gid": "group.id"}
_NAME_FIELDS = {"AUID": "user.audit.name", "UID": "user.name", "EUID": "user.effective.name", "GID": "group.name"}
# ECS categorisation of common record types (ours, after ECS's categorisation guide; Filebeat's
# auditd/log sets none for most): record type -> (event.category, event.type).
CATEGORIES: dict[str, tuple[list[str], list[str]]] = {
    "USER_LOGIN": (["authentication"], ["start"]), "USER_AUTH": (["authentication"], ["info"]),
    "USER_ACCT": (["authentication"], ["info"]), "CRED_ACQ": (["authentication"], ["info"]),
    "USER_START": (["session"], ["start"]), "USER_END": (["session"], ["end"]),
    "USER_LOGOUT": (["session"], ["end"]), "ADD_USER": (["iam"], ["user", "creation"]),
    "DEL_USER": (["iam"], ["user", "deletion"]), "ADD_GROUP": (["iam"], ["group", "creation"]),
    "DEL_GROUP": (["iam"], ["group", "deletion"]), "USER_MGMT": (["iam"], ["user", "change"]),
    "GRP_MGMT": (["iam"], ["group", "change"]), "USER_CHAUTHTOK": (["iam"], ["user", "change"]),
    "EXECVE": (["process"], ["start"]), "USER_CMD": (["process"], ["start"]),
    "SERVICE_START": (["process"], ["start"]), "SERVICE_STOP": (["process"], ["end"]),
    "CONFIG_CHANGE": (["configuration"], ["change"]),
}
_OUTCOMES = {"success": "success", "yes": "success", "1": "success",
             "failed": "failure", "fail": "failure", "no": "failure", "0": "failure"}


def parse_auditd_line(line: str, ctx: LineContext) -> dict[str, Any]:
    """The "auditd" format: one audit record; `ctx` is unused (audit times are epoch seconds)."""
    start = line.find("type=")
    if start < 0 or (start > 0 and line[start - 1] != " "):
        raise ParseError("not an audit record: expected type=... msg=audit(...)")
    record_type, sep, rest = line[start + len("type="):].partition(" msg=audit(")
    stamp, close, body = rest.partition(")")
    if not sep or not close or not record_type or " " in record_type or not body.startswith((":", " :")):
        raise ParseError("not an audit record: expected type=T msg=audit(EPOCH.MS:SERIAL): ")
    body = body.lstrip(" ").removeprefix(":")  # `): ` as written, `) : ` as ausearch -i prints it
    timestamp, serial = _audit_stamp(stamp)
    fields = _fields(body, record_type == "EXECVE")
    doc: dict[str, Any] = {ecs.TIMESTAMP: timestamp, "event": {
        "kind": "event", "module": "auditd", "dataset": "auditd.log", "action": record_type.lower()}}
    if record_type in CATEGORIES:
        doc["event"]["category"], doc["event"]["type"] = (list(v) for v in CATEGORIES[record_type])
    node = split_key_values(line[:start]).get("node") if start else None
    doc["auditd"] = {"log": {**({"node": node} if node else {}), **fields, "record_type": record_type,
                             "sequence": serial}}
    _map_ecs(doc, fields)
    return doc


def _audit_stamp(stamp: str) -> tuple[datetime, int]:
    """`1364481363.243:24287` -> (aware UTC time, serial)."""
    seconds, colon, serial = stamp.partition(":")
    whole, _, millis = seconds.partition(".")
    if not (colon and _is_number(whole) and _is_number(serial) and (not millis or _is_number(millis))):
        raise ParseError(f"audit record: expected msg=audit(EPOCH.MS:SERIAL), got {stamp[:40]!r}")
    try:
        micros = int(millis[:6].ljust(6, "0")) if millis else 0
        return datetime.fromtimestamp(int(whole), UTC).replace(microsecond=micros), int(serial)
    except (ValueError, OverflowError, OSError) as e:
        raise ParseError(f"audit record: time out of range: {whole}") from e


def _is_number(text: str) -> bool:
    return 0 < len(text) <= 18 and text.isascii() and text.isdigit()


def _fields(body: str, is_execve: bool) -> dict[str, str]:
    """The record's pairs, enriched names included, a nested `msg='...'` flattened into them."""
    plain, _, enriched = body.partition(ENRICHED_SEPARATOR)
    fields = split_key_values(plain)
    nested = fields.pop("msg", None)
    if nested is not None:
        inner = split_key_values(nested)
        if inner:
            fields.update(inner)
        else:
            fields["msg"] = nested
    spaced = " " + plain
    for key, value in fields.items():
        if key in HEX_ENCODED or (is_execve and key[:1] == "a" and key[1:].isdigit()):  # EXECVE a0, a1, ...
            fields[key] = _unhex(key, value, spaced)
    if enriched:
        fields.update(split_key_values(enriched))
    return fields


def _unhex(key: str, value: str, spaced_body: str) -> str:
    """Decode a value auditd hex-encoded: it was written unquoted (`exe=2F62696E`)."""
    if len(value) < 2 or len(value) % 2 or f' {key}="' in spaced_body or f" {key}='" in spaced_body:
        return value
    try:
        decoded = binascii.unhexlify(value).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return value
    return decoded.replace("\x00", " ") if key == "proctitle" else decoded


def _map_ecs(doc: dict[str, Any], fields: dict[str, str]) -> None:
    for key, field in _ID_FIELDS.items():
        if fields.get(key, "") not in UNSET_IDS:
            set_path(doc, field, fields[key])
    for key, field in _NAME_FIELDS.items():
        if fields.get(key, "") not in UNSET_IDS:
            set_path(doc, field, fields[key])
    if "UID" not in fields and fields.get("acct", "") not in UNSET_IDS:
        set_path(doc, ecs.USER_NAME, fields["acct"])
    for key, field in (("pid", ecs.PROCESS_PID), ("ppid", "process.parent.pid")):
        if _is_number(fields.get(key, "")):
            set_path(doc, field, int(fields[key]))
    for key, field in (("exe", "process.executable"), ("comm", ecs.PROCESS_NAME), ("cwd", "process.working_directory")):
        if fields.get(key, "") not in ("", "?", "(null)"):
            set_path(doc, field, fields[key])
    _map_address(doc, fields.get("addr", ""), fields.get("hostname", ""))
    outcome = _OUTCOMES.get(fields.get("res", fields.get("success", "")).lower())
    if outcome is not None:
        set_path(doc, ecs.EVENT_OUTCOME, outcome)
    users = list(dict.fromkeys(fields[k] for k in ("UID", "AUID", "EUID") if fields.get(k, "") not in UNSET_IDS))
    if "UID" not in fields and fields.get("acct", "") not in UNSET_IDS:
        users.insert(0, fields["acct"])
    if users:
        set_path(doc, ecs.RELATED_USER, users)


def _map_address(doc: dict[str, Any], addr: str, hostname: str) -> None:
    ip = normalised_ip(addr) if addr not in ("", "?") else None
    if ip is not None:
        set_path(doc, ecs.SOURCE_ADDRESS, addr)
        set_path(doc, ecs.SOURCE_IP, ip)
        set_path(doc, ecs.RELATED_IP, [ip])
    if hostname not in ("", "?") and hostname != addr:
        set_path(doc, ecs.SOURCE_DOMAIN, hostname)
