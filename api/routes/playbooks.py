"""Playbook runs of an incident, and the approval or rejection of a waiting step.

A run is seen only by callers whose scope holds its tenant (404 otherwise, as for incidents).
Deciding a step needs a role that may act (analyst, admin, national coordinator); the runner then
checks the step's own approver roles and count, and continues the run after an approval.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict

from api.auth import EDITORS, READERS, CurrentPrincipal, Principal, require_roles
from config.errors import GovsocError
from pipeline.records import utc_now
from pipeline.store.base import IncidentStore
from playbooks.runner import PlaybookRunner
from playbooks.runs import Run

router = APIRouter(prefix="/api/v1", tags=["playbooks"], dependencies=[Depends(require_roles(*READERS))])

Decider = Annotated[Principal, Depends(require_roles(*EDITORS))]
RUNS_SCANNED = 1000


class StepPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step_id: str
    state: str
    output: dict[str, Any]
    error: str
    updated: datetime


class RunPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    playbook_id: str
    incident_id: str
    tenant: str
    mode: str
    state: str
    waiting_on: str | None
    created: datetime
    updated: datetime
    steps: list[StepPublic]

    @classmethod
    def of(cls, run: Run) -> RunPublic:
        return cls(id=run.id, playbook_id=run.playbook_id, incident_id=run.incident_id, tenant=run.tenant,
                   mode=run.mode.value, state=run.state.value, waiting_on=run.cursor, created=run.created,
                   updated=run.updated, steps=[StepPublic(step_id=s.step_id, state=s.state.value, output=s.output,
                                                          error=s.error, updated=s.updated) for s in run.steps])


class RunsPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runs: list[RunPublic]


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = ""


def _runner(request: Request) -> PlaybookRunner:
    runner: PlaybookRunner | None = request.app.state.playbook_runner
    if runner is None:
        raise HTTPException(404, "playbooks are not enabled in this deployment")
    return runner


def _visible_run(runner: PlaybookRunner, principal: Principal, run_id: str) -> Run:
    run = runner.runs.run(run_id)
    if run is None or run.tenant not in principal.scope:
        raise HTTPException(404, "run not found")
    return run


@router.get("/incidents/{incident_id}/runs", response_model=RunsPublic)
def incident_runs(request: Request, principal: CurrentPrincipal, incident_id: str) -> RunsPublic:
    store: IncidentStore = request.app.state.incidents
    if store.incident(principal.scope, incident_id) is None:
        raise HTTPException(404, "incident not found")
    runner = _runner(request)
    runs = [r for r in runner.runs.runs(limit=RUNS_SCANNED) if r.incident_id == incident_id]
    return RunsPublic(runs=[RunPublic.of(runner.runs.run(r.id) or r) for r in runs])


@router.post("/runs/{run_id}/steps/{step_id}/{verdict}", response_model=RunPublic)
def decide(request: Request, principal: Decider, run_id: str, step_id: str, verdict: str,
           decision: Annotated[Decision | None, Body()] = None) -> RunPublic:
    if verdict not in ("approve", "reject"):
        raise HTTPException(404, "unknown action: use approve or reject")
    runner = _runner(request)
    _visible_run(runner, principal, run_id)
    try:
        if verdict == "approve":
            run = runner.approve(run_id, step_id, principal.name, principal.role.value, utc_now(),
                                 tenant=principal.tenant)
        else:
            reason = decision.reason if decision else ""
            run = runner.reject(run_id, step_id, principal.name, principal.role.value, utc_now(), reason)
    except GovsocError as e:
        raise HTTPException(409, str(e)) from e
    return RunPublic.of(run)
