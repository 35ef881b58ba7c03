"""Run a playbook on an incident, step by step, durably, stopping at approvals.

In: an incident and a playbook (`start`), a run id after a restart (`resume`), a person's
decision (`approve`, `reject`). Out: the `Run` as recorded in the run store; incident changes go
through `IncidentLifecycle`, and every run and step change is an entry in `store.append_audit`.

Contract:
- A run is recorded (with a snapshot of its playbook) before its first step; its id derives from
  the playbook, incident and start time, so starting the same run twice runs it once.
- Each step's state (pending, running, waiting_approval, done, failed, skipped) and output are
  stored as they change; the run's `cursor` names the step to run next, so `resume` continues
  where a crashed process stopped. Incident changes made by a re-run step use the step's first
  start time, so a repeated comment has the same id and is stored once.
- Side effects (notify_webhook, contain) are keyed `run id:step id`. The key is recorded as
  started BEFORE the connector is called and marked done after. On resume, a side effect marked
  done is never sent again: its recorded result is reused. One recorded as started but never
  marked done (the process died during the call) is sent again with the SAME `Idempotency-Key`,
  so delivery is at-least-once and a receiver that honours the key acts exactly once.
- A side-effect step that requires approval runs only when the latest approval step of the run
  was approved; after a rejection it is skipped (the steps without side effects still run).
- Dry run: nothing changes outside the run store (no incident change, no request); each step
  records what it would have done, and approvals count as given.
- No wall clock: every time comes from the `now` the caller passes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from config.errors import GovsocError
from config.tenants import TenantTree
from detections.incidents.lifecycle import IncidentLifecycle
from pipeline.ids import stable_id
from pipeline.records import Incident, to_iso
from pipeline.store.base import AlertQuery, IncidentStore
from playbooks.connectors import ConnectorRegistry, ConnectorRequest
from playbooks.errors import PlaybookError
from playbooks.model import (
    ApprovalStep,
    AssignStep,
    BranchStep,
    CommentStep,
    ContainStep,
    EnrichStep,
    EscalateStep,
    NotifyWebhookStep,
    Playbook,
    SetStateStep,
    Step,
)
from playbooks.runs import Run, RunMode, RunState, RunStore, StepState

log = structlog.get_logger(__name__)

ACTOR = "system:playbooks"
_TEMPLATE = re.compile(r"\$\{([A-Za-z0-9_.@-]+)\}")


@dataclass(frozen=True, slots=True)
class _Outcome:
    state: StepState
    output: dict[str, Any]
    error: str = ""


@dataclass(frozen=True, slots=True)
class _Context:
    run: Run
    incident: Incident
    values: Mapping[str, str]
    now: datetime  # the step's first start time: a re-run step repeats the same change

    @property
    def is_dry_run(self) -> bool:
        return self.run.mode is RunMode.DRY_RUN

    def render(self, template: str) -> str:
        """`${name}` replaced by its value; an unknown name is a `PlaybookError`."""
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.values:
                raise PlaybookError(f"template names unknown value ${{{name}}}")
            return self.values[name]

        return _TEMPLATE.sub(value, template)


class PlaybookRunner:
    def __init__(self, store: IncidentStore, lifecycle: IncidentLifecycle, connectors: ConnectorRegistry,
                 tree: TenantTree, runs: RunStore) -> None:
        self._store = store
        self._lifecycle = lifecycle
        self._connectors = connectors
        self._tree = tree
        self._runs = runs
        self._handlers: dict[type[Any], Callable[[Any, _Context], _Outcome]] = {
            EnrichStep: self._enrich, CommentStep: self._comment, AssignStep: self._assign,
            SetStateStep: self._set_state, EscalateStep: self._escalate, ApprovalStep: self._approval,
            BranchStep: self._branch, NotifyWebhookStep: self._side_effect, ContainStep: self._side_effect,
        }

    # --- the public calls -----------------------------------------------------------------------

    @property
    def runs(self) -> RunStore:
        """Where runs are recorded (read access for the API)."""
        return self._runs

    def start(self, incident: Incident, playbook: Playbook, now: datetime, *, dry_run: bool = False) -> Run:
        """Record a new run and run it until it ends or waits for an approval."""
        if incident.tenant not in self._tree:
            raise PlaybookError(f"incident {incident.id!r} belongs to unknown tenant {incident.tenant!r}")
        mode = RunMode.DRY_RUN if dry_run else RunMode.LIVE
        run_id = stable_id("playbook-run", playbook.id, incident.id, to_iso(now), mode.value)
        run = Run(id=run_id, playbook_id=playbook.id, incident_id=incident.id, tenant=incident.tenant, mode=mode,
                  state=RunState.RUNNING, cursor=playbook.steps[0].id, created=now, updated=now)
        if self._runs.create_run(run, playbook.model_dump_json(), [s.id for s in playbook.steps]):
            self._audit(run, "playbook.run.start", playbook=playbook.id, incident_id=incident.id, mode=mode.value)
        return self._advance(run_id, now)

    def resume(self, run_id: str, now: datetime) -> Run:
        """Continue a run that stopped while running (a restart) or failed (a retry); a run that
        waits for approval or has ended is returned as it is."""
        run = self.run(run_id)
        if run.state is RunState.FAILED:
            self._runs.update_run(run.id, RunState.RUNNING, run.cursor, now)
            self._audit(run, "playbook.run.resume")
        return self._advance(run_id, now)

    def approve(self, run_id: str, step_id: str, user: str, role: str, now: datetime) -> Run:
        """Record `user`'s approval; the run continues once the step has `count` different approvers."""
        step, run = self._waiting(run_id, step_id, role)
        self._runs.record_approval(run_id, step_id, user, role, "approved", now)
        self._audit(run, "playbook.approval.approve", actor=user, step_id=step_id, role=role)
        approvers = [u for u, _, d in self._runs.approvals(run_id, step_id) if d == "approved"]
        if len(approvers) < step.count:
            return run
        return self._decided(run, step, {"decision": "approved", "approvers": approvers}, now)

    def reject(self, run_id: str, step_id: str, user: str, role: str, now: datetime, reason: str = "") -> Run:
        """One rejection decides: the run continues, skipping the side effects this approval gated."""
        step, run = self._waiting(run_id, step_id, role)
        self._runs.record_approval(run_id, step_id, user, role, "rejected", now)
        self._audit(run, "playbook.approval.reject", actor=user, step_id=step_id, role=role, reason=reason)
        return self._decided(run, step, {"decision": "rejected", "by": user, "reason": reason}, now)

    def run(self, run_id: str) -> Run:
        run = self._runs.run(run_id)
        if run is None:
            raise PlaybookError(f"no playbook run {run_id!r}")
        return run

    # --- moving through the steps ----------------------------------------------------------------

    def _playbook(self, run_id: str) -> Playbook:
        return Playbook.model_validate_json(self._runs.playbook_json(run_id))

    def _advance(self, run_id: str, now: datetime) -> Run:
        playbook = self._playbook(run_id)
        while True:
            run = self.run(run_id)
            if run.state is not RunState.RUNNING:
                return run
            if run.cursor is None:
                return self._finish(run, RunState.DONE, now)
            step = playbook.step(run.cursor)
            record = run.step(step.id)
            if record.state not in (StepState.DONE, StepState.SKIPPED):
                outcome = self._execute(run, step, now)
                self._set_step(run, step.id, outcome, now)
                if outcome.state is StepState.FAILED:
                    self._runs.update_run(run.id, RunState.FAILED, run.cursor, now)
                    self._audit(run, "playbook.run.failed", step_id=step.id, error=outcome.error)
                    return self.run(run_id)
                if outcome.state is StepState.WAITING_APPROVAL:
                    self._runs.update_run(run.id, RunState.WAITING_APPROVAL, run.cursor, now)
                    return self.run(run_id)
                record = self.run(run_id).step(step.id)
            self._runs.update_run(run.id, RunState.RUNNING, _next(playbook, step, record.output), now)

    def _execute(self, run: Run, step: Step, now: datetime) -> _Outcome:
        self._runs.update_step(run.id, step.id, StepState.RUNNING, now)
        self._audit(run, "playbook.step.running", step_id=step.id)
        started = self.run(run.id).step(step.id).started or now
        try:
            incident = self._store.incident(self._tree.scope(run.tenant), run.incident_id)
            if incident is None:
                raise PlaybookError(f"incident {run.incident_id!r} not found")
            context = _Context(run, incident, _values(incident, self.run(run.id)), started)
            return self._handlers[type(step)](step, context)
        except GovsocError as e:
            log.warning("playbook_step_failed", run_id=run.id, step_id=step.id, reason=str(e))
            return _Outcome(StepState.FAILED, {}, str(e))

    def _set_step(self, run: Run, step_id: str, outcome: _Outcome, now: datetime) -> None:
        self._runs.update_step(run.id, step_id, outcome.state, now, output=outcome.output, error=outcome.error)
        self._audit(run, f"playbook.step.{outcome.state.value}", step_id=step_id, output=outcome.output,
                    error=outcome.error)

    def _finish(self, run: Run, state: RunState, now: datetime) -> Run:
        for record in run.steps:
            if record.state is StepState.PENDING:  # not on the path the branches took
                self._runs.update_step(run.id, record.step_id, StepState.SKIPPED, now)
                self._audit(run, "playbook.step.skipped", step_id=record.step_id)
        self._runs.update_run(run.id, state, None, now)
        self._audit(run, f"playbook.run.{state.value}")
        return self.run(run.id)

    def _waiting(self, run_id: str, step_id: str, role: str) -> tuple[ApprovalStep, Run]:
        run = self.run(run_id)
        if run.state is not RunState.WAITING_APPROVAL or run.cursor != step_id:
            raise PlaybookError(f"run {run_id!r} is not waiting for approval at step {step_id!r}")
        step = self._playbook(run_id).step(step_id)
        if not isinstance(step, ApprovalStep):
            raise PlaybookError(f"step {step_id!r} is not an approval step")
        if role not in step.roles:
            raise PlaybookError(f"step {step_id!r} needs one of the roles {', '.join(step.roles)}, not {role!r}")
        return step, run

    def _decided(self, run: Run, step: ApprovalStep, output: dict[str, Any], now: datetime) -> Run:
        self._set_step(run, step.id, _Outcome(StepState.DONE, output), now)
        self._runs.update_run(run.id, RunState.RUNNING, run.cursor, now)
        return self._advance(run.id, now)

    def _audit(self, run: Run, action: str, *, actor: str = ACTOR, **details: Any) -> None:
        self._store.append_audit(actor=actor, tenant=run.tenant, action=action, object_type="playbook_run",
                                 object_id=run.id, details={"playbook": run.playbook_id,
                                                            "incident_id": run.incident_id, **details})

    # --- one handler per step type -------------------------------------------------------------

    def _enrich(self, step: EnrichStep, ctx: _Context) -> _Outcome:
        incident, tenant = ctx.incident, self._tree.get(ctx.incident.tenant)
        facts: dict[str, Any] = {}
        if "incident" in step.sources:
            facts.update(severity=incident.severity.label, rule_id=incident.rule_id, state=incident.state.value,
                         asset_id=incident.asset_id, entity=dict(incident.entity), tags=list(incident.tags))
        if "tenant" in step.sources:
            facts.update(tenant=tenant.id, tenant_name=tenant.name, tenant_kind=tenant.kind.value,
                         parents=self._tree.ancestors(tenant.id))
        if "alerts" in step.sources:
            facts["alert_count"] = self._store.count_alerts(self._tree.scope(incident.tenant),
                                                            AlertQuery(incident_id=incident.id))
        return _Outcome(StepState.DONE, facts)

    def _comment(self, step: CommentStep, ctx: _Context) -> _Outcome:
        text = ctx.render(step.text)
        if ctx.is_dry_run:
            return _Outcome(StepState.DONE, {"dry_run": True, "would_comment": text})
        comment = self._lifecycle.comment(self._scope(ctx), ctx.incident.id, text, actor=ACTOR, now=ctx.now)
        return _Outcome(StepState.DONE, {"comment_id": comment.id})

    def _assign(self, step: AssignStep, ctx: _Context) -> _Outcome:
        if ctx.is_dry_run:
            return _Outcome(StepState.DONE, {"dry_run": True, "would_assign": step.assignee})
        self._lifecycle.assign(self._scope(ctx), ctx.incident.id, step.assignee, actor=ACTOR, now=ctx.now)
        return _Outcome(StepState.DONE, {"assignee": step.assignee})

    def _set_state(self, step: SetStateStep, ctx: _Context) -> _Outcome:
        if ctx.incident.state is step.state:  # already there (or a re-run after a restart)
            return _Outcome(StepState.DONE, {"state": step.state.value, "unchanged": True})
        if ctx.is_dry_run:
            return _Outcome(StepState.DONE, {"dry_run": True, "would_set_state": step.state.value})
        self._lifecycle.transition(self._scope(ctx), ctx.incident.id, step.state, actor=ACTOR, now=ctx.now,
                                   reason=ctx.render(step.reason))
        return _Outcome(StepState.DONE, {"state": step.state.value})

    def _escalate(self, step: EscalateStep, ctx: _Context) -> _Outcome:
        parents = self._tree.ancestors(ctx.incident.tenant)
        target = (parents[0] if parents else None) if step.to == "parent" else self._tree.root
        if target is None or target == ctx.incident.tenant:
            return _Outcome(StepState.DONE, {"escalated_to": None, "note": "the tenant has no one above it"})
        reason = ctx.render(step.reason) if step.reason else "escalated by playbook"
        if ctx.is_dry_run:
            return _Outcome(StepState.DONE, {"dry_run": True, "would_escalate_to": target})
        self._lifecycle.comment(self._scope(ctx), ctx.incident.id, f"Escalated to {target}: {reason}",
                                actor=ACTOR, now=ctx.now)
        self._store.append_audit(actor=ACTOR, tenant=target, action="incident.escalate", object_type="incident",
                                 object_id=ctx.incident.id, details={"from": ctx.incident.tenant, "reason": reason,
                                                                     "run_id": ctx.run.id})
        return _Outcome(StepState.DONE, {"escalated_to": target})

    def _approval(self, step: ApprovalStep, ctx: _Context) -> _Outcome:
        if ctx.is_dry_run:
            return _Outcome(StepState.DONE, {"decision": "approved", "dry_run": True})
        return _Outcome(StepState.WAITING_APPROVAL, {"roles": list(step.roles), "count": step.count})

    def _branch(self, step: BranchStep, ctx: _Context) -> _Outcome:
        output = ctx.run.step(step.on_step).output
        matched = output.get(step.key) == step.equals
        return _Outcome(StepState.DONE, {"matched": matched, "next": step.then if matched else step.otherwise})

    def _side_effect(self, step: NotifyWebhookStep | ContainStep, ctx: _Context) -> _Outcome:
        if step.requires_approval and _latest_decision(ctx.run) != "approved":
            return _Outcome(StepState.SKIPPED, {"reason": "approval rejected"})
        key = f"{ctx.run.id}:{step.id}"
        if isinstance(step, ContainStep):
            request = ConnectorRequest(step.action, ctx.render(step.target), {"incident_id": ctx.incident.id}, key)
        else:
            body = {name: ctx.render(value) for name, value in step.body.items()}
            request = ConnectorRequest("notify", ctx.incident.id, body, key)
        if ctx.is_dry_run:
            return _Outcome(StepState.DONE, {"dry_run": True, "connector": step.connector,
                                             "would_send": request.to_json()})
        recorded = self._runs.side_effect(key)
        if recorded is not None and recorded.state == "done":
            return _Outcome(StepState.DONE, {**(recorded.result or {}), "reused": True})
        connector = self._connectors.get(step.connector)
        self._runs.begin_side_effect(key, ctx.run.id, step.id, request.to_json(), ctx.now)
        result = connector.send(request)
        recorded_result = {"status": result.status, "body": result.body, "attempts": result.attempts}
        self._runs.finish_side_effect(key, recorded_result, ctx.now)
        return _Outcome(StepState.DONE, recorded_result)

    def _scope(self, ctx: _Context) -> Any:
        return self._tree.scope(ctx.incident.tenant)


def _next(playbook: Playbook, step: Step, output: Mapping[str, Any]) -> str | None:
    """The step after `step`, given its output (a branch names its target)."""
    if isinstance(step, BranchStep) and output.get("next"):
        return str(output["next"])
    index = playbook.steps.index(step)
    return playbook.steps[index + 1].id if index + 1 < len(playbook.steps) else None


def _latest_decision(run: Run) -> str | None:
    """The decision of the approval step decided last in this run."""
    decided = [r for r in run.steps if r.state is StepState.DONE and "decision" in r.output]
    return str(max(decided, key=lambda r: r.updated).output["decision"]) if decided else None


def _values(incident: Incident, run: Run) -> dict[str, str]:
    """The names a template may use: incident.*, entity.<ECS field>, steps.<id>.<key>."""
    values = {"incident.id": incident.id, "incident.tenant": incident.tenant, "incident.title": incident.title,
              "incident.severity": incident.severity.label, "incident.rule_id": incident.rule_id,
              "incident.state": incident.state.value, "incident.asset_id": incident.asset_id or "",
              "run.id": run.id}
    values.update({f"entity.{name}": value for name, value in incident.entity.items()})
    for record in run.steps:
        values.update({f"steps.{record.step_id}.{k}": str(v) for k, v in record.output.items()})
    return values
