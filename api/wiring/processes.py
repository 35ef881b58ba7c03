"""Scale-out processes: one pipeline stage per process (`govsoc worker STAGE`), around a shared bus.

In: `Settings` (the bus and store URLs) and a `Stage`. Out: a `StageProcess` whose `run(stop)`
polls the stage's topics, runs its step and commits, until `stop` is set (SIGTERM/SIGINT).

    ingest     RAW, DEAD_LETTERS -> event store, EVENTS      (+ HEARTBEATS -> sensor store)
    detect     EVENTS -> Sigma engine -> ALERTS
    incidents  ALERTS -> incident store (grouping) -> INCIDENTS  (+ the silent-sensor watch)
    playbooks  INCIDENTS -> triggered playbook runs

Ack/commit contract (the at-least-once loop of `Worker.run_once`):
- A batch's offsets are committed only after its step returned, and a step returns only once its
  writes are durable (the store's write returned) and what it published was acknowledged by the
  bus. A crash anywhere before the commit delivers the batch again to whichever member owns its
  partition next; deterministic ids make the second write an overwrite, not a duplicate.
- A step that raises (a store or bus that is unreachable) commits nothing: the worker leaves its
  group, waits with exponential back-off (`RETRY_FIRST_S` doubling to `RETRY_MAX_S`) and rejoins
  from the last commit. Meanwhile the lag grows (`govsoc_worker_lag`): back-pressure, not loss.
- A stop (SIGTERM) is seen between batches: the batch in hand is finished and committed, then the
  members leave their groups, so a rolling restart repeats nothing.
- Consumer-group timing (session, heartbeat, poll interval, join timeout) and the partition
  count of the topics are parameters of the bus URL (`pipeline/bus/kafka.py`).
- Detection state is partitioned like the events topic (events are keyed tenant/entity,
  `pipeline.bus.keys`) and checkpointed on the bus before each commit (`detect_state`), so the
  new owner of a partition continues the correlation windows the old one had open.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import orjson
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from api.wiring.detect_state import PartitionedDetect, state_key
from api.wiring.runtime import Runtime, Worker, build_playbook_runner, build_runtime, playbook_paths
from config.errors import GovsocError
from config.settings import Settings
from config.tenants import TenantScope
from detections.intel import IntelFeed
from detections.ml import MlConfig, MlFeed, SharedRegistry
from detections.sigma.match import SigmaEngine
from detections.stream import DetectStep
from detections.watch import WatchDetector
from pipeline.bus import Bus, Message, topics
from pipeline.bus.checkpoints import open_checkpoints
from pipeline.bus.lag import group_lag
from pipeline.records import Incident, utc_now
from playbooks.load import load_playbooks
from playbooks.runner import PlaybookRunner
from playbooks.triggers import triggered_playbooks

log = structlog.get_logger(__name__)

RETRY_FIRST_S = 0.5
RETRY_MAX_S = 15.0
REPORT_EVERY_S = 1.0


class Stage(StrEnum):
    INGEST = "ingest"
    DETECT = "detect"
    INCIDENTS = "incidents"
    PLAYBOOKS = "playbooks"


# The runtime's workers each stage runs; their names are their consumer groups.
STAGE_WORKERS: dict[Stage, tuple[str, ...]] = {
    Stage.INGEST: ("ingest", "heartbeats"),
    Stage.DETECT: ("detect",),
    Stage.INCIDENTS: ("incidents",),
    Stage.PLAYBOOKS: ("playbooks",),
}


@dataclass
class StageStats:
    """What a stage process did so far; `lag` is None until its members have partitions."""

    stage: Stage
    messages: int = 0
    batches: int = 0
    failures: int = 0
    lag: int | None = None
    last_error: str = ""


class StageMetrics:
    """Prometheus metrics of one stage process, in a registry of its own (served by the CLI)."""

    def __init__(self, stage: Stage) -> None:
        self.registry = CollectorRegistry()
        labels = {"stage": stage.value}
        self.messages = Counter("govsoc_worker_messages", "Messages processed and committed",
                                ["stage"], registry=self.registry).labels(**labels)
        self.failures = Counter("govsoc_worker_step_failures", "Batches whose step raised (retried)",
                                ["stage"], registry=self.registry).labels(**labels)
        self.lag = Gauge("govsoc_worker_lag", "Messages of the stage's topics its group has not committed",
                         ["stage"], registry=self.registry).labels(**labels)


@dataclass
class StageProcess:
    """One stage's workers over an open runtime; `run` until stopped, then `close`."""

    stage: Stage
    runtime: Runtime
    workers: list[Worker]
    watch: Callable[[datetime], object] | None = None
    watch_every_s: float = 60.0
    stats: StageStats = field(init=False)
    metrics: StageMetrics = field(init=False)

    def __post_init__(self) -> None:
        self.stats = StageStats(self.stage)
        self.metrics = StageMetrics(self.stage)

    def run(self, stop: threading.Event, on_progress: Callable[[StageStats], None],
            poll_timeout_s: float = 0.5) -> StageStats:
        """Poll, step, commit until `stop` is set; failing steps are retried with back-off."""
        retry_s = RETRY_FIRST_S
        next_report = next_watch = 0.0
        try:
            while not stop.is_set():
                try:
                    next_watch = self._watch_if_due(next_watch)
                    self._count(self._run_round(poll_timeout_s))
                    retry_s = RETRY_FIRST_S
                except GovsocError as e:
                    self._failed(e, retry_s)
                    stop.wait(retry_s)
                    retry_s = min(retry_s * 2, RETRY_MAX_S)
                if time.monotonic() >= next_report:
                    self._report(on_progress)
                    next_report = time.monotonic() + REPORT_EVERY_S
        finally:
            with contextlib.suppress(GovsocError):  # a last report must not hide the real error
                self._report(on_progress)
        return self.stats

    def _run_round(self, poll_timeout_s: float) -> int:
        """One batch from each worker; when all were idle, wait on the first for new messages."""
        done = sum(worker.run_once() for worker in self.workers)
        return done or self.workers[0].run_once(poll_timeout_s)

    def _watch_if_due(self, next_watch: float) -> float:
        if self.watch is None or time.monotonic() < next_watch:
            return next_watch
        self.watch(utc_now())
        return time.monotonic() + self.watch_every_s

    def _count(self, messages: int) -> None:
        if messages:
            self.stats.messages += messages
            self.stats.batches += 1
            self.metrics.messages.inc(messages)

    def _failed(self, error: GovsocError, retry_s: float) -> None:
        self.stats.failures += 1
        self.stats.last_error = str(error)
        self.metrics.failures.inc()
        log.error("worker_step_failed", stage=self.stage.value, error=str(error), retry_in_s=retry_s)

    def _report(self, on_progress: Callable[[StageStats], None]) -> None:
        lags = [lag for lag in (_lag(worker, self.runtime.bus) for worker in self.workers) if lag is not None]
        self.stats.lag = sum(lags) if lags else None
        if self.stats.lag is not None:
            self.metrics.lag.set(self.stats.lag)
        on_progress(self.stats)

    def close(self) -> None:
        """Leave the groups (nothing more is committed), then close the bus and stores."""
        try:
            for worker in self.workers:
                worker.close()
                if isinstance(worker.step, PartitionedDetect):
                    worker.step.close()  # its checkpoint reader
        finally:
            self.runtime.close()


def _lag(worker: Worker, bus: Bus) -> int | None:
    """The group's lag (committed, not polled: it keeps counting while the member is out of its
    group retrying a batch, which is when back-pressure must show)."""
    return group_lag(bus, worker.name, worker.topics)


def build_stage(settings: Settings, stage: Stage) -> StageProcess:
    """Open the runtime and pick (or build) the workers of `stage`; nothing joins a group yet."""
    runtime = build_runtime(settings)
    by_name = {worker.name: worker for worker in runtime.pipeline.workers}
    if stage is Stage.PLAYBOOKS:
        step = PlaybookStep(runtime)
        workers = [Worker("playbooks", runtime.bus, [topics.INCIDENTS], step, settings.pipeline.batch_size)]
        # runs cut off with the process that advanced them (a worker, or the API after an approval)
        return StageProcess(stage, runtime, workers, watch=step.runner.resume_interrupted)
    workers = [by_name[name] for name in STAGE_WORKERS[stage]]
    if stage is Stage.DETECT:
        detect = _partitioned_detect(settings, runtime)
        workers[0].step = detect
        return StageProcess(stage, runtime, workers, watch=_ticking(detect, workers[0]),
                            watch_every_s=runtime.pipeline.watch_every_s)
    if stage is Stage.INCIDENTS:
        workers[0].step = _publishing_incidents(workers[0].step, runtime.bus)
        return StageProcess(stage, runtime, workers, watch=runtime.pipeline.watch,
                            watch_every_s=runtime.pipeline.watch_every_s)
    return StageProcess(stage, runtime, workers)


def _partitioned_detect(settings: Settings, runtime: Runtime) -> PartitionedDetect:
    """One engine and one ML feed per partition of the events topic, checkpointed on the bus
    (`detect_state`); the feeds share the models, loaded once per revision (`SharedRegistry`)."""
    ruleset = runtime.engine.ruleset
    max_groups = settings.detections.correlation_max_groups
    intel = IntelFeed(runtime.intel, runtime.tree)
    registry = SharedRegistry(settings.data_dir / "models")
    tenants, ml_config = [t.id for t in runtime.tree], MlConfig.of(settings)
    lateness, recent_hits = settings.detections.correlation_lateness, settings.detections.correlation_recent_hits
    return PartitionedDetect(lambda: SigmaEngine(ruleset, max_groups=max_groups, lateness=lateness,
                                                 recent_hits=recent_hits),
                             lambda engine, ml: DetectStep(engine, runtime.bus, intel=intel, ml=ml,
                                                           watch=WatchDetector(settings.service_watch)),
                             open_checkpoints(runtime.bus), group="detect",
                             key=state_key(settings.data_dir / "detect-state.key"),
                             make_ml=lambda: MlFeed(registry, tenants, ml_config, timezone=settings.timezone))


def _ticking(detect: PartitionedDetect, worker: Worker) -> Callable[[datetime], object]:
    """The detect stage's clock: ML windows of quiet tenants close and are scored, on the
    partitions the worker's member owns now."""
    def tick(now: datetime) -> object:
        return detect.tick(now, worker.consumer.assignment())
    return tick


def _publishing_incidents(step: Callable[[Sequence[Message]], object],
                          bus: Bus) -> Callable[[Sequence[Message]], object]:
    """The incident step, then each incident it opened or updated on `topics.INCIDENTS` (for
    the playbook workers), published before the worker commits the alerts."""

    def run(messages: Sequence[Message]) -> object:
        touched = step(messages)
        incidents = [i for i in touched if isinstance(i, Incident)] if isinstance(touched, list) else []
        if incidents:
            bus.publish(topics.INCIDENTS, [(i.tenant, orjson.dumps({"id": i.id, "tenant": i.tenant}))
                                           for i in incidents])
        return touched

    return run


def attach_playbooks(runtime: Runtime, runner: PlaybookRunner) -> PlaybookStep:
    """The embedded back end's playbooks (`govsoc up`): the incident worker publishes each incident
    it opened or updated on `topics.INCIDENTS`, and a playbook worker in the same pipeline starts
    the runs they trigger, with `runner` (the process's, so the API's approvals and these runs
    share connectors). The scale-out back end runs the same two halves as separate workers."""
    step = PlaybookStep(runtime, runner)
    for worker in runtime.pipeline.workers:
        if worker.name == "incidents":
            worker.step = _publishing_incidents(worker.step, runtime.bus)
    runtime.pipeline.workers.append(
        Worker("playbooks", runtime.bus, [topics.INCIDENTS], step, runtime.settings.pipeline.batch_size))
    return step


class PlaybookStep:
    """INCIDENTS messages -> a run of each playbook the incident triggers.

    A run's id is (playbook, incident, the incident's first sighting, mode), so a redelivered
    message finds its run and resumes it instead of starting another. The connectors and the
    playbook directories are the deployment's (`playbooks` settings); a connector the settings
    describe badly is a `ConfigError` here, when the worker starts.
    """

    def __init__(self, runtime: Runtime, runner: PlaybookRunner | None = None) -> None:
        self._runtime = runtime
        self._runner = runner if runner is not None else build_playbook_runner(runtime)
        self._playbooks, errors = load_playbooks(playbook_paths(runtime.settings))
        for error in errors:
            log.warning("playbook_skipped", error=str(error))

    @property
    def runner(self) -> PlaybookRunner:
        """The runner the runs start with: approvals and resumes of this process go through it."""
        return self._runner

    def __call__(self, messages: Sequence[Message]) -> int:
        started = 0
        for message in messages:
            try:
                ref = orjson.loads(message.value)
                incident_id, tenant = str(ref["id"]), str(ref["tenant"])
            except (orjson.JSONDecodeError, KeyError, TypeError) as e:
                log.warning("incident_ref_skipped", offset=message.offset, reason=str(e))
                continue
            scope = TenantScope(root=tenant, tenant_ids=frozenset({tenant}))
            incident = self._runtime.incidents.incident(scope, incident_id)
            if incident is None:
                continue
            for playbook in triggered_playbooks(incident, self._playbooks, self._runtime.tree):
                self._runner.start(incident, playbook, incident.first_seen)
                started += 1
        return started
