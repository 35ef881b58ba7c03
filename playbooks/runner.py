"""Run a playbook on an incident, step by step, durably, stopping at approvals.

In: an incident and a playbook (`start`), a run id after a restart (`resume`), a person's
decision (`approve`, `reject`). Out: the `Run` as recorded in the run store; incident changes go
through `IncidentLifecycle`, and every run and step change is an entry in `store.append_audit`.

Contract:
- A run is recorded (with a snapshot of its playbook) before its first step; its id derives from
  the playbook, incident and start time, so starting the same run twice runs it once.
- Each step's state (pending, running, waiting_approval, done, failed, skipped) and output are
  stored as they change; the run's `cursor` names the step to run next, so `resume` continues
  where a crashed process stopped; `resume_interrupted` finds such runs (RUNNING, idle), called by
  `govsoc up` at start and by the playbook workers every minute. Incident changes made by a
  re-run step use the step's first start time, so a repeated comment has the same id and is
  stored once.
- Side effects (notify_webhook, notify_email, contain) are keyed `run id:step id` (and
  `:tenant` for each mail of a `to_tenants_of` step). The key is recorded as started BEFORE the
  connector is called and marked done after. On resume, a side effect marked done is never sent
  again: its recorded result is reused. One recorded as started but never marked done (the
  process died during the call) is sent again with the SAME idempotency key (`Idempotency-Key`
  header, or the mail's `Message-ID`), so delivery is at-least-once and a receiver that honours
  the key acts exactly once. A step's `retries` and `timeout_s` go to the connector with it.
- A side-effect step that requires approval runs only when the latest approval step of the run
  was approved; after a rejection it is skipped (the steps without side effects still run).
- Approvals: one person approves a step once (a second approval is refused); a step with
  `levels` needs an approver of the run's tenant and/or of a tenant above it, each a different
  person. The approvals so far are kept in the waiting step's output (`approvals`).
- Read-only steps (`enrich`, `query`, and the hunt of `hunt_indicators`) read the stores in
  `PlaybookSources` (query.py); `hunt_indicators` opens linked incidents (coordinate.py).
- Dry run: nothing changes outside the run store (no incident change, no request, no mail, no
  linked incident); each step records what it would have done, and approvals count as given.
- No wall clock: every time comes from the `now` the caller passes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from config.errors import GovsocError
from config.tenants import TenantTree
from detections.incidents.grouping import IncidentService
from detections.incidents.lifecycle import IncidentLifecycle
from detections.intel.match import RULE_PREFIX as INTEL_RULE_PREFIX
from pipeline.ids import stable_id
from pipeline.records import Incident, to_iso
from pipeline.store.base import AlertQuery, IncidentStore
from playbooks.connectors import ConnectorRegistry, ConnectorRequest
from playbooks.coordinate import Coordinator, linked_alerts
from playbooks.errors import PlaybookError
from playbooks.model import (
    ApprovalStep,
    AssignStep,
    BranchStep,
    CommentStep,
    ContainStep,
    EnrichStep,
    EscalateStep,
    HuntIndicatorsStep,
    NotifyEmailStep,
    NotifyWebhookStep,
    Playbook,
    QueryStep,
    SetStateStep,
    Step,
    duration_of,
)
from playbooks.query import (
    PlaybookSources,
    Window,
    hunt_everywhere,
    indicator_values,
    intel_lookup,
    query_entity,
    query_rule,
)
from playbooks.runs import Run, RunMode, RunState, RunStore, StepState

log = structlog.get_logger(__name__)

# A run still RUNNING but not updated for this long was cut off with the process advancing it
# (a step's retries and timeouts update it well within this): `resume_interrupted` takes it over.
RESUME_IDLE = timedelta(minutes=5)
RESUME_BATCH = 1000

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
    """`sources`: the stores the read-only steps read (none: those steps fail, naming what is missing)."""

    def __init__(self, store: IncidentStore, lifecycle: IncidentLifecycle, connectors: ConnectorRegistry,
                 tree: TenantTree, runs: RunStore, *, sources: PlaybookSources | None = None) -> None:
        self._store = store
        self._lifecycle = lifecycle
        self._connectors = connectors
        self._tree = tree
        self._runs = runs
        self._sources = sources or PlaybookSources()
        self._coordinator = Coordinator(store, IncidentService(store, tree, self._sources.incident_settings),
                                        lifecycle, tree, ACTOR)
        self._handlers: dict[type[Any], Callable[[Any, _Context], _Outcome]] = {
            EnrichStep: self._enrich, QueryStep: self._query, HuntIndicatorsStep: self._hunt,
            CommentStep: self._comment, AssignStep: self._assign, SetStateStep: self._set_state,
            EscalateStep: self._escalate, ApprovalStep: self._approval, BranchStep: self._branch,
            NotifyWebhookStep: self._side_effect, NotifyEmailStep: self._side_effect, ContainStep: self._side_effect,
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

    def resume_interrupted(self, now: datetime, *, idle_for: timedelta = RESUME_IDLE) -> list[Run]:
        """Resume every run left RUNNING by a process that stopped while advancing it (not updated
        for `idle_for`; 0 when this is the only process that runs playbooks, as `govsoc up`).

        A side effect that run had begun and not finished is sent again with the same idempotency
        key; finished ones are never repeated. A run that fails to resume is logged and left for
        the next sweep; the others go on. Returns the runs as they are after resuming."""
        resumed = []
        for run in self._runs.runs(RunState.RUNNING, limit=RESUME_BATCH):
            if now - run.updated < idle_for:
                continue
            try:
                after = self.resume(run.id, now)
            except GovsocError as e:
                log.error("playbook_run_resume_failed", run=run.id, playbook=run.playbook_id, reason=str(e))
                continue
            log.info("playbook_run_resumed", run=run.id, playbook=run.playbook_id, state=after.state.value)
            resumed.append(after)
        return resumed

    def approve(self, run_id: str, step_id: str, user: str, role: str, now: datetime, *,
                tenant: str | None = None) -> Run:
        """Record `user`'s approval (of `tenant`, which a step with `levels` needs); the run continues
        once the step has its approvers. A second approval by the same person is refused."""
        step, run = self._waiting(run_id, step_id, role)
        if any(u == user for u, _, _ in self._runs.approvals(run_id, step_id)):
            raise PlaybookError(f"{user!r} has already decided on step {step_id!r}: its approvers must be "
                                "different people")
        given: list[dict[str, Any]] = list(run.step(step_id).output.get("approvals", []))
        level = self._level(run, step, given, tenant)
        self._runs.record_approval(run_id, step_id, user, role, "approved", now)
        self._audit(run, "playbook.approval.approve", actor=user, step_id=step_id, role=role, tenant=tenant,
                    level=level)
        given.append({"user": user, "role": role, "tenant": tenant, "level": level, "at": to_iso(now)})
        if len(given) < step.approvers_needed:
            waiting = {**run.step(step_id).output, "approvals": given}
            self._runs.update_step(run_id, step_id, StepState.WAITING_APPROVAL, now, output=waiting)
            return self.run(run_id)
        output: dict[str, Any] = {"decision": "approved", "approvers": [a["user"] for a in given]}
        if step.levels:
            output["chain"] = {a["level"]: a["user"] for a in given if a["level"]}
        return self._decided(run, step, output, now)

    def _level(self, run: Run, step: ApprovalStep, given: list[dict[str, Any]], tenant: str | None) -> str | None:
        """The level (`tenant` or `parent`) this approver fills; refused when the chain needs another."""
        if not step.levels:
            return None
        if tenant is None:
            raise PlaybookError(f"step {step.id!r} needs approvers of {' and '.join(step.levels)}: the approver's "
                                "tenant is required")
        missing = [lv for lv in step.levels if lv not in {a["level"] for a in given}]
        above = self._tree.ancestors(run.tenant)
        level = "tenant" if tenant == run.tenant else ("parent" if tenant in above else None)
        if level == "tenant" and not above and "tenant" not in missing and missing:
            level = missing[0]  # the root has nobody above it: a second approver of the root fills `parent`
        if level is None:
            raise PlaybookError(f"step {step.id!r} takes approvers of {run.tenant} and the tenants above it, "
                                f"not of {tenant!r}")
        slots_left = step.approvers_needed - len(given)
        if level not in missing and slots_left <= len(missing):
            wanted = " or ".join(_LEVEL_TEXT[lv].format(tenant=run.tenant) for lv in missing)
            raise PlaybookError(f"step {step.id!r} still needs an approver {wanted}, not one of {tenant!r}")
        return level

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
        if "intel" in step.sources:
            found = intel_lookup(self._sources.intel, self._tree, incident, incident.last_seen)
            facts.update(intel_found=bool(found), intel_count=len(found), intel=found)
        return _Outcome(StepState.DONE, facts)

    def _query(self, step: QueryStep, ctx: _Context) -> _Outcome:
        """Read-only, so a dry run queries too."""
        incident = ctx.incident
        window = Window(incident.first_seen - duration_of(step.before), incident.last_seen + duration_of(step.after))
        scope = self._scope(ctx)
        if step.rule is not None:
            return _Outcome(StepState.DONE, query_rule(self._sources, scope, step.rule, window, step.limit))
        return _Outcome(StepState.DONE, query_entity(self._sources, scope, incident, step.fields, window, step.limit))

    def _hunt(self, step: HuntIndicatorsStep, ctx: _Context) -> _Outcome:
        """Hunt every tenant; open the linked incidents unless dry run (or `open_incidents: false`)."""
        incident = ctx.incident
        window = Window(incident.first_seen - duration_of(step.before), incident.last_seen + duration_of(step.after))
        values = indicator_values(incident)
        indicator = None
        if incident.rule_id.startswith(INTEL_RULE_PREFIX) and self._sources.intel is not None:
            indicator = self._sources.intel.indicator(self._scope(ctx), incident.rule_id[len(INTEL_RULE_PREFIX):])
        sightings = hunt_everywhere(self._sources.events, values, window, indicator, self._tree)
        alerts = linked_alerts(incident, sightings, ctx.now)
        hits = {t: len({e for ids in found.values() for e in ids}) for t, found in sightings.by_tenant.items()
                if t != incident.tenant}
        output: dict[str, Any] = {"indicators": [v for _, v in values], "found": bool(hits),
                                  "count": sum(hits.values()), "tenants": sorted(hits), "hits": hits,
                                  "withheld": sightings.withheld, "capped": sightings.capped}
        if ctx.is_dry_run or not step.open_incidents:
            return _Outcome(StepState.DONE, {**output, "dry_run": ctx.is_dry_run,
                                             "would_open": sorted({a.tenant for a in alerts})})
        linked = self._coordinator.open_linked(incident, alerts, ctx.now)
        by_tenant: dict[str, list[str]] = {}
        for link in linked:
            by_tenant.setdefault(link.tenant, []).append(link.incident_id)
        if by_tenant:
            self._lifecycle.comment(self._scope(ctx), incident.id, "Hunt across agencies: found at "
                                    + ", ".join(f"{t} ({hits[t]} event(s))" for t in sorted(by_tenant))
                                    + "; linked incidents opened there.", actor=ACTOR, now=ctx.now)
        return _Outcome(StepState.DONE, {**output, "linked": by_tenant})

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
        waiting: dict[str, Any] = {"roles": list(step.roles), "count": step.approvers_needed}
        if step.levels:
            waiting["levels"] = list(step.levels)
        return _Outcome(StepState.WAITING_APPROVAL, {**waiting, "approvals": []})

    def _branch(self, step: BranchStep, ctx: _Context) -> _Outcome:
        output = ctx.run.step(step.on_step).output
        matched = output.get(step.key) == step.equals
        return _Outcome(StepState.DONE, {"matched": matched, "next": step.then if matched else step.otherwise})

    def _side_effect(self, step: NotifyWebhookStep | NotifyEmailStep | ContainStep, ctx: _Context) -> _Outcome:
        if step.requires_approval and _latest_decision(ctx.run) != "approved":
            return _Outcome(StepState.SKIPPED, {"reason": "approval rejected"})
        requests = self._requests(step, ctx)
        per_tenant = isinstance(step, NotifyEmailStep) and step.to_tenants_of is not None
        if ctx.is_dry_run:
            sends = [r.to_json() for r in requests.values()]
            return _Outcome(StepState.DONE, {"dry_run": True, "connector": step.connector,
                                             "would_send": sends if per_tenant else sends[0]})
        if not requests:
            return _Outcome(StepState.DONE, {"sent": {}, "count": 0})
        connector = self._connectors.get(step.connector)
        results: dict[str, dict[str, Any]] = {}
        for label, request in requests.items():
            recorded = self._runs.side_effect(request.idempotency_key)
            if recorded is not None and recorded.state == "done":
                results[label] = {**(recorded.result or {}), "reused": True}
                continue
            self._runs.begin_side_effect(request.idempotency_key, ctx.run.id, step.id, request.to_json(), ctx.now)
            result = connector.send(request)
            results[label] = {"status": result.status, "body": result.body, "attempts": result.attempts}
            self._runs.finish_side_effect(request.idempotency_key, results[label], ctx.now)
        if per_tenant:
            return _Outcome(StepState.DONE, {"sent": results, "count": len(results)})
        return _Outcome(StepState.DONE, results[""])

    def _requests(self, step: NotifyWebhookStep | NotifyEmailStep | ContainStep,
                  ctx: _Context) -> dict[str, ConnectorRequest]:
        """The requests of a step by label: `""` for the one request, a tenant for each per-tenant mail."""
        key = f"{ctx.run.id}:{step.id}"
        incident_id = ctx.incident.id

        def request(action: str, target: str, payload: dict[str, Any], idempotency_key: str) -> ConnectorRequest:
            return ConnectorRequest(action, target, payload, idempotency_key, step.retries, step.timeout_s)

        if isinstance(step, ContainStep):
            return {"": request(step.action, ctx.render(step.target), {"incident_id": incident_id}, key)}
        if isinstance(step, NotifyWebhookStep):
            return {"": request("notify", incident_id, {k: ctx.render(v) for k, v in step.body.items()}, key)}
        mail = {"subject": ctx.render(step.subject), "body": ctx.render(step.body), "incident_id": incident_id}
        if step.to_tenants_of is None:
            to = [ctx.render(address) for address in step.to]
            return {"": request("email", ", ".join(to), {**mail, "to": to}, key)}
        tenants = [str(t) for t in ctx.run.step(step.to_tenants_of).output.get("tenants", [])]
        return {t: request("email", t, {**mail, "tenant": t}, f"{key}:{t}") for t in tenants}

    def _scope(self, ctx: _Context) -> Any:
        return self._tree.scope(ctx.incident.tenant)


_LEVEL_TEXT = {"tenant": "of {tenant}", "parent": "of a tenant above {tenant}"}


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
        values.update({f"steps.{record.step_id}.{k}": _text(v) for k, v in record.output.items()})
    return values


def _text(value: Any) -> str:
    """A template's text for an output value: a list as `a, b`, anything else as `str()`."""
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)
