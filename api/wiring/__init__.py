"""Process wiring: the one place that turns `Settings` into running parts.

- runtime: `build_runtime` (stores, bus, rules, the pipeline's workers), `Worker` (the
  at-least-once poll/step/commit loop body), `Pipeline` (drain or run them all in one process),
  and the identity and playbook-runner builders.
- processes: one stage per process for the scale-out back end (`govsoc worker STAGE`):
  `build_stage`, `StageProcess.run(stop)`, metrics and back-off.
- setup: `setup_backends` for `govsoc setup` (topics, index templates, tables, retention).

The ack/commit contract is the same everywhere: a worker commits a batch's offsets only after
its step returned, and a step returns only once its writes are durable.
"""

from api.wiring.processes import (
    STAGE_WORKERS,
    PlaybookStep,
    Stage,
    StageProcess,
    StageStats,
    attach_playbooks,
    build_stage,
)
from api.wiring.runtime import (
    Pipeline,
    ReplayStats,
    Runtime,
    Worker,
    build_identity,
    build_playbook_runner,
    build_rule_service,
    build_runtime,
    freeze_heap,
    open_intel_store,
)
from api.wiring.setup import SetupReport, setup_backends

__all__ = [
    "STAGE_WORKERS",
    "Pipeline",
    "PlaybookStep",
    "attach_playbooks",
    "ReplayStats",
    "Runtime",
    "SetupReport",
    "Stage",
    "StageProcess",
    "StageStats",
    "Worker",
    "build_identity",
    "build_playbook_runner",
    "build_rule_service",
    "build_runtime",
    "build_stage",
    "freeze_heap",
    "open_intel_store",
    "setup_backends",
]
