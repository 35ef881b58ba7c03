"""Service watch bench: N HTTPS targets checked every minute from one sensor process, against local servers.

    .venv/bin/python bench/watch.py --targets 1000 --duration 150

Local portals (pages from detections/watch/corpus.py, one wildcard certificate from a trustme CA) run
in a separate process, so the sensor's peak RSS is its own. The sensor runs the real scheduler
(sensors/watch/schedule.py) with every target on a 60 s interval and 60 s of jitter, and serialises
each event as it would to its spool. Every check is the full one: TCP, a verified TLS handshake,
the legacy-protocol probe, HTTP with the body, page extraction.
"Not falling behind" reads: checks/s matches targets/interval, no round skipped, lag stays small.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from tempfile import mkdtemp

import trustme

from api.demo.watch import PortalServer, server_context
from config.watch import ServiceWatchSettings, WatchTarget
from detections.watch.corpus import portal_page, portal_specs
from pipeline.records import Event
from sensors.watch import WatchScheduler

INTERVAL_S = 60
DOMAIN = "bench.example"


def _serve(servers: int, hosts: int, ca_dir: str, conn: Connection) -> None:
    ca = trustme.CA(organization_name="govsoc bench CA")
    ca_file = Path(ca_dir) / "bench-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    pages = [portal_page(spec, 0).encode() for spec in portal_specs(50)]
    site_pages = {f"site{n}.{DOMAIN}": pages[n % len(pages)] for n in range(hosts)}
    running = [PortalServer(tls=server_context(ca, f"*.{DOMAIN}"), pages=site_pages).start() for _ in range(servers)]
    conn.send((str(ca_file), [s.port for s in running]))
    conn.recv()  # until the bench says stop
    for server in running:
        server.stop()


def bench_settings(targets: int, ports: list[int], ca_file: str, concurrency: int) -> ServiceWatchSettings:
    return ServiceWatchSettings(vantage_point="bench-s1", concurrency=concurrency, jitter_s=INTERVAL_S, targets=tuple(
        WatchTarget(id=f"site{n}", tenant="hanoi", url=f"https://site{n}.{DOMAIN}/",
                    connect_to=f"127.0.0.1:{ports[n % len(ports)]}", ca_file=Path(ca_file), interval_s=INTERVAL_S,
                    timeout_s=10) for n in range(targets)))


def run(targets: int, duration_s: float, servers: int, concurrency: int) -> dict[str, float]:
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(servers, targets, mkdtemp(), child), daemon=True)
    server.start()
    ca_file, ports = parent.recv()
    settings = bench_settings(targets, ports, ca_file, concurrency)
    spooled = [0]

    def sink(event: Event) -> None:
        spooled[0] += len(event.to_json())

    scheduler = WatchScheduler(settings, sink)

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(duration_s, stop.set)
        await scheduler.run(stop)

    started = time.monotonic()
    asyncio.run(main())
    elapsed = time.monotonic() - started
    parent.send("stop")
    server.join(10)
    stats = scheduler.stats
    return {"targets": targets, "seconds": round(elapsed, 1), "checks": stats.checks, "failures": stats.failures,
            "skipped": stats.skipped, "checks_per_s": round(stats.checks / elapsed, 2),
            "expected_per_s": round(targets / INTERVAL_S, 2), "lag_p50_s": round(stats.lag_percentile(0.5), 3),
            "lag_p99_s": round(stats.lag_percentile(0.99), 3), "lag_max_s": round(max(stats.lags_s, default=0), 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "event_kb": round(spooled[0] / max(1, stats.checks) / 1024, 1)}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=150.0, help="seconds (>= 2 intervals to see a steady state)")
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args(argv)
    row = run(args.targets, args.duration, args.servers, args.concurrency)
    print("| " + " | ".join(row) + " |")
    print("|" + "---|" * len(row))
    print("| " + " | ".join(str(v) for v in row.values()) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
