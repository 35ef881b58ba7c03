"""Threat-intelligence matching speed: events/s of `IntelMatcher` with 0, 100,000 and 1,000,000 indicators.

Measures, in one run and one process:
- indicators: generated from `--seed` (deterministic): 40 % IPv4 addresses, 5 % networks (/16 to
  /30, 12 prefix lengths), 25 % domains, 10 % URLs, 10 % SHA-256, 5 % MD5, 3 % e-mail, 1 % JA3,
  1 % user agents; TLP:GREEN and AMBER, a third with a valid_until.
- events: `--events` ECS events like the pipeline's (sshd auth, DNS queries, HTTP proxy, file
  hashes, TLS, mail), of 7 tenants, from the same seed; about 1 in 200 carries a loaded value.
- for each size: the time to build the index, peak RSS, then events/s over the whole corpus
  (best of `--repeat` passes) and the alerts raised. The ratio is to the no-indicator baseline
  of the same run; "share of 4,000 ev/s" is the fraction of one core the matcher needs to keep up
  with the pipeline's measured end-to-end rate (the aim: under 20 %).

Usage: .venv/bin/python -m bench.intel [--events 50000] [--sizes 0,100000,1000000] [--seed 7]
                                        [--repeat 3] [--markdown]
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import random
import resource
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from config.settings import TenantConfig, TenantKind
from config.tenants import TenantTree
from detections.intel import Indicator, IndicatorType, IntelMatcher, Tlp
from pipeline.records import Event, set_path

PIPELINE_RATE = 4_000  # events/s end to end (docs/performance.md, replay of the demo's auth logs)
T0 = datetime(2026, 11, 23, tzinfo=UTC)
TENANTS = ("national", "btc", "byt", "hanoi", "hanoi-bavi", "danang", "danang-haichau")
TREE = TenantTree.from_config([
    TenantConfig(id="national", name="N", kind=TenantKind.NATIONAL),
    *(TenantConfig(id=t, name=t, kind=TenantKind.MINISTRY, parent="national") for t in ("btc", "byt")),
    *(TenantConfig(id=t, name=t, kind=TenantKind.PROVINCE, parent="national") for t in ("hanoi", "danang")),
    TenantConfig(id="hanoi-bavi", name="BV", kind=TenantKind.COMMUNE, parent="hanoi"),
    TenantConfig(id="danang-haichau", name="HC", kind=TenantKind.COMMUNE, parent="danang"),
])
TLDS = ("example", "test", "invalid", "example.com", "example.net")
MIX = ((IndicatorType.IPV4, 40), (IndicatorType.CIDR, 5), (IndicatorType.DOMAIN, 25), (IndicatorType.URL, 10),
       (IndicatorType.SHA256, 10), (IndicatorType.MD5, 5), (IndicatorType.EMAIL, 3), (IndicatorType.JA3, 1),
       (IndicatorType.USER_AGENT, 1))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _value(rng: random.Random, kind: IndicatorType, n: int) -> str:
    if kind is IndicatorType.IPV4:
        return str(ipaddress.IPv4Address(rng.getrandbits(32)))
    if kind is IndicatorType.CIDR:
        prefix = rng.choice((16, 18, 20, 22, 23, 24, 25, 26, 27, 28, 29, 30))
        return str(ipaddress.ip_network((rng.getrandbits(32) >> (32 - prefix) << (32 - prefix), prefix)))
    name = f"h{n:x}{rng.getrandbits(20):05x}.{rng.choice(TLDS)}"
    if kind is IndicatorType.DOMAIN:
        return name
    if kind is IndicatorType.URL:
        return f"http://{name}/p/{rng.getrandbits(24):x}.php"
    if kind in (IndicatorType.SHA256, IndicatorType.MD5, IndicatorType.JA3):
        bits = 256 if kind is IndicatorType.SHA256 else 128
        return f"{rng.getrandbits(bits):0{bits // 4}x}"
    if kind is IndicatorType.EMAIL:
        return f"u{n:x}@{name}"
    return f"Mozilla/5.0 (bench {n:x}) EvilAgent/{rng.randrange(100)}"


def make_indicators(count: int, seed: int) -> list[Indicator]:
    """`count` indicators built directly (values valid by construction: no parsing in the timing)."""
    rng = random.Random(seed)
    kinds = [k for k, weight in MIX for _ in range(weight)]
    out = []
    for n in range(count):
        kind = kinds[n % len(kinds)]
        out.append(Indicator(
            id=f"{n:032x}", type=kind, value=_value(rng, kind, n), publisher=rng.choice(("national", "hanoi")),
            source="bench", tlp=Tlp.AMBER if n % 2 else Tlp.GREEN, confidence=60,
            valid_until=T0 + timedelta(days=3650) if n % 3 == 0 else None))
    return out


def _event(rng: random.Random, n: int, hit: Indicator | None) -> Event:
    doc: dict[str, Any] = {"@timestamp": T0 + timedelta(seconds=n), "organization": {"id": TENANTS[n % 7]},
                           "event": {"id": f"e{n}", "dataset": "bench"}}
    kind = n % 6
    ip = str(ipaddress.IPv4Address(rng.getrandbits(32)))
    if kind == 0:
        fields = {"source.ip": ip, "source.address": ip, "related.ip": [ip, "10.20.0.5"], "user.name": "root"}
    elif kind == 1:
        fields = {"dns.question.name": f"www.site{rng.randrange(10**6)}.example", "source.ip": "10.30.1.2",
                  "destination.ip": "10.30.0.53"}
    elif kind == 2:
        host = f"cdn{rng.randrange(10**6)}.example.com"
        fields = {"url.original": f"http://{host}/a.js", "url.domain": host, "destination.ip": ip,
                  "user_agent.original": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"}
    elif kind == 3:
        fields = {"file.hash.sha256": f"{rng.getrandbits(256):064x}", "file.hash.md5": f"{rng.getrandbits(128):032x}"}
    elif kind == 4:
        fields = {"tls.client.ja3": f"{rng.getrandbits(128):032x}", "destination.ip": ip,
                  "tls.client.server_name": f"api{rng.randrange(1000)}.example.net"}
    else:
        fields = {"email.from.address": f"user{rng.randrange(10**5)}@mail.example", "source.ip": ip}
    for name, value in fields.items():
        set_path(doc, name, value)
    if hit is not None:
        set_path(doc, *_carrier(hit))
    return Event.from_document(doc)


def _carrier(ind: Indicator) -> tuple[str, str]:
    if ind.type is IndicatorType.CIDR:
        return "destination.ip", str(ipaddress.ip_network(ind.value).network_address + 1)
    return {IndicatorType.IPV4: "source.ip", IndicatorType.DOMAIN: "dns.question.name", IndicatorType.URL:
            "url.original", IndicatorType.SHA256: "file.hash.sha256", IndicatorType.MD5: "file.hash.md5",
            IndicatorType.EMAIL: "email.from.address", IndicatorType.JA3: "tls.client.ja3",
            IndicatorType.USER_AGENT: "user_agent.original"}[ind.type], ind.value


def make_events(count: int, seed: int, hits_from: list[Indicator]) -> list[Event]:
    rng = random.Random(seed + 1)
    return [_event(rng, n, rng.choice(hits_from) if hits_from and n % 200 == 0 else None) for n in range(count)]


@dataclass
class Row:
    indicators: int
    build_s: float
    rss_mb: float
    events_per_s: float
    alerts: int


def measure(size: int, events: list[Event], indicators: list[Indicator], repeat: int) -> Row:
    gc.collect()
    started = time.perf_counter()
    matcher = IntelMatcher(indicators[:size], TREE)
    build = time.perf_counter() - started
    best, alerts = float("inf"), 0
    for _ in range(repeat):
        started = time.perf_counter()
        alerts = len(matcher.process(events))
        best = min(best, time.perf_counter() - started)
    return Row(size, build, peak_rss_mb(), len(events) / best, alerts)


def render(rows: list[Row], markdown: bool) -> None:
    base = rows[0].events_per_s
    header = ("indicators", "index build s", "peak RSS MB", "events/s", "vs no indicators", "share of 4,000 ev/s",
              "alerts")
    cells = [(f"{r.indicators:,}", f"{r.build_s:.1f}", f"{r.rss_mb:,.0f}", f"{r.events_per_s:,.0f}",
              f"{r.events_per_s / base:.2f}x", f"{PIPELINE_RATE / r.events_per_s:.1%}", f"{r.alerts:,}") for r in rows]
    if markdown:
        print("| " + " | ".join(header) + " |")  # noqa: T201 - the bench's output
        print("|" + "---|" * len(header))  # noqa: T201
        for row in cells:
            print("| " + " | ".join(row) + " |")  # noqa: T201
        return
    table = Table(*header, title="IntelMatcher")
    for row in cells:
        table.add_row(*row)
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--sizes", default="0,100000,1000000")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    indicators = make_indicators(max(sizes), args.seed)
    hits = indicators[: min(sizes[1:] or [0])]  # in every loaded set, so each size raises the same alerts
    events = make_events(args.events, args.seed, hits)
    render([measure(size, events, indicators, args.repeat) for size in sizes], args.markdown)


if __name__ == "__main__":
    main()
