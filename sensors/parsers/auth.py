"""Auth log lines (auth.log, secure) -> ECS documents, as Filebeat's `system/auth` module makes them.

Stage: sensors, second parse step. In: a `SyslogRecord`. Out: a nested ECS document without
`@timestamp` or tenant (`parse_auth_line`, the registry's "auth" format, adds `@timestamp`).

What is recognised (the field conventions are the Elastic `system` integration's auth pipeline):
- sshd (also OpenSSH 9.8+'s `sshd-session`): `Accepted|Failed <method> for [invalid user ]X from
  A port N ssh2[: sig]` -> `event.action` ssh_login, `event.type` ["info"], outcome success
  (category authentication+session) or failure (authentication); `Invalid|Illegal user X from A
  [port N]` -> ssh_login failure; `Did not receive identification string from A`; and, beyond
  Filebeat, the disconnect lines (`Connection closed by`, `Disconnected from`, `Connection reset
  by`, `Received disconnect from`) -> category network, type end, action ssh_disconnect, no outcome.
- PAM, both `pam_unix(sshd:auth): ...` and old Red Hat `sshd(pam_unix)[pid]: ...`: authentication
  failure (action authentication_failure, outcome failure, `rhost` -> source, `user` -> user.name),
  session opened/closed (category session, action logged-on/logged-off), password changed.
- sudo: `alice : [error ; ]TTY=.. ; PWD=.. ; USER=root ; COMMAND=..` -> user.name, user.effective.name,
  `system.auth.sudo.*`, category process, type start; an error (`user NOT in sudoers`) adds outcome
  failure (our addition: Filebeat keeps only the error text).
- useradd/groupadd/userdel/groupdel/usermod/groupmod: category iam, type user|group +
  creation|deletion|change, outcome success unless the message says "fail".

Invariants:
- Total: every record gives a document; lines of other programs (cron, kernel, ...) are not errors,
  they keep the generic `system.syslog` document. Auth programs' lines are `system.auth`, classified
  or not.
- `source.address` is what the log said; `source.ip` is set when it is an IP address (v4 or v6),
  else `source.domain`. `related.ip` / `related.user` list the IPs and users, once each.
- Linear-time patterns only (see `sensors.parsers.syslog`), tried after a cheap prefix test.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable
from typing import Any

from pipeline import ecs
from pipeline.records import object_at, set_path
from sensors.parsers.syslog import LineContext, SyslogRecord, parse_syslog, program_name, syslog_document

# ECS names not yet in pipeline/ecs.py (to move there), then Filebeat's own `system.auth.*`.
USER_ID = "user.id"
GROUP_ID = "group.id"
GROUP_NAME = "group.name"
SSH_EVENT = "system.auth.ssh.event"
SSH_METHOD = "system.auth.ssh.method"
SSH_SIGNATURE = "system.auth.ssh.signature"
SSH_DROPPED_IP = "system.auth.ssh.dropped_ip"
SUDO_PREFIX = "system.auth.sudo."
USERADD_PREFIX = "system.auth.useradd."

SSHD_PROGRAMS = frozenset({"sshd", "sshd-session", "sshd-auth"})
IAM_PROGRAMS: dict[str, tuple[str, str]] = {
    "useradd": ("user", "creation"), "userdel": ("user", "deletion"), "usermod": ("user", "change"),
    "groupadd": ("group", "creation"), "groupdel": ("group", "deletion"), "groupmod": ("group", "change"),
}
AUTH_PROGRAMS = SSHD_PROGRAMS | IAM_PROGRAMS.keys() | {
    "sudo", "su", "login", "passwd", "chpasswd", "chage", "gpasswd", "newgrp", "runuser",
    "unix_chkpwd", "systemd-logind", "pkexec", "polkitd",
}

_SSH_LOGIN = re.compile(
    r"(Accepted|Failed|Postponed|Partial) (\S+) for (invalid user )?(.*?) from (\S+) port ([0-9]{1,5})"
    r"(?: ssh2)?(?:: (.*))?", re.ASCII)
_SSH_INVALID = re.compile(r"(Invalid|Illegal) user (.*?) from (\S+)(?: port ([0-9]{1,5}))?", re.ASCII)
_SSH_CLOSED = re.compile(
    r"(Connection closed|Disconnected|Connection reset) (?:by|from)"
    r"(?: (?:authenticating |invalid )?user (.*?))? (\S+) port ([0-9]{1,5})(?: \[preauth\])?", re.ASCII)
_SSH_RECEIVED_DISCONNECT = re.compile(
    r"(Received disconnect) from (\S+) port ([0-9]{1,5}):[0-9]{1,5}: .*", re.ASCII)
_SSH_NO_IDENT = re.compile(r"Did not receive identification string from (\S+)(?: port ([0-9]{1,5}))?",
                           re.ASCII)
_PAM_PREFIX = re.compile(r"(pam_[A-Za-z0-9_]+)\([^():]*:([A-Za-z_]+)\): ?")
_QUOTED_USER = re.compile(r"user '([^']*)'")
_QUOTED_GROUP = re.compile(r"group '([^']*)'")


def parse_auth_line(line: str, ctx: LineContext) -> dict[str, Any]:
    """The "auth" format: a syslog line, classified when an auth program wrote it."""
    record = parse_syslog(line, tz=ctx.tz, reference=ctx.reference)
    doc = parse_auth(record)
    doc[ecs.TIMESTAMP] = record.timestamp
    return doc


def parse_auth(record: SyslogRecord) -> dict[str, Any]:
    """The ECS document of one auth-log record; never raises for content."""
    doc = syslog_document(record)
    program, pam_module = program_name(record.appname or "")
    message = record.message
    if not (program in AUTH_PROGRAMS or pam_module or message.startswith("pam_")):
        return doc
    doc["event"]["dataset"] = "system.auth"  # `syslog_document` made the event object
    _classify(doc, program, message)
    return doc


def _classify(doc: dict[str, Any], program: str, message: str) -> None:
    if program in SSHD_PROGRAMS and _classify_sshd(doc, message):
        return
    if program == "sudo" and _classify_sudo(doc, message):
        return
    if program in IAM_PROGRAMS:
        _classify_iam(doc, program, message)
        return
    _classify_pam(doc, message)


def _categorise(doc: dict[str, Any], category: list[str], kind: list[str], action: str | None = None,
                outcome: str | None = None) -> None:
    event = doc["event"]  # `syslog_document` made it; plain dict writes (bench/sensor.py, see there)
    event["category"] = category
    event["type"] = kind
    if action is not None:
        event["action"] = action
    if outcome is not None:
        event["outcome"] = outcome


def _set_user(doc: dict[str, Any], name: str | None, field: str = ecs.USER_NAME) -> None:
    """Set a user name field (quotes and blanks trimmed; empty names are not set) and relate it."""
    name = (name or "").strip().strip("'\"")
    if name:
        set_path(doc, field, name)
        _relate(doc, "user", name)


def _set_source(doc: dict[str, Any], address: str, port: str | None = None) -> None:
    """`source.address`, and `source.ip` if it is an IP address, else `source.domain`."""
    source = object_at(doc, "source")
    source["address"] = address
    ip = _normalised_ip(address)
    if ip is None:
        source["domain"] = address
    else:
        source["ip"] = ip
        _relate(doc, "ip", ip)
    if port is not None and int(port) <= 65535:
        source["port"] = int(port)


@functools.lru_cache(maxsize=4096)
def _normalised_ip(address: str) -> str | None:
    """The canonical text of an IP address, or None. Cached: `ipaddress` takes 3 µs (v4) to 10 µs
    (v6) a call, and an attack repeats one address in thousands of lines."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def _relate(doc: dict[str, Any], key: str, value: str) -> None:
    """Append `value` to the list `related.<key>`, once."""
    related = object_at(doc, "related")
    values = related.get(key)
    if values is None:
        related[key] = [value]
    elif value not in values:
        values.append(value)


def _key_values(items: list[str]) -> dict[str, str]:
    """`["a=1", "b="]` -> `{"a": "1", "b": ""}`; items without `=` are skipped."""
    pairs = (item.partition("=") for item in items)
    return {key: value for key, eq, value in pairs if eq}


# --- sshd ---------------------------------------------------------------------------------------

def _on_ssh_login(doc: dict[str, Any], match: re.Match[str]) -> None:
    event, method, _invalid, user, address, port, signature = match.groups()
    set_path(doc, SSH_EVENT, event)
    set_path(doc, SSH_METHOD, method)
    if signature:
        set_path(doc, SSH_SIGNATURE, signature)
    _set_user(doc, user)
    _set_source(doc, address, port)
    if event == "Accepted":
        _categorise(doc, ["authentication", "session"], ["info"], "ssh_login", "success")
    elif event == "Failed":
        _categorise(doc, ["authentication"], ["info"], "ssh_login", "failure")


def _on_ssh_invalid_user(doc: dict[str, Any], match: re.Match[str]) -> None:
    event, user, address, port = match.groups()
    set_path(doc, SSH_EVENT, "Invalid")  # `Illegal` is OpenSSH < 3.8's word for it
    _set_user(doc, user)
    _set_source(doc, address, port)
    _categorise(doc, ["authentication"], ["info"], "ssh_login", "failure")


def _on_ssh_disconnect(doc: dict[str, Any], match: re.Match[str]) -> None:
    event, user, address, port = match.groups()
    set_path(doc, SSH_EVENT, event)
    _set_user(doc, user)
    _set_source(doc, address, port)
    _categorise(doc, ["network"], ["end"], "ssh_disconnect")


def _on_ssh_received_disconnect(doc: dict[str, Any], match: re.Match[str]) -> None:
    event, address, port = match.groups()
    set_path(doc, SSH_EVENT, event)
    _set_source(doc, address, port)
    _categorise(doc, ["network"], ["end"], "ssh_disconnect")


def _on_ssh_no_identification(doc: dict[str, Any], match: re.Match[str]) -> None:
    address, port = match.groups()
    set_path(doc, SSH_DROPPED_IP, address)
    _set_source(doc, address, port)


_SSHD_RULES: tuple[tuple[tuple[str, ...], re.Pattern[str], Callable[[dict[str, Any], re.Match[str]], None]],
                   ...] = (
    (("Accepted ", "Failed ", "Postponed ", "Partial "), _SSH_LOGIN, _on_ssh_login),
    (("Invalid user ", "Illegal user "), _SSH_INVALID, _on_ssh_invalid_user),
    (("Connection closed ", "Disconnected ", "Connection reset "), _SSH_CLOSED, _on_ssh_disconnect),
    (("Received disconnect ",), _SSH_RECEIVED_DISCONNECT, _on_ssh_received_disconnect),
    (("Did not receive ",), _SSH_NO_IDENT, _on_ssh_no_identification),
)


def _classify_sshd(doc: dict[str, Any], message: str) -> bool:
    """Apply the first sshd rule whose prefix and pattern fit; False when none does."""
    for prefixes, pattern, handle in _SSHD_RULES:
        if message.startswith(prefixes):
            match = pattern.fullmatch(message)
            if match is not None:
                handle(doc, match)
                return True
    return False


# --- sudo, user and group management ------------------------------------------------------------

_SUDO_KEYS = frozenset({"TTY", "PWD", "USER", "GROUP", "TSID", "ENV"})


def _classify_sudo(doc: dict[str, Any], message: str) -> bool:
    """`alice : [error ; ]TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/ls`."""
    user, sep, rest = message.partition(" : ")
    command_at = rest.find("COMMAND=")
    if not sep or command_at < 0 or not user.strip() or " " in user.strip():
        return False
    fields: dict[str, str] = {}
    error = None
    for item in rest[:command_at].split(" ; "):
        key, eq, value = item.partition("=")
        if eq and key in _SUDO_KEYS:
            fields[key.lower()] = value
        elif item.strip() and error is None:
            error = item.strip()
    if "user" not in fields:
        return False
    fields["command"] = rest[command_at + len("COMMAND="):]
    for key, value in fields.items():
        set_path(doc, SUDO_PREFIX + key, value)
    _set_user(doc, user)
    _set_user(doc, fields["user"], ecs.USER_EFFECTIVE_NAME)
    _categorise(doc, ["process"], ["start"])
    if error is not None:
        set_path(doc, SUDO_PREFIX + "error", error)
        set_path(doc, ecs.EVENT_OUTCOME, "failure")
    return True


def _classify_iam(doc: dict[str, Any], program: str, message: str) -> None:
    """`new user: name=x, UID=1, GID=1, home=/h, shell=/s`, `new group: name=g, GID=1`, or
    a message naming `user 'x'` / `group 'g'`."""
    kind, change = IAM_PROGRAMS[program]
    _categorise(doc, ["iam"], [kind, change], None, "failure" if "fail" in message else "success")
    head, sep, body = message.partition(": ")
    if sep and head in ("new user", "new group"):
        values = _key_values(body.split(", "))
        _set_user(doc, values.get("name") if head == "new user" else None)
        if head == "new group" and values.get("name"):
            set_path(doc, GROUP_NAME, values["name"])
        for key, field in (("UID", USER_ID), ("GID", GROUP_ID), ("home", USERADD_PREFIX + "home"),
                           ("shell", USERADD_PREFIX + "shell")):
            if values.get(key):
                set_path(doc, field, values[key])
        return
    user, group = _QUOTED_USER.search(message), _QUOTED_GROUP.search(message)
    _set_user(doc, user.group(1) if user else None)
    if group is not None and group.group(1):
        set_path(doc, GROUP_NAME, group.group(1))


# --- PAM ----------------------------------------------------------------------------------------

def _classify_pam(doc: dict[str, Any], message: str) -> None:
    """PAM lines with a `pam_x(service:kind): ` prefix or (Red Hat `sshd(pam_unix)`) without."""
    prefix = _PAM_PREFIX.match(message)
    kind, body = (prefix.group(2), message[prefix.end():]) if prefix else (None, message)
    if body.startswith("session opened for user "):
        _on_session(doc, body.removeprefix("session opened for user "))
        _categorise(doc, ["session"], ["start"], "logged-on")
    elif body.startswith("session closed for user "):
        _on_session(doc, body.removeprefix("session closed for user "))
        _categorise(doc, ["session"], ["end"], "logged-off")
    elif "authentication failure" in body:
        _on_pam_failure(doc, body)
        _categorise(doc, ["authentication"], ["info"], "authentication_failure", "failure")
    elif kind == "chauthtok" and body.startswith("password changed for "):
        _set_user(doc, body.removeprefix("password changed for "))
        _set_user(doc, body.removeprefix("password changed for "), ecs.USER_TARGET_NAME)
        _categorise(doc, ["iam"], ["change"], "password-changed", "success")
    elif kind == "auth":
        _categorise(doc, ["authentication"], ["info"])


def _without_uid(name: str) -> str:
    """`root(uid=0)` -> `root`, `(uid=0)` -> `` (Linux-PAM 1.5 appends the uid)."""
    at = name.rfind("(uid=")
    return name[:at] if at >= 0 and name.endswith(")") else name


def _on_session(doc: dict[str, Any], rest: str) -> None:
    """`X[(uid=N)] [by Y[(uid=M)]]`: Y, when named, is who opened a session as X (su, sudo)."""
    target, _, by = rest.partition(" by ")
    target, by = _without_uid(target.strip()), _without_uid(by.strip())
    if by:
        _set_user(doc, by)
        _set_user(doc, target, ecs.USER_EFFECTIVE_NAME)
    else:
        _set_user(doc, target)


def _on_pam_failure(doc: dict[str, Any], body: str) -> None:
    """`authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.77  user=root`."""
    values = _key_values(body.partition(";")[2].split())
    if values.get("rhost"):
        _set_source(doc, values["rhost"])
    _set_user(doc, values.get("user"))
