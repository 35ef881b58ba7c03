"""Synthetic auth, flow and DNS ECS events for one tenant: a normal day, and injected attacks.

Real `Event`s built with `Event.create`, as a sensor would. All randomness comes from a seeded
`random.Random`, so every test sees the same events.
"""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.records import Event, set_path

TENANT = "hanoi"
DAY1 = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
DAY2 = DAY1 + timedelta(days=1)
WINDOW = timedelta(minutes=5)
HOSTS = [f"10.0.0.{i}" for i in range(1, 11)]
DNS_CLIENTS = [f"10.0.1.{i}" for i in range(1, 11)]
USERS = [f"user{i:02d}" for i in range(30)]
NORMAL_NAMES = ["www.google.com", "mail.hanoi.gov.vn", "portal.hanoi.gov.vn", "cdn.example.com",
                "update.microsoft.com", "api.github.com", "news.vnexpress.net", "login.live.com"]


def make(at: datetime, n: int, fields: dict[str, Any], tenant: str = TENANT) -> Event:
    """One event; `fields` are dotted ECS names."""
    doc: dict[str, Any] = {"@timestamp": at, "organization": {"id": tenant}}
    for name, value in fields.items():
        set_path(doc, name, value)
    return Event.create(doc, id_parts=("ml-test", at.isoformat(), n))


def flow(at: datetime, n: int, src: str, dst: str, port: int, *, out: int = 2000, inb: int = 20000,
         outcome: str = "success") -> Event:
    return make(at, n, {"event.dataset": "flow", "event.category": ["network"], "source.ip": src,
                        "destination.ip": dst, "destination.port": port, "source.bytes": out,
                        "destination.bytes": inb, "network.packets": 20, "event.outcome": outcome})


def dns(at: datetime, n: int, client: str, name: str, code: str = "NOERROR") -> Event:
    return make(at, n, {"event.dataset": "dns", "source.ip": client, "dns.question.name": name,
                        "dns.response_code": code})


def auth(at: datetime, n: int, src: str, user: str, outcome: str) -> Event:
    return make(at, n, {"event.dataset": "system.auth", "event.category": ["authentication"],
                        "source.ip": src, "user.name": user, "event.outcome": outcome})


def normal_day(day: datetime, seed: int) -> list[Event]:
    """A day of ordinary traffic: each host's few usual peers, common names, logins with typos."""
    rng = random.Random(seed)
    events: list[Event] = []
    for slot in range(0, 24 * 12, 2):  # every other window: 144 windows
        start = day + slot * WINDOW
        for h, host in enumerate(HOSTS):
            for _ in range(rng.randint(3, 9)):
                peer = f"192.0.2.{h * 5 + rng.randint(0, 4)}"
                events.append(flow(start + timedelta(seconds=rng.randint(0, 299)), len(events), host, peer,
                                   rng.choice([443, 443, 80, 53]), out=int(rng.lognormvariate(7.5, 0.5)),
                                   inb=int(rng.lognormvariate(9.5, 0.7)),
                                   outcome="failure" if rng.random() < 0.02 else "success"))
        for client in DNS_CLIENTS:
            for _ in range(rng.randint(2, 8)):
                code = "NXDOMAIN" if rng.random() < 0.05 else "NOERROR"
                events.append(dns(start + timedelta(seconds=rng.randint(0, 299)), len(events), client,
                                  rng.choice(NORMAL_NAMES), code))
        for user in rng.sample(USERS, 8):
            at = start + timedelta(seconds=rng.randint(0, 200))
            workstation = f"10.0.2.{USERS.index(user)}"
            roll = rng.random()
            if roll < 0.2:  # a typo, then (mostly) the right password
                events.append(auth(at, len(events), workstation, user, "failure"))
                at += timedelta(seconds=20)
            if roll >= 0.05:
                events.append(auth(at, len(events), workstation, user, "success"))
    return sorted(events, key=lambda e: e.timestamp)


def scan(at: datetime, host: str = "10.0.0.5", targets: int = 300) -> list[Event]:
    """A host that suddenly talks to hundreds of destinations (SMB sweep)."""
    return [flow(at + timedelta(milliseconds=100 * i), 10_000 + i, host, f"172.16.{i // 250}.{i % 250}", 445,
                 out=60, inb=0, outcome="failure" if i % 3 else "success") for i in range(targets)]


def tunnel(at: datetime, client: str = "10.0.1.3", queries: int = 8) -> list[Event]:
    """DNS tunnelling: long, high-entropy subdomains of one domain, at an ordinary query rate."""
    rng = random.Random(7)
    alphabet = string.ascii_lowercase + string.digits
    names = ["".join(rng.choice(alphabet) for _ in range(40)) + ".t.exfil-example.com" for _ in range(queries)]
    return [dns(at + timedelta(seconds=20 * i), 20_000 + i, client, name) for i, name in enumerate(names)]


def spray(at: datetime, source: str = "203.0.113.77", users: int = 40) -> list[Event]:
    """A password spray: one failed attempt on each of many accounts from one source."""
    return [auth(at + timedelta(seconds=2 * i), 30_000 + i, source, f"staff{i:03d}", "failure")
            for i in range(users)]
