"""The runtime: `Settings` turned into open stores, a bus, rules and the pipeline's workers.

`build_runtime` opens the stores and the bus, loads the rules and connects the workers:

    sensors --RAW/DEAD_LETTERS--> IngestStep --EVENTS--> DetectStep --ALERTS--> IncidentStep

`Pipeline.drain()` runs every worker until the bus is empty (replay, demo, tests);
`Pipeline.run(stop)` keeps polling until `stop` is set (`govsoc up`). Each worker commits its
offset only after its step returned: at-least-once, made exact by idempotent writes.

Ack/commit contract: a `Worker` polls, runs its step (which returns only once its writes are
durable and its output is acknowledged by the bus), and only then commits; a step that raises
commits nothing, and the worker rejoins its group so the batch comes again. Events and raw
messages are keyed `tenant/entity` (`pipeline.bus.keys`), so one entity's events reach one
detect worker in order. A worker joins its group on its first poll, not when it is built.

On a bus shared between processes (`kafka://`), `replay` publishes only: the `govsoc worker`
processes consume; on the in-process bus (`memory://`) it also drains the pipeline itself.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from api.identity.service import IdentityPolicy, IdentityService
from api.identity.store import SqliteIdentityStore
from config.errors import ConfigError, GovsocError, SourceLocation
from config.settings import Settings
from config.tenants import TenantScope, TenantTree
from detections.incidents import IncidentLifecycle, IncidentService
from detections.incidents.clocks import WATCHED_STATES, deadline_alerts
from detections.intel import IntelFeed, IntelStore
from detections.ml import MlConfig, MlFeed, ModelRegistry
from detections.sensor_watch import sensor_statuses, silent_sensor_alerts
from detections.sigma.errors import RuleError
from detections.sigma.load import builtin_rules_dir, load_rules
from detections.sigma.manage import RuleService
from detections.sigma.match import SigmaEngine
from detections.sigma.state import SqliteRuleStateStore
from detections.stream import DetectStep, IncidentStep
from detections.watch import WatchDetector
from pipeline.bus import Bus, Consumer, Message, open_bus, topics
from pipeline.bus.keys import KeyedBus, entity_key, rekey_event
from pipeline.bus.memory import MemoryBus
from pipeline.enrich import Enricher
from pipeline.heartbeats import HeartbeatStep
from pipeline.ingest import IngestStep
from pipeline.records import Alert, Incident, utc_now
from pipeline.store.base import EventStore, IncidentQuery, IncidentStore, SensorStore
from pipeline.store.registry import open_event_store, open_incident_store, open_sensor_store
from pipeline.store.sqlite_db import sqlite_file_or
from playbooks.connectors import ConnectorRegistry
from playbooks.errors import PlaybookError
from playbooks.load import LIBRARY
from playbooks.query import PlaybookSources
from playbooks.runner import PlaybookRunner
from playbooks.runs import open_run_store
from sensors.files import FileSource, LogBatch
from sensors.formats import read_file

log = structlog.get_logger(__name__)
DEADLINE_PAGE = 1000  # incidents read per query by the deadline watch


class Worker:
    """A group member and the step that processes what it polls.

    The offset is committed only after the step returned (at-least-once). If the step raises
    (say, the store is unavailable), nothing is committed and the worker rejoins its group, so the
    same messages come again from the last commit; the error propagates to the caller.
    """

    def __init__(self, name: str, bus: Bus, topics: Sequence[str], step: Callable[[Sequence[Message]], object],
                 batch_size: int) -> None:
        self.name = name
        self._bus = bus
        self._topics = tuple(topics)
        self.step = step
        self.batch_size = batch_size
        self._consumer: Consumer | None = None

    @property
    def topics(self) -> tuple[str, ...]:
        return self._topics

    @property
    def consumer(self) -> Consumer:
        """The group member, created on first use (a Kafka member joins its group on its first poll)."""
        if self._consumer is None:
            self._consumer = self._bus.consumer(self._topics, self.name)
        return self._consumer

    def close(self) -> None:
        """Leave the group without committing (what was polled and not committed comes again)."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close()

    def run_once(self, timeout_s: float = 0.0) -> int:
        messages = self.consumer.poll(self.batch_size, timeout_s)
        if messages:
            try:
                self.step(messages)
            except BaseException:
                self.close()  # rejoin on the next poll, from the last commit
                raise
            self.consumer.commit()
        return len(messages)


@dataclass
class ReplayStats:
    events: int = 0
    dead_letters: int = 0
    alerts: int = 0
    incidents: int = 0
    playbook_runs: int = 0
    playbook_runs_done: int = 0  # the demo's run approved and taken to its end
    report: str | None = None  # the demo's agency report reference
    files: list[str] = field(default_factory=list)


@dataclass
class Runtime:
    settings: Settings
    tree: TenantTree
    bus: Bus
    events: EventStore
    incidents: IncidentStore
    sensors: SensorStore
    engine: SigmaEngine
    rule_issues: list[RuleError]
    pipeline: Pipeline
    intel: IntelStore

    def close(self) -> None:
        self.bus.close()
        self.events.close()
        self.incidents.close()
        self.sensors.close()
        self.intel.close()


class Pipeline:
    def __init__(self, bus: Bus, workers: list[Worker], detect: DetectStep, incident: IncidentStep) -> None:
        self.bus = bus
        self.workers = workers
        self._detect = detect
        self._incident = incident
        self.alerts_raised = 0
        self.incidents_touched: set[str] = set()
        self.watch: Callable[[datetime], object] | None = None
        self.watch_every_s = 60.0

    def drain(self) -> int:
        """Run all workers until none has anything left; returns messages processed."""
        total = 0
        while True:
            done = sum(worker.run_once() for worker in self.workers)
            total += done
            if done == 0:
                return total

    def run(self, stop: threading.Event, poll_timeout_s: float = 0.2, retry_s: float = 1.0) -> None:
        """Process until `stop` is set; a failing step is logged and retried after `retry_s`.

        Every `watch_every_s` it also runs `watch` (silent sensors), whose alerts go to the bus.
        """
        next_watch = 0.0
        while not stop.is_set():
            try:
                if self.watch is not None and time.monotonic() >= next_watch:
                    self.watch(utc_now())
                    next_watch = time.monotonic() + self.watch_every_s
                if sum(worker.run_once() for worker in self.workers) == 0:
                    self.workers[0].run_once(poll_timeout_s)
            except GovsocError as e:
                log.error("pipeline_step_failed", error=str(e), retry_in_s=retry_s)
                stop.wait(retry_s)

    def replay(self, paths: Sequence[Path], source: FileSource,
               on_progress: Callable[[int], None] = lambda n: None) -> ReplayStats:
        """Feed log files through the file sensor (captures through the packet sensor) into the pipeline."""
        batches = (batch for path in paths for batch in read_file(path, source, on_progress=on_progress))
        stats = self.replay_batches(batches)
        stats.files.extend(str(path) for path in paths)
        return stats

    @property
    def is_in_process(self) -> bool:
        """Whether this process owns the bus (`memory://`): then nobody else will drain it."""
        bus = self.bus.inner if isinstance(self.bus, KeyedBus) else self.bus
        return isinstance(bus, MemoryBus)

    def replay_batches(self, batches: Iterable[LogBatch]) -> ReplayStats:
        """Publish what a sensor made (events, dead letters); on the in-process bus, drain the
        pipeline after each batch. On a shared bus the workers raise the alerts (stats count 0)."""
        stats = ReplayStats()
        alerts_before = self.alerts_raised
        self.incidents_touched = set()
        draining = self.is_in_process
        for batch in batches:
            if batch.events:
                self.bus.publish(topics.RAW, [(entity_key(e.tenant, e.doc), e.to_json()) for e in batch.events])
            if batch.dead_letters:
                self.bus.publish(topics.DEAD_LETTERS, [(d.tenant, d.to_json()) for d in batch.dead_letters])
            stats.events += len(batch.events)
            stats.dead_letters += len(batch.dead_letters)
            if draining:
                self.drain()
        stats.alerts = self.alerts_raised - alerts_before
        stats.incidents = len(self.incidents_touched)  # distinct incidents opened or updated
        return stats


def build_runtime(settings: Settings) -> Runtime:
    tree = TenantTree.from_config(settings.tenants)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    bus = open_bus(settings.pipeline.bus_url)
    events = open_event_store(settings.events_url)
    incidents = open_incident_store(settings.incidents_url)
    sensors = open_sensor_store(settings.sensors_url)
    rule_paths = [builtin_rules_dir()] if settings.detections.include_builtin_rules else []
    ruleset, issues = load_rules([*rule_paths, *settings.detections.rule_dirs])
    for issue in issues:
        log.warning("rule_skipped", error=str(issue))
    engine = SigmaEngine(ruleset, max_groups=settings.detections.correlation_max_groups,
                         lateness=settings.detections.correlation_lateness,
                         recent_hits=settings.detections.correlation_recent_hits)
    intel = open_intel_store(settings, tree)
    ml = MlFeed(ModelRegistry(settings.data_dir / "models"), [t.id for t in tree], MlConfig.of(settings),
                timezone=settings.timezone)
    detect = DetectStep(engine, bus, intel=IntelFeed(intel, tree), ml=ml, watch=WatchDetector(settings.service_watch))
    incident = IncidentStep(IncidentService(incidents, tree, settings.incidents))
    pipeline = Pipeline(bus, [], detect, incident)
    batch = settings.pipeline.batch_size
    # Enriched events are keyed tenant/entity, so detection state is partitioned by entity.
    ingest = IngestStep(Enricher(tree), events, KeyedBus(bus, {topics.EVENTS: rekey_event}))

    def detect_counted(messages: Sequence[Message]) -> object:
        alerts = detect(messages)
        pipeline.alerts_raised += len(alerts)
        return alerts

    def incident_counted(messages: Sequence[Message]) -> object:
        touched = incident(messages)
        pipeline.incidents_touched.update(i.id for i in touched)
        return touched

    pipeline.workers.extend([
        Worker("ingest", bus, [topics.RAW, topics.DEAD_LETTERS], ingest, batch),
        Worker("detect", bus, [topics.EVENTS], detect_counted, batch),
        Worker("incidents", bus, [topics.ALERTS], incident_counted, batch),
        Worker("heartbeats", bus, [topics.HEARTBEATS], HeartbeatStep(sensors, tree), batch),
    ])
    sensor_watch = _sensor_watch(settings, tree, sensors, bus)

    deadline_watch = _deadline_watch(settings, incidents, bus)

    def watch(now: datetime) -> tuple[object, list[Alert], list[Alert]]:
        """Silent sensors, the ML windows of tenants that fell quiet, and incident deadlines due
        soon or missed (each publishes its alerts)."""
        return sensor_watch(now), detect.tick(now), deadline_watch(now)

    pipeline.watch = watch
    pipeline.watch_every_s = settings.sensor_watch.check_every_s
    return Runtime(settings, tree, bus, events, incidents, sensors, engine, issues, pipeline, intel)


def build_playbook_runner(runtime: Runtime,
                          extra_connectors: Mapping[str, Mapping[str, Any]] | None = None) -> PlaybookRunner:
    """The playbook runner over the runtime's incident store; runs live beside the incidents.

    Its connectors are the deployment's (`playbooks.connectors`, built and checked now: a bad one
    is a `ConfigError` at start, not at the first run that needs it), plus `extra_connectors` (the
    demo's loopback one), which replace configured ones of the same name.
    Its read-only steps read the runtime's event store (a `query` by rule hunts it by URL with the
    rules the engine runs), and its indicator store (`enrich` with `intel`, `hunt_indicators`)."""
    lifecycle = IncidentLifecycle(runtime.incidents, runtime.settings.incidents)
    connectors = build_connectors(runtime.settings, extra_connectors or {})
    runs = open_run_store(runtime.settings.incidents_url, runtime.settings.data_dir)
    sources = PlaybookSources(events=runtime.events, events_url=runtime.settings.events_url,
                              rules=runtime.engine.ruleset, intel=runtime.intel,
                              incident_settings=runtime.settings.incidents)
    return PlaybookRunner(runtime.incidents, lifecycle, connectors, runtime.tree, runs, sources=sources)


def build_connectors(settings: Settings, extra: Mapping[str, Mapping[str, Any]]) -> ConnectorRegistry:
    """Every configured connector built by its own class, then `extra` (replacing same names).

    Raises `ConfigError` at `playbooks.connectors.<name>[.key]`: an option the connector's class
    refuses, or a `token_file` / `credentials_file` that is not a readable file (read again at
    each send, so a rotated secret needs no restart, but one missing at start is a fault now).
    """
    registry = ConnectorRegistry()
    for name, configured in settings.playbooks.connectors.items():
        if name in extra:
            log.warning("connector_replaced", connector=name, reason="the demo's own connector of that name")
            continue
        options = configured.options()
        where = f"playbooks.connectors.{name}"
        try:
            connector = ConnectorRegistry.from_config({name: options}).get(name)
        except PlaybookError as e:
            raise ConfigError(e.reason.removeprefix(f"connector {name!r}: "), SourceLocation(field=where)) from e
        for key in ("token_file", "credentials_file"):
            path = options.get(key)
            if path is not None and not (Path(path).is_file() and os.access(path, os.R_OK)):
                raise ConfigError(f"{path}: not a readable file", SourceLocation(field=f"{where}.{key}"))
        registry.add(connector)
    demo = ConnectorRegistry.from_config(extra)
    for name in extra:
        registry.add(demo.get(name))
    return registry


def playbook_paths(settings: Settings) -> list[Path]:
    """Where playbooks load from: the shipped library (unless turned off), then `playbooks.playbook_dirs`."""
    builtin = [LIBRARY] if settings.playbooks.include_builtin_playbooks else []
    return [*builtin, *settings.playbooks.playbook_dirs]


def freeze_heap() -> None:
    """Take what the process has built so far (compiled rules and their regexes, the tenant tree,
    settings, modules) out of the garbage collector's full collections (`gc.freeze`, after one last
    collection). Those objects live as long as the process, and every full collection would walk
    them all again while a pipeline batch waits: docs/performance.md measures the p99 with and
    without (bench/incidents.py --compare-freeze). Call once, after building, before serving."""
    gc.collect()
    gc.freeze()


def _deadline_watch(settings: Settings, incidents: IncidentStore, bus: Bus) -> Callable[[datetime], list[Alert]]:
    """Publish an alert for each incident deadline that became due soon or overdue (clocks.py).

    The store keeps one alert per id, so another process raising the same ones adds nothing; this
    one remembers what it published, so it does not publish them again every round."""
    published: set[str] = set()

    def watch(now: datetime) -> list[Alert]:
        watched: list[Incident] = []
        while True:
            page = incidents.incidents(TenantScope.everything(), IncidentQuery(
                states=WATCHED_STATES, limit=DEADLINE_PAGE, offset=len(watched)))
            watched.extend(page)
            if len(page) < DEADLINE_PAGE:
                break
        alerts = [a for a in deadline_alerts(watched, settings.incidents, now) if a.id not in published]
        if alerts:
            bus.publish(topics.ALERTS, [(a.tenant, a.to_json()) for a in alerts])
            published.update(a.id for a in alerts)
            log.info("incident_deadline_alerts", count=len(alerts))
        return alerts

    return watch


def _sensor_watch(settings: Settings, tree: TenantTree, sensors: SensorStore,
                  bus: Bus) -> Callable[[datetime], object]:
    """Publish an alert for each silent sensor; the first run is when never-seen sensors start counting."""
    started: list[datetime] = []
    silent_after = timedelta(seconds=settings.sensor_watch.silent_after_s)

    def watch(now: datetime) -> list[Alert]:
        if not started:
            started.append(now)
        first_seen = started[0]
        statuses = sensor_statuses(tree, tree.descendants(tree.root), sensors.latest_heartbeats(
            TenantScope.everything()), now, silent_after)
        if now - first_seen < silent_after:  # give never-seen sensors time to report after a start
            statuses = [s for s in statuses if s.state != "never"]
        alerts = silent_sensor_alerts(statuses, now, first_seen)
        if alerts:
            bus.publish(topics.ALERTS, [(a.tenant, a.to_json()) for a in alerts])
        return alerts

    return watch


def open_intel_store(settings: Settings, tree: TenantTree) -> IntelStore:
    """Indicators and sightings: in the incidents' SQLite file, else `DATA_DIR/intel.db`."""
    return IntelStore(sqlite_file_or(settings.incidents_url, settings.data_dir / "intel.db"), tree)


def build_identity(settings: Settings, incidents: IncidentStore) -> IdentityService:
    """Users, keys and sessions in `DATA_DIR/identity.db`, audited into the incident store's trail."""
    api = settings.api
    policy = IdentityPolicy(session_idle=api.session_idle, session_max=api.session_max,
                            free_failures=api.login_free_failures, lock_max_s=api.login_lock_max.total_seconds())
    store = SqliteIdentityStore(settings.data_dir / "identity.db")
    return IdentityService(store, incidents.append_audit, policy)


def build_rule_service(runtime: Runtime) -> RuleService:
    """Enable/disable, exceptions and uploads of Sigma rules, applied to the running engine.

    The state lives in the incidents' SQLite file (else `DATA_DIR/govsoc.db`), uploads under
    `DATA_DIR/rules/uploaded`; every change is audited and reloads the engine before its next batch.
    """
    settings, tree, engine = runtime.settings, runtime.tree, runtime.engine
    path = sqlite_file_or(settings.incidents_url, settings.data_dir / "govsoc.db")
    state = SqliteRuleStateStore(path, runtime.incidents.append_audit)
    rule_dirs = [builtin_rules_dir()] if settings.detections.include_builtin_rules else []
    return RuleService([*rule_dirs, *settings.detections.rule_dirs], settings.data_dir / "rules" / "uploaded", state,
                       tree, runtime.incidents.append_audit,
                       on_reload=lambda ruleset, rules_state: engine.request_reload(ruleset, rules_state, tree))
