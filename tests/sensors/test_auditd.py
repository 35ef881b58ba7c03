"""Linux audit records: Filebeat's auditd/log conventions.

The SYSCALL / CWD / PATH / PROCTITLE records of one event (`cat /etc/ssh/sshd_config`, serial
24287) are the example of Red Hat Enterprise Linux's Security Guide, "Understanding Audit Log
Files" (CC BY-SA 3.0), as short excerpts. The user-space and enriched records are written here in
the forms auditd 2.x and 3.x write (`msg='...'`, the 0x1d separator).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pipeline.errors import ParseError
from sensors.parsers import LineContext, parse_auditd_line

CTX = LineContext(tz=UTC, reference=datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
T = datetime(2013, 3, 28, 14, 36, 3, 243000, tzinfo=UTC)
RHEL_SYSCALL = ('type=SYSCALL msg=audit(1364481363.243:24287): arch=c000003e syscall=2 success=no exit=-13 '
                'a0=7fffd19c5592 a1=0 a2=7fffd19c4b50 a3=a items=1 ppid=2686 pid=3538 auid=1000 uid=1000 gid=1000 '
                'euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=1 comm="cat" '
                'exe="/bin/cat" subj=unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023 key="sshd_config"')
RHEL_CWD = 'type=CWD msg=audit(1364481363.243:24287):  cwd="/home/shadowman"'
RHEL_PATH = ('type=PATH msg=audit(1364481363.243:24287): item=0 name="/etc/ssh/sshd_config" inode=409248 '
             'dev=fd:00 mode=0100600 ouid=0 ogid=0 rdev=00:00 obj=system_u:object_r:etc_t:s0  objtype=NORMAL '
             'cap_fp=none cap_fi=none cap_fe=0 cap_fver=0')
RHEL_PROCTITLE = ('type=PROCTITLE msg=audit(1364481363.243:24287) : '
                  'proctitle=636174002F6574632F7373682F737368645F636F6E666967')


def test_rhel_syscall_record() -> None:
    doc = parse_auditd_line(RHEL_SYSCALL, CTX)
    assert doc["@timestamp"] == T
    assert doc["event"] == {"kind": "event", "module": "auditd", "dataset": "auditd.log", "action": "syscall",
                            "outcome": "failure"}
    log = doc["auditd"]["log"]
    assert (log["record_type"], log["sequence"], log["syscall"], log["exit"], log["key"]) == (
        "SYSCALL", 24287, "2", "-13", "sshd_config")
    assert doc["user"] == {"audit": {"id": "1000"}, "id": "1000", "effective": {"id": "1000"}}
    assert doc["group"] == {"id": "1000"}
    assert doc["process"] == {"pid": 3538, "parent": {"pid": 2686}, "executable": "/bin/cat", "name": "cat"}


def test_rhel_cwd_path_and_proctitle() -> None:
    assert parse_auditd_line(RHEL_CWD, CTX)["process"] == {"working_directory": "/home/shadowman"}
    path = parse_auditd_line(RHEL_PATH, CTX)["auditd"]["log"]
    assert (path["name"], path["inode"], path["objtype"]) == ("/etc/ssh/sshd_config", "409248", "NORMAL")
    doc = parse_auditd_line(RHEL_PROCTITLE, CTX)  # ausearch -i's spacing: `(...) : proctitle=`
    assert doc["auditd"]["log"]["proctitle"] == "cat /etc/ssh/sshd_config"
    assert doc["@timestamp"] == T


def test_user_space_login_failure_with_nested_msg() -> None:
    line = ("type=USER_LOGIN msg=audit(1763866800.000:100): pid=2201 uid=0 auid=4294967295 ses=4294967295 "
            "subj=system_u:system_r:sshd_t:s0-s0:c0.c1023 msg='op=login acct=\"root\" exe=\"/usr/sbin/sshd\" "
            "hostname=? addr=203.0.113.7 terminal=sshd res=failed'")
    doc = parse_auditd_line(line, CTX)
    assert doc["@timestamp"] == datetime(2025, 11, 23, 3, 0, tzinfo=UTC)
    assert doc["event"]["action"] == "user_login" and doc["event"]["outcome"] == "failure"
    assert doc["user"] == {"id": "0", "name": "root"}  # auid unset: no user.audit
    assert doc["source"] == {"address": "203.0.113.7", "ip": "203.0.113.7"}
    assert doc["auditd"]["log"]["op"] == "login" and doc["auditd"]["log"]["auid"] == "4294967295"
    assert doc["related"] == {"ip": ["203.0.113.7"], "user": ["root"]}


def test_enriched_names_node_prefix_and_hex_exe() -> None:
    line = ("node=web1 type=EXECVE msg=audit(1364481363.243:24288): argc=2 a0=\"cat\" a1=\"/etc/shadow\" "
            "exe=2F7573722F62696E2F6D7920636174 auid=1000 uid=0\x1dAUID=\"alice\" UID=\"root\"")
    doc = parse_auditd_line(line, CTX)
    assert doc["auditd"]["log"]["node"] == "web1" and doc["auditd"]["log"]["a1"] == "/etc/shadow"
    assert doc["user"] == {"audit": {"id": "1000", "name": "alice"}, "id": "0", "name": "root"}
    assert doc["process"]["executable"] == "/usr/bin/my cat"


def test_categories_execve_hex_arguments_and_related_users() -> None:
    line = ('type=EXECVE msg=audit(1795402800.000:9): argc=3 a0="ls" a1=2D6C61 a2=2F746D702F6D792066696C65'
            '\x1dAUID="alice" UID="root" EUID="root"')
    doc = parse_auditd_line(line, CTX)
    assert (doc["event"]["category"], doc["event"]["type"]) == (["process"], ["start"])
    log = doc["auditd"]["log"]
    assert (log["a0"], log["a1"], log["a2"]) == ("ls", "-la", "/tmp/my file")
    assert doc["related"] == {"user": ["root", "alice"]}
    syscall = parse_auditd_line(RHEL_SYSCALL, CTX)
    assert syscall["auditd"]["log"]["a0"] == "7fffd19c5592" and "category" not in syscall["event"]
    useradd = parse_auditd_line("type=ADD_USER msg=audit(1795402800.000:10): pid=1 uid=0 auid=1000 "
                                "msg='op=adding user id=1001 exe=\"/usr/sbin/useradd\" acct=\"bob\" res=success'", CTX)
    assert (useradd["event"]["category"], useradd["event"]["type"], useradd["event"]["outcome"]) == (
        ["iam"], ["user", "creation"], "success")


def test_after_a_syslog_header_and_success_outcome() -> None:
    line = ("Nov 23 10:00:00 web1 audisp-syslog: type=USER_AUTH msg=audit(1763866800.5:7): pid=1 uid=0 "
            "auid=1000 msg='op=PAM:authentication acct=\"alice\" exe=\"/usr/bin/sudo\" res=success'")
    doc = parse_auditd_line(line, CTX)
    assert doc["event"]["outcome"] == "success" and doc["user"]["name"] == "alice"
    assert doc["@timestamp"] == datetime(2025, 11, 23, 3, 0, 0, 500000, tzinfo=UTC)


@pytest.mark.parametrize("line, reason", [
    ("not a log line", "not an audit record"),
    ("xtype=SYSCALL msg=audit(1.2:3): a=1", "not an audit record"),
    ("type=SYSCALL msg=audit(abc:3): a=1", "EPOCH.MS:SERIAL"),
    ("type=SYSCALL a=1", "not an audit record"),
    ("type=SYSCALL msg=audit(99999999999999:3): a=1", "out of range"),
])
def test_not_audit(line: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_auditd_line(line, CTX)


auditish = st.one_of(st.text(), st.builds(lambda head, rest: head + rest, st.sampled_from([
    "type=SYSCALL msg=audit(", "type=SYSCALL msg=audit(1364481363.243:24287): ",
    "type=USER_LOGIN msg=audit(1.1:1): msg='", "type=X msg=audit(1:1): exe=", "node= type=X msg=audit(1:1):",
    "type=X msg=audit(1:1): proctitle=", "type=X msg=audit(1:1): a=1\x1d",
]), st.text()))


@given(auditish)
@example("type=X msg=audit(1:1): exe=C3")
@example("type=X msg=audit(1:1)")
@example("type=X msg=audit(1:1): pid=99999999999999999999")
def test_any_text_gives_a_document_or_parse_error(line: str) -> None:
    try:
        doc = parse_auditd_line(line, CTX)
    except ParseError as e:
        assert e.reason
        return
    assert doc["@timestamp"].tzinfo is not None


@pytest.mark.parametrize("line", ["type=X msg=audit(1:1): " + "a=" * 30_000,
                                  "type=X msg=audit(1:1): msg='" + "\\'" * 30_000,
                                  "type=" * 12_000])
def test_long_hostile_lines_parse_in_linear_time(line: str) -> None:
    started = time.perf_counter()
    try:
        parse_auditd_line(line, CTX)
    except ParseError:
        pass
    assert time.perf_counter() - started < 0.5
