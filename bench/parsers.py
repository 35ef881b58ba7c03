"""Lines per second of every registered log parser (the parser call alone), best of three.

Samples: real lines where the project has them (loghub Apache error and Windows CBS logs, the
demo's generated auth log and Windows events), generated lines in each format's documented shape otherwise.
Usage: .venv/bin/python bench/parsers.py [--lines 100000]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
from rich.console import Console
from rich.table import Table

from api.demo.authlog import ICT, AuthLogSpec, generate_auth_log
from api.demo.windows import WindowsSpec, generate_windows_events
from sensors.parsers import PARSERS, LineContext

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def samples() -> dict[str, list[str]]:
    start = datetime(2026, 11, 22, tzinfo=ICT)
    auth = generate_auth_log(AuthLogSpec(host="portal", start=start, lines=2000))
    apache = (SHARED / "loghub/Apache/Apache_2k.log").read_text(encoding="utf-8").splitlines()
    access = [f'198.51.{i % 250}.{i % 199} - - [23/Nov/2026:10:{i % 60:02d}:{i % 59:02d} +0700] '
              f'"GET /p/{i}.php?id={i} HTTP/1.1" {200 + i % 300} {i} "https://ref.example/" '
              f'"Mozilla/5.0 (X11; Linux x86_64)"' for i in range(2000)]
    eve = [orjson.dumps({"timestamp": "2026-11-23T10:00:00.000000+0700", "flow_id": i, "event_type": kind,
                         "src_ip": f"10.0.{i % 250}.{i % 199}", "src_port": 1024 + i, "dest_ip": "203.0.113.9",
                         "dest_port": 443, "proto": "TCP",
                         "alert": {"action": "allowed", "signature_id": 2000000 + i, "signature": "ET POLICY x",
                                   "category": "Misc", "severity": 2},
                         "tls": {"sni": "portal.danang.example", "version": "TLS 1.3"}}).decode()
           for i, kind in zip(range(2000), ["alert", "flow", "tls"] * 700, strict=False)]
    return {
        "auth": auth, "syslog": auth, "apache_error": apache,
        "windows_cbs": (SHARED / "loghub/Windows/Windows_2k.log").read_text(encoding="utf-8").splitlines(),
        "nginx_error": [f'2026/11/23 10:00:{i % 60:02d} [error] {1000 + i}#0: *{i} open() "/var/www/{i}.ico" failed '
                        f'(2: No such file or directory), client: 198.51.100.{i % 250}, server: x, '
                        f'request: "GET /{i}.ico HTTP/1.1"' for i in range(2000)],
        "nginx_access": access, "apache_access": access, "eve": eve,
        "fortigate": [f'date=2026-11-23 time=10:00:{i % 60:02d} devname="FGT-HN-01" type="traffic" '
                      f'srcip=10.1.{i % 250}.11 srcport={1024 + i} dstip=203.0.113.35 dstport=443 proto=6 '
                      f'action="close" policyid=1 sentbyte=1800 rcvdbyte=4122' for i in range(2000)],
        "kv_firewall": [f"Nov 23 10:00:00 fw1 filterlog: action=block src=203.0.113.{i % 250} dst=10.0.0.2 "
                        f"spt={1024 + i} dpt=22 proto=TCP" for i in range(2000)],
        "auditd": [f'type=SYSCALL msg=audit(1795402800.{i % 1000:03d}:{i}): arch=c000003e syscall=59 success=yes '
                   f'exit=0 ppid=2686 pid={3000 + i} auid=1000 uid=1000 comm="cat" exe="/usr/bin/cat" key="exec"'
                   for i in range(2000)],
        "cef": [f"Nov 23 10:00:00 waf CEF:0|Vendor|WAF|2.1|942100|SQL injection|High|rt=1795402800000 "
                f"src=203.0.113.{i % 250} spt={1024 + i} dst=10.0.0.5 dpt=443 act=blocked" for i in range(2000)],
        "json": [orjson.dumps({"@timestamp": f"2026-11-23T03:00:{i % 60:02d}Z", "message": f"user {i} logged in",
                               "source": {"ip": f"10.0.0.{i % 250}"}}).decode() for i in range(2000)],
        "windows_json": generate_windows_events(WindowsSpec(start=start, records=2000)),
    }


def rate(name: str, pool: list[str], lines: int, ctx: LineContext) -> float:
    parse = PARSERS[name]
    batch = [pool[i % len(pool)] for i in range(lines)]
    best = float("inf")
    for _ in range(3):  # best of three: other work shares this machine
        started = time.perf_counter()
        for line in batch:
            parse(line, ctx)
        best = min(best, time.perf_counter() - started)
    return lines / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()
    ctx = LineContext(tz=ZoneInfo("Asia/Ho_Chi_Minh"), reference=datetime(2026, 11, 23, 12, tzinfo=UTC))
    pools = samples()
    missing = sorted(set(PARSERS) - set(pools))
    table = Table("parser", "lines/s", "distinct sample lines", title=f"parser call only, {args.lines:,} lines each")
    for name in sorted(pools):
        table.add_row(name, f"{rate(name, pools[name], args.lines, ctx):,.0f}", str(len(pools[name])))
    Console().print(table)
    if missing:
        Console(stderr=True).print(f"no samples for: {', '.join(missing)}")


if __name__ == "__main__":
    main()
