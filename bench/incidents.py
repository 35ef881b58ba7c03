"""Incidents: alerts/s through noise control and grouping into the IncidentStore, and the time from
an event's arrival on the bus to its incident, on the embedded default (MemoryBus, SQLite WAL).

Part 1, throughput. One generated alert mix, in time order, fed in batches of 1,000 (the pipeline's
batch size) to a fresh SQLite store per stage, all in this run:
- raw insert: `write_alerts` only, no grouping (the baseline);
- grouping: `IncidentService.ingest` with the default settings (no dedup, no flood guard, no
  exceptions): every new alert is grouped;
- grouping + noise: the same with dedup (300 s), a flood guard (200 alerts per rule and tenant in
  60 s) and two configured exceptions.
The mix (`alert_mix`): 70 % repeats of 24 (rule, entity) keys (scanners failing SSH logins), 15 %
floods (bursts of 300 alerts 2 ms apart, one rule over many hosts of one tenant), 10 % spread
over distinct entities, 5 % hitting an exception.

Part 2, latency. `build_runtime` on a temporary data directory (what `govsoc up` runs: ingest ->
Sigma with the built-in rules of detections/rules -> incidents) with `Pipeline.run` in a thread.
A publisher thread puts pre-parsed events (generated auth logs of two portals and the demo's
Windows events) on `topics.RAW` at a paced rate, in chunks of 50, stamping each event's publish
time. An observer wrapped around the incidents worker's step stamps each alert once the step has
returned (its incident is committed). An alert's latency is from the publish of its newest event
(the one that completed the detection) to that commit; p50/p95/p99/max over all alerts. Each step's
thread CPU time gives the cost per event of ingest, detect and incidents.

The events are held as their messages (key and JSON bytes) only, never as `Event` objects, while the
pipeline runs: a full collection of Python's garbage collector walks every live container, and a
million dicts of generated events that `govsoc up` would never hold made single collections of
0.2-0.5 s land on the pipeline (measured 2026-11-23: 2.4 s of collection in a 12 s run at 5,000
events/s). The time the collector takes during the run is reported beside the steps' CPU.

Part 3, the same on a core of its own (`measure_latency_own_core`): one thread publishes on its own
CPU clock and runs the workers as `Pipeline.run` does, so other jobs on the machine do not count;
I/O waits (none on commit: WAL with synchronous=NORMAL) would not count either.

The machine is shared (2 cores, other jobs): each figure comes with the process CPU time of its
stage and the load average, and ratios are against the baseline measured in the same run.

Usage (from the repository root): .venv/bin/python -m bench.incidents [--alerts 20000]
       [--rates 5000 ...] [--seconds 20] [--skip-throughput] [--skip-latency] [--skip-shared]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from rich.console import Console
from rich.table import Table

from api.demo.authlog import ICT, Attack, AuthLogSpec, generate_auth_log
from api.demo.windows import WindowsSpec, generate_windows_events
from api.wiring import build_runtime
from api.wiring.runtime import freeze_heap
from config.load import load_settings
from config.settings import IncidentSettings, NoiseSettings, SuppressionRule
from config.tenants import TenantScope, TenantTree
from detections.incidents import IncidentService
from pipeline.bus import Bus, Message, topics
from pipeline.bus.keys import entity_key
from pipeline.bus.memory import MemoryBus
from pipeline.ids import stable_id
from pipeline.records import Alert, DetectionKind, Event, Severity
from pipeline.store.base import IncidentQuery
from pipeline.store.sqlite_incidents import SqliteIncidentStore
from sensors.files import FileSource, read_log_file

T0 = datetime(2026, 11, 23, tzinfo=UTC)
BATCH = 1000
CHUNK = 50  # events per publish: a sensor's shipper sends batches, not single events
TENANTS = ("hanoi", "danang", "btc", "hanoi-bavi")
NOISE = NoiseSettings(
    dedup_window_s=300, flood_window_s=60, flood_max_alerts=200,
    suppressions=(SuppressionRule(reason="vulnerability scanner of the national centre", rule_id="rule-scan",
                                  entity={"source.ip": "192.0.2.250"}),
                  SuppressionRule(reason="backup job with an old password", tenant="danang",
                                  entity={"user.name": "backup"})),
)


# --- part 1: throughput ---------------------------------------------------------------------------


def _alert(n: int, at: datetime, tenant: str, rule: str, entity: dict[str, str]) -> Alert:
    return Alert(id=stable_id("bench-alert", n), tenant=tenant, timestamp=at, kind=DetectionKind.SIGMA,
                 rule_id=rule, rule_title=f"Bench {rule}", severity=Severity.MEDIUM,
                 event_ids=(stable_id("bench-event", n),), entity=entity, tags=("attack.t1110",))


def alert_mix(count: int, seed: int = 8) -> list[Alert]:
    """`count` alerts in time order; see the module docstring. Alerts come 100 ms apart, but a
    flood of 300 (one rule over many hosts of one tenant, 2 ms apart) starts every 2,000 alerts."""
    rng = random.Random(seed)
    keys = [(TENANTS[k % 4], f"rule-{k % 3}", {"source.ip": f"198.51.100.{k}"}) for k in range(24)]
    alerts: list[Alert] = []
    at = T0
    for n in range(count):
        draw = rng.random()
        if n % 2000 < 300:  # a flood: 15 % of the alerts
            at += timedelta(milliseconds=2)
            tenant, rule, entity = "hanoi", "rule-flood", {"host.name": f"ws-{rng.randrange(5000):04d}.hanoi"}
        elif draw < 70 / 85:
            at += timedelta(milliseconds=100)
            tenant, rule, entity = rng.choice(keys)
        elif draw < 80 / 85:
            at += timedelta(milliseconds=100)
            tenant, rule, entity = rng.choice(TENANTS), "rule-spread", {"user.name": f"u{rng.randrange(10**6)}"}
        elif draw < 82.5 / 85:
            at += timedelta(milliseconds=100)
            tenant, rule, entity = rng.choice(TENANTS), "rule-scan", {"source.ip": "192.0.2.250"}
        else:
            at += timedelta(milliseconds=100)
            tenant, rule, entity = "danang", "rule-1", {"user.name": "backup"}
        alerts.append(_alert(n, at, tenant, rule, dict(entity)))
    return alerts


@dataclass(frozen=True, slots=True)
class Throughput:
    stage: str
    alerts: int
    wall_s: float
    cpu_s: float
    incidents: int
    dropped: str

    @property
    def rate(self) -> float:
        return self.alerts / self.wall_s


def _batches(alerts: Sequence[Alert]) -> list[Sequence[Alert]]:
    return [alerts[i:i + BATCH] for i in range(0, len(alerts), BATCH)]


def measure_throughput(stage: str, alerts: Sequence[Alert], work: Path, tree: TenantTree,
                       noise: NoiseSettings | None) -> Throughput:
    """One stage over a fresh store; `noise` None is the raw insert baseline."""
    store = SqliteIncidentStore(work / f"{stage.replace(' ', '-')}.db")
    service = None if noise is None else IncidentService(store, tree, IncidentSettings(noise=noise))
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in _batches(alerts):
        if service is None:
            store.write_alerts(batch)
        else:
            service.ingest(batch)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    incidents = store.count_incidents(TenantScope.everything(), IncidentQuery())
    dropped = "" if service is None else ", ".join(f"{v.value} {n:,}" for v, n in
                                                   sorted(service.noise.dropped.items())) or "none"
    store.close()
    return Throughput(stage, len(alerts), wall, cpu, incidents, dropped)


# --- part 2: latency ------------------------------------------------------------------------------


def demo_events(count: int, work: Path) -> list[Event]:
    """About `count` events in time order over one day: the auth logs of two portals, each with a
    brute force (80 failed-login lines, then a success) per 2,000 lines, and the demo's Windows
    events at Bộ Tài chính (a phishing chain among 600 records)."""
    start = datetime(2026, 11, 22, tzinfo=ICT)
    events: list[Event] = []
    specs: dict[tuple[str, str], AuthLogSpec] = {}
    for (tenant, sensor, seed, net, share) in (("hanoi", "hanoi-s1", 11, "203.0.113", 6),
                                               ("danang", "danang-s1", 23, "198.18.0", 4)):
        lines = count * share // 10
        attacks = max(1, lines // 2000)
        specs[(tenant, sensor)] = AuthLogSpec(
            host="portal", start=start, lines=lines, seed=seed,
            attacks=tuple(Attack(source=f"{net}.{i % 250 + 1}", at=start + timedelta(days=1) * (i + 0.5) / attacks)
                          for i in range(attacks)))
    files: list[tuple[Path, FileSource]] = []
    for (tenant, sensor), spec in specs.items():
        path = work / f"{tenant}-auth.log"
        path.write_text("\n".join(generate_auth_log(spec)) + "\n", encoding="utf-8")
        files.append((path, FileSource(tenant=tenant, sensor=sensor, format="auth")))
    windows = work / "btc-windows.jsonl"
    windows.write_text("\n".join(generate_windows_events(WindowsSpec(start=start))) + "\n", encoding="utf-8")
    files.append((windows, FileSource(tenant="btc", sensor="btc-s1", format="windows_json")))
    for path, source in files:
        for batch in read_log_file(path, source):
            events.extend(batch.events)
    events.sort(key=lambda e: e.timestamp)
    return events


EventMessage = tuple[str, str, bytes]  # event id, bus key, the event's JSON


def event_messages(events: Sequence[Event]) -> list[EventMessage]:
    """What a sensor publishes for `events`: no `Event` object stays alive (see the module docstring)."""
    return [(e.id, entity_key(e.tenant, e.doc), e.to_json()) for e in events]


@dataclass
class GcTime:
    """CPU time of the garbage collector's runs in this process (any thread), and the longest one."""

    total_s: float = 0.0
    longest_s: float = 0.0
    full: int = 0  # generation-2 collections
    _started: float = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.thread_time()
            return
        spent = time.thread_time() - self._started
        self.total_s += spent
        self.longest_s = max(self.longest_s, spent)
        self.full += info["generation"] == 2


@contextmanager
def gc_timed() -> Iterator[GcTime]:
    clock = GcTime()
    gc.collect()  # the setup's garbage, before the clock starts
    gc.callbacks.append(clock)
    try:
        yield clock
    finally:
        gc.callbacks.remove(clock)


@dataclass
class Observer:
    """Publish times of events, and commit times of the alerts the incidents worker has grouped."""

    published: dict[str, float] = dataclasses.field(default_factory=dict)
    latencies: list[float] = dataclasses.field(default_factory=list)
    alert_events: set[str] = dataclasses.field(default_factory=set)
    unknown: int = 0
    cpu: dict[str, float] = dataclasses.field(default_factory=dict)

    def timed(self, name: str, step: Callable[[Sequence[Message]], object]) -> Callable[[Sequence[Message]], object]:
        """`step`, adding the CPU time of its thread to `cpu[name]`."""
        def timed_step(messages: Sequence[Message]) -> object:
            started = time.thread_time()
            try:
                return step(messages)
            finally:
                self.cpu[name] = self.cpu.get(name, 0.0) + time.thread_time() - started
        return timed_step

    def wrap(self, step: Callable[[Sequence[Message]], object],
             clock: Callable[[], float] = time.perf_counter) -> Callable[[Sequence[Message]], object]:
        def observed(messages: Sequence[Message]) -> object:
            result = step(messages)
            committed = clock()  # the step returns once its incidents are committed
            for message in messages:
                alert = Alert.from_json(message.value)
                stamps = [self.published[e] for e in alert.event_ids if e in self.published]
                if not stamps:
                    self.unknown += 1  # silent-sensor or ML alerts: no event of ours behind them
                    continue
                self.alert_events.update(alert.event_ids)
                self.latencies.append(committed - max(stamps))
            return result
        return observed


@dataclass(frozen=True, slots=True)
class Latency:
    rate: int
    events: int
    achieved_rate: float
    alerts: int
    events_in_alerts: int
    incidents: int
    p50: float
    p95: float
    p99: float
    max: float
    drain_s: float
    wall_s: float
    cpu_s: float
    stage_cpu_s: dict[str, float]
    gc: GcTime
    label: str = ""  # how the run differed ("frozen heap")

    @property
    def cpu_us_per_event(self) -> dict[str, float]:
        return {name: 1e6 * seconds / self.events for name, seconds in self.stage_cpu_s.items() if seconds}


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _publish(bus: Bus, messages: Sequence[tuple[str, str, bytes]], rate: int, observer: Observer,
             started: float) -> None:
    """Publish `messages` (event id, key, value) in chunks of CHUNK on an absolute schedule."""
    for i in range(0, len(messages), CHUNK):
        due = started + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        chunk = messages[i:i + CHUNK]
        now = time.perf_counter()
        for event_id, _, _ in chunk:
            observer.published[event_id] = now
        bus.publish(topics.RAW, [(key, value) for _, key, value in chunk])


def measure_latency(rate: int, messages: Sequence[EventMessage], work: Path, freeze: bool = False) -> Latency:
    settings = load_settings(None, overrides={"data_dir": work / f"rate-{rate}{'-frozen' if freeze else ''}"})
    runtime = build_runtime(settings)
    if freeze:
        freeze_heap()  # what `govsoc up` and the workers do once built
    observer = Observer()
    for worker in runtime.pipeline.workers:
        step = observer.timed(worker.name, worker.step)
        worker.step = observer.wrap(step) if worker.name == "incidents" else step
    stop = threading.Event()
    runner = threading.Thread(target=runtime.pipeline.run, args=(stop, 0.05), name="pipeline")
    with gc_timed() as collector:
        wall, cpu = time.perf_counter(), time.process_time()
        runner.start()
        started = time.perf_counter()
        _publish(runtime.bus, messages, rate, observer, started)
        published = time.perf_counter()
        bus = runtime.bus
        assert isinstance(bus, MemoryBus)  # the embedded default
        while any(bus.lag(worker.name, worker.topics) for worker in runtime.pipeline.workers):
            time.sleep(0.01)
        drained = time.perf_counter()
        stop.set()
        runner.join()
    wall, cpu = drained - wall, time.process_time() - cpu
    incidents = runtime.incidents.count_incidents(TenantScope.everything(), IncidentQuery())
    runtime.close()
    gc.unfreeze()
    lat = observer.latencies
    return Latency(label="frozen heap" if freeze else "", rate=rate, events=len(messages),
                   achieved_rate=len(messages) / (published - started),
                   alerts=len(lat), events_in_alerts=len(observer.alert_events), incidents=incidents,
                   p50=_quantile(lat, 0.50), p95=_quantile(lat, 0.95), p99=_quantile(lat, 0.99),
                   max=max(lat, default=float("nan")), drain_s=drained - published, wall_s=wall, cpu_s=cpu,
                   stage_cpu_s=dict(observer.cpu), gc=collector)


class CpuClock:
    """This thread's CPU time, plus the idle gaps skipped: the clock of a core of one's own."""

    def __init__(self) -> None:
        self._skipped = 0.0
        self._origin = time.thread_time()

    def __call__(self) -> float:
        return time.thread_time() - self._origin + self._skipped

    def skip_to(self, at: float) -> None:
        self._skipped += max(0.0, at - self())


def measure_latency_own_core(rate: int, messages: Sequence[EventMessage], work: Path) -> Latency:
    """`measure_latency` on the clock of a dedicated core: one thread publishes what is due on its
    CPU clock, then runs every worker once, as `Pipeline.run` does; when nothing is due or queued
    the clock jumps to the next publish. What the machine's other jobs take is not counted."""
    runtime = build_runtime(load_settings(None, overrides={"data_dir": work / f"own-core-{rate}"}))
    observer = Observer()
    clock = CpuClock()
    for worker in runtime.pipeline.workers:
        step = observer.timed(worker.name, worker.step)
        worker.step = observer.wrap(step, clock) if worker.name == "incidents" else step
    with gc_timed() as collector:
        wall, cpu = time.perf_counter(), time.process_time()
        sent = 0
        while True:
            now = clock()
            due = min(len(messages), int(now * rate / CHUNK + 1) * CHUNK)
            for i in range(sent, due, CHUNK):
                chunk = messages[i:i + CHUNK]
                for event_id, _, _ in chunk:
                    observer.published[event_id] = i / rate  # on schedule: the sensor is not on this core
                runtime.bus.publish(topics.RAW, [(key, value) for _, key, value in chunk])
            sent = max(sent, due)
            if sum(worker.run_once() for worker in runtime.pipeline.workers) == 0:
                if sent >= len(messages):
                    break
                clock.skip_to(sent / rate)
        finished = clock()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    incidents = runtime.incidents.count_incidents(TenantScope.everything(), IncidentQuery())
    runtime.close()
    lat = observer.latencies
    last_due = (len(messages) - 1) / rate
    return Latency(rate=rate, events=len(messages), achieved_rate=len(messages) / max(finished, last_due),
                   alerts=len(lat), events_in_alerts=len(observer.alert_events), incidents=incidents,
                   p50=_quantile(lat, 0.50), p95=_quantile(lat, 0.95), p99=_quantile(lat, 0.99),
                   max=max(lat, default=float("nan")), drain_s=max(0.0, finished - last_due), wall_s=wall, cpu_s=cpu,
                   stage_cpu_s=dict(observer.cpu), gc=collector)


# --- report ---------------------------------------------------------------------------------------


def throughput_table(rows: Sequence[Throughput]) -> Table:
    base = rows[0].rate
    table = Table("stage", "alerts", "alerts/s", "vs raw insert", "wall s", "CPU s", "incidents", "dropped",
                  title=f"Alerts through noise control and grouping into SQLite, batches of {BATCH}")
    for r in rows:
        table.add_row(r.stage, f"{r.alerts:,}", f"{r.rate:,.0f}", f"{r.rate / base:.2f}x", f"{r.wall_s:.2f}",
                      f"{r.cpu_s:.2f}", f"{r.incidents:,}", r.dropped)
    return table


def latency_table(rows: Sequence[Latency], title: str) -> Table:
    table = Table("offered events/s", "published events/s", "events", "alerts", "events in alerts", "incidents",
                  "p50 ms", "p95 ms", "p99 ms", "max ms", "drain after last publish s", "wall s", "CPU s",
                  title=title)
    for r in rows:
        table.add_row(f"{r.rate:,} {r.label}".strip(), f"{r.achieved_rate:,.0f}", f"{r.events:,}", f"{r.alerts:,}",
                      f"{r.events_in_alerts:,} ({100 * r.events_in_alerts / r.events:.1f} %)", f"{r.incidents:,}",
                      f"{1000 * r.p50:.0f}", f"{1000 * r.p95:.0f}", f"{1000 * r.p99:.0f}", f"{1000 * r.max:.0f}",
                      f"{r.drain_s:.2f}", f"{r.wall_s:.1f}", f"{r.cpu_s:.1f}")
    return table


def cpu_table(rows: Sequence[Latency], title: str) -> Table:
    """Where the pipeline thread's CPU goes, per event; one thread (the GIL), so 1e6 / total is the
    most events/s it could keep up with on one whole core."""
    table = Table("offered events/s", "ingest µs/event", "detect µs/event", "incidents µs/event",
                  "total µs/event", "one-core ceiling events/s", "GC µs/event (in the steps)",
                  "GC full runs, longest ms", "CPU s / wall s", title=title)
    for r in rows:
        per = r.cpu_us_per_event
        total = sum(per.values())
        table.add_row(f"{r.rate:,} {r.label}".strip(), f"{per.get('ingest', 0):.0f}", f"{per.get('detect', 0):.0f}",
                      f"{per.get('incidents', 0):.0f}", f"{total:.0f}", f"{1e6 / total:,.0f}",
                      f"{1e6 * r.gc.total_s / r.events:.0f}", f"{r.gc.full}, {1000 * r.gc.longest_s:.0f}",
                      f"{r.cpu_s / r.wall_s:.2f}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--rates", type=int, nargs="+", default=[5000])
    parser.add_argument("--seconds", type=int, default=20, help="publishing time per rate")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--compare-freeze", action="store_true",
                        help="on the wall clock, each rate twice more: without, then with `freeze_heap`")
    parser.add_argument("--skip-shared", action="store_true",
                        help="latency on a core of its own only, not on the wall clock of this machine")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    console = Console(width=200)
    tree = TenantTree.from_config(load_settings(None).tenants)
    with tempfile.TemporaryDirectory(prefix="govsoc-bench-incidents-") as tmp:
        work = Path(tmp)
        if not args.skip_throughput:
            alerts = alert_mix(args.alerts)
            rows = [measure_throughput("raw insert", alerts, work, tree, None),
                    measure_throughput("grouping", alerts, work, tree, NoiseSettings()),
                    measure_throughput("grouping + noise", alerts, work, tree, NOISE)]
            console.print(throughput_table(rows))
        shared: list[Latency] = []
        own: list[Latency] = []
        for rate in [] if args.skip_latency else args.rates:
            messages = event_messages(demo_events(rate * args.seconds, work))
            if not args.skip_shared:
                shared.append(measure_latency(rate, messages, work))
            if args.compare_freeze:
                for freeze in (False, True):
                    shared.append(measure_latency(rate, messages, work, freeze=freeze))
            own.append(measure_latency_own_core(rate, messages, work))
        for measured, clock in ((shared, "wall clock, this machine as it is"), (own, "CPU clock: a core of its own")):
            if measured:
                console.print(latency_table(measured, f"Event published -> its incident committed ({clock})"))
                console.print(cpu_table(measured, f"CPU of the pipeline thread per event ({clock})"))
        with open("/proc/loadavg", encoding="ascii") as f:
            console.print(f"load average (1, 5, 15 min) at the end: {' '.join(f.read().split()[:3])}")


if __name__ == "__main__":
    main()
