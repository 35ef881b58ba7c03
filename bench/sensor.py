"""The whole log sensor: files -> tail -> parse -> disk spool -> shipper -> bus, lines/s and peak memory.

One `sensors.agent.Agent` (what `govsoc sensor run` runs) on one core, in a fresh subprocess for
its own peak RSS, reads a mixed set of generated logs (the demo's generators: sshd/auth, nginx and
Apache access, FortiGate and key=value firewall, Winlogbeat JSON) through its file inputs, spools
every event (fsync once a second, the default) and ships it to a MemoryBus whose consumer keeps
up (so the bus holds nothing: the memory is the sensor's). The clock runs from the first tail to
an empty spool. Issue 4's aim: 20,000 lines/s of mixed logs on one core in under 150 MB.

Usage: .venv/bin/python bench/sensor.py [--lines 200000] [--repeat 2]
       .venv/bin/python bench/sensor.py --profile 50000   # cProfile, in this process, top 30 by own time
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

# (format, share of the lines): roughly a site's mix, auth and web heavy
MIX = (("auth", 0.30), ("nginx_access", 0.25), ("apache_access", 0.10), ("fortigate", 0.15),
       ("kv_firewall", 0.10), ("windows_json", 0.10))


def generate(directory: Path, lines: int) -> list[tuple[str, Path]]:
    from api.demo.authlog import ICT, AuthLogSpec, generate_auth_log
    from api.demo.firewall import FirewallSpec, generate_fortigate_log, generate_kv_firewall_log
    from api.demo.weblog import WebLogSpec, generate_access_log
    from api.demo.windows import WindowsSpec, generate_windows_events

    start = datetime(2026, 11, 22, tzinfo=ICT)
    makers = {
        "auth": lambda n: generate_auth_log(AuthLogSpec(host="portal", start=start, lines=n)),
        "nginx_access": lambda n: generate_access_log(WebLogSpec(host="portal.hanoi.example", start=start, lines=n)),
        "apache_access": lambda n: generate_access_log(WebLogSpec(host="portal.moh.example", start=start, lines=n,
                                                                  seed=43)),
        "fortigate": lambda n: generate_fortigate_log(FirewallSpec(start=start, lines=n)),
        "kv_firewall": lambda n: generate_kv_firewall_log(FirewallSpec(start=start, lines=n, seed=53)),
        "windows_json": lambda n: generate_windows_events(WindowsSpec(start=start, records=n)),
    }
    files = []
    for fmt, share in MIX:
        path = directory / f"{fmt}.log"
        path.write_text("\n".join(makers[fmt](int(lines * share))) + "\n", encoding="utf-8")
        files.append((fmt, path))
    return files


def run_sensor(directory: Path, files: list[tuple[str, Path]]) -> dict[str, float]:
    """In this process: the agent's tail and ship steps until every line is on the bus."""
    from pipeline.bus import topics
    from pipeline.bus.memory import MemoryBus
    from sensors.agent import Agent, AgentConfig

    total = sum(len(path.read_bytes().splitlines()) for _fmt, path in files)
    config = AgentConfig.model_validate({
        "tenant": "bench", "sensor": "bench-s1", "batch_size": 2000,
        "spool": {"dir": str(directory / "spool"), "fsync": "interval"},
        "files": [{"paths": [str(path)], "format": fmt} for fmt, path in files]})
    bus = MemoryBus()
    consumer = bus.consumer([topics.RAW, topics.DEAD_LETTERS], "downstream")
    agent = Agent(config, bus)
    started, cpu_started = time.perf_counter(), time.process_time()
    shipped = 0
    while shipped < total:
        agent.tail_once()
        result = agent.shipper.ship_once()
        shipped += result.shipped
        consumer.poll(100_000)
        consumer.commit()  # the SOC side keeps up: the bus holds nothing between steps
        if result.shipped == 0 and agent.spool.pending_records == 0 and agent.tail_once() == 0:
            break
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    agent.spool.close()
    return {"lines": total, "shipped": shipped, "seconds": seconds, "cpu_seconds": cpu,
            "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child(directory: Path) -> None:
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    files = [(fmt, directory / f"{fmt}.log") for fmt, _share in MIX]
    print(json.dumps(run_sensor(directory, files)))


def profile(lines: int) -> None:
    """Where the sensor's CPU goes: cProfile over one in-process run (slower than a real run)."""
    import cProfile
    import logging
    import pstats

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory() as tmp:
        files = generate(Path(tmp), lines)
        profiler = cProfile.Profile()
        result = profiler.runcall(run_sensor, Path(tmp), files)
    print(json.dumps(result))
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile", type=int, metavar="LINES", help="profile one in-process run of LINES lines")
    args = parser.parse_args()
    if args.profile:
        profile(args.profile)
        return
    if args.child:
        child(args.child)
        return
    table = Table("run", "lines", "lines/s (wall)", "lines/CPU-s", "peak RSS MiB",
                  title=f"log sensor, file -> spool -> bus, {args.lines:,} mixed lines "
                        f"({', '.join(f'{f} {s:.0%}' for f, s in MIX)})")
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp), args.lines)
        for n in range(args.repeat):
            spool = Path(tmp) / "spool"
            if spool.exists():
                subprocess.run(["rm", "-rf", str(spool)], check=True)
            out = subprocess.run([sys.executable, __file__, "--child", tmp], capture_output=True, text=True,
                                 check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            table.add_row(str(n + 1), f"{int(r['shipped']):,}", f"{r['shipped'] / r['seconds']:,.0f}",
                          f"{r['shipped'] / r['cpu_seconds']:,.0f}", f"{r['max_rss_mib']:.0f}")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
