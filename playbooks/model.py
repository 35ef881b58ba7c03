"""The playbook schema: what a YAML playbook may say, validated with pydantic (`extra="forbid"`).

In: the mapping one YAML file holds. Out: a `Playbook`, or pydantic's errors (load.py locates them).
`structure_problems` adds the checks a schema cannot express: step ids unique, a branch names
steps that exist (and a previous step to branch on), no cycle, and an approval before every
side-effect step on every path to it unless that step is `automatic`.

Steps run in list order; a `branch` jumps to `then` or `otherwise` instead of the next step.
Side effects outside govsoc (`notify_webhook`, `notify_email`, `contain`) are the only steps that
may say `automatic`, `retries` and `timeout_s`; `requires_approval` is derived from `automatic`,
never written. Read-only steps (`enrich`, `query`) and the national `hunt_indicators` (which
changes govsoc only: it opens linked incidents) need no approval.
Durations (`before`, `after`) are a number and a unit: `90s`, `30m`, `24h`, `7d`.
Templates (`text`, `target`, `body` values) name values as `${incident.id}`, `${entity.source.ip}`
or `${steps.<id>.<key>}`; see runner.py for the names available.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.records import IncidentState

SeverityLabel = Literal["informational", "low", "medium", "high", "critical"]
DecidingRole = Literal["analyst", "admin", "national_coordinator"]
"""The roles that may decide on a step (the API's editors, `api.auth.EDITORS`): a playbook naming
any other role could never be approved."""
StepId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
Duration = Annotated[str, Field(pattern=r"^[0-9]{1,6}[smhd]$")]
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_of(text: str) -> timedelta:
    """`24h` as a timedelta (the schema has checked the form)."""
    return timedelta(seconds=int(text[:-1]) * _UNIT_S[text[-1]])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(_Strict):
    """Incident conditions; every criterion given must hold (an empty list places no condition).

    `tags` match a tag or its parent (`attack.t1110` matches `attack.t1110.001`); `tenants`
    match the tenant or any tenant below it; `entity_fields` match when the incident's entity has
    any of those ECS fields.
    """

    rules: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    min_severity: SeverityLabel | None = None
    tenants: tuple[str, ...] = ()
    entity_fields: tuple[str, ...] = ()


class _Step(_Strict):
    id: StepId
    name: str = ""

    @property
    def is_side_effect(self) -> bool:
        return False

    @property
    def requires_approval(self) -> bool:
        return False


class EnrichStep(_Step):
    """Gather incident, tenant and related-alert facts into the step's output; `intel` looks the
    incident's addresses, domains, hashes, URLs and e-mail addresses up in the indicator store, as
    the incident's tenant may see them (TLP over the tree): `intel_found`, `intel_count`, `intel`."""

    type: Literal["enrich"]
    sources: tuple[Literal["incident", "tenant", "alerts", "intel"], ...] = ("incident", "tenant", "alerts")


class QueryStep(_Step):
    """A retro-hunt over the event store, within the incident's tenant and the tenants below it.

    With `rule`, the events that Sigma rule matches; without it, the events whose `fields` (all of
    the incident's entity fields when empty) equal the incident's values. The window runs from
    `before` the incident's first sighting to `after` its last. Output: `count`, `found` (for a
    `branch`), the first `limit` matching `event_ids` (oldest first) and the `window`.
    """

    type: Literal["query"]
    rule: Annotated[str, Field(min_length=1)] | None = None
    fields: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    before: Duration = "24h"
    after: Duration = "1h"
    limit: Annotated[int, Field(ge=1, le=100)] = 10

    @model_validator(mode="after")
    def _rule_or_fields(self) -> QueryStep:
        if self.rule is not None and self.fields:
            raise ValueError("a query names a Sigma `rule` or entity `fields`, not both")
        return self


class HuntIndicatorsStep(_Step):
    """The national hunt: the incident's indicators (its entity's addresses, domains, hashes, URLs,
    e-mail addresses, and the indicator of an intel incident) searched in EVERY tenant's events,
    from `before` the first sighting to `after` the last. Where found (outside the incident's
    tenant, and only at tenants the indicator's TLP allows), an incident linked to this one is
    opened (`open_incidents`) and commented. Output: `found`, `count`, `tenants` (sorted; a
    `notify_email` step's `to_tenants_of` reads it), `hits` per tenant, `linked` incident ids.
    """

    type: Literal["hunt_indicators"]
    before: Duration = "30d"
    after: Duration = "1d"
    open_incidents: bool = True


class CommentStep(_Step):
    type: Literal["comment"]
    text: Annotated[str, Field(min_length=1)]


class AssignStep(_Step):
    type: Literal["assign"]
    assignee: str | None


class SetStateStep(_Step):
    type: Literal["set_state"]
    state: IncidentState
    reason: str = ""


class EscalateStep(_Step):
    """Hand the incident up: to the parent tenant, or to the national centre (the tree's root)."""

    type: Literal["escalate"]
    to: Literal["parent", "national"]
    reason: str = ""


class ApprovalStep(_Step):
    """Wait until `count` different people holding one of `roles` approve (or one rejects).

    `levels` makes a chain across the tree: `[tenant, parent]` needs one approver of the run's
    tenant and one of a tenant above it (its parent or higher), each a different person; the
    step then needs at least as many approvers as it has levels. At the root (nobody above it),
    a second approver of the root fills `parent`. One person approves once.
    """

    type: Literal["approval"]
    roles: Annotated[tuple[DecidingRole, ...], Field(min_length=1)]
    count: Annotated[int, Field(ge=1, le=5)] = 1
    levels: tuple[Literal["tenant", "parent"], ...] = ()

    @model_validator(mode="after")
    def _distinct_levels(self) -> ApprovalStep:
        if len(set(self.levels)) != len(self.levels):
            raise ValueError("each approval level is named once")
        return self

    @property
    def approvers_needed(self) -> int:
        return max(self.count, len(self.levels))


class BranchStep(_Step):
    """Go to `then` when the output value `key` of step `on_step` equals `equals`, else to
    `otherwise` (the next step when `otherwise` is not given). Not `on`: YAML 1.1 reads `on` as true."""

    type: Literal["branch"]
    on_step: StepId
    key: Annotated[str, Field(min_length=1)]
    equals: str | int | float | bool | None
    then: StepId
    otherwise: StepId | None = None


class _SideEffectStep(_Step):
    """`retries` and `timeout_s` override the connector's own for this step (backoff as configured)."""

    connector: Annotated[str, Field(min_length=1)]
    automatic: bool = False
    retries: Annotated[int, Field(ge=0, le=10)] | None = None
    timeout_s: Annotated[float, Field(gt=0, le=300)] | None = None

    @property
    def is_side_effect(self) -> bool:
        return True

    @property
    def requires_approval(self) -> bool:
        return not self.automatic


class NotifyWebhookStep(_SideEffectStep):
    type: Literal["notify_webhook"]
    body: dict[str, str] = Field(default_factory=dict)


class NotifyEmailStep(_SideEffectStep):
    """A mail through an `smtp` connector: to the addresses in `to`, or (`to_tenants_of`) one mail
    to each tenant listed in that earlier step's `tenants` output, at the addresses the connector
    configures for the tenant. `subject` and `body` are templates."""

    type: Literal["notify_email"]
    to: tuple[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$|^\$\{[A-Za-z0-9_.@-]+\}$")], ...] = ()
    to_tenants_of: StepId | None = None
    subject: Annotated[str, Field(min_length=1, max_length=200)]
    body: Annotated[str, Field(min_length=1)]

    @model_validator(mode="after")
    def _has_recipients(self) -> NotifyEmailStep:
        if not self.to and self.to_tenants_of is None:
            raise ValueError("a mail needs `to` addresses or `to_tenants_of` (a step listing tenants)")
        return self


class ContainStep(_SideEffectStep):
    """Ask a connector to act on a target, e.g. `block_address` on `${entity.source.ip}`."""

    type: Literal["contain"]
    action: Annotated[str, Field(min_length=1)]
    target: Annotated[str, Field(min_length=1)]


Step = Annotated[
    EnrichStep | QueryStep | HuntIndicatorsStep | CommentStep | AssignStep | SetStateStep | EscalateStep
    | ApprovalStep | BranchStep | NotifyWebhookStep | NotifyEmailStep | ContainStep,
    Field(discriminator="type"),
]
STEP_TYPES: tuple[str, ...] = ("enrich", "query", "hunt_indicators", "comment", "assign", "set_state",
                               "notify_webhook", "notify_email", "contain", "escalate", "approval", "branch")
SIDE_EFFECT_TYPES: tuple[str, ...] = ("notify_webhook", "notify_email", "contain")


class Playbook(_Strict):
    id: StepId
    name: Annotated[str, Field(min_length=1)]
    description: str = ""
    trigger: Trigger | None = None  # None: started by hand only
    steps: Annotated[tuple[Step, ...], Field(min_length=1)]

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def successors(self, index: int) -> list[int]:
        """Indices of the steps that may run after step `index` (none after the last)."""
        step = self.steps[index]
        follow = [index + 1] if index + 1 < len(self.steps) else []
        if not isinstance(step, BranchStep):
            return follow
        positions = {s.id: i for i, s in enumerate(self.steps)}
        targets = [positions[step.then]] if step.then in positions else []
        if step.otherwise is None:
            return targets + follow
        return targets + ([positions[step.otherwise]] if step.otherwise in positions else [])


Problem = tuple[tuple[Any, ...], str]
"""A key path into the playbook's data (as pydantic spells it) and what is wrong there."""


def structure_problems(playbook: Playbook) -> list[Problem]:
    """Problems a schema cannot see; empty when the playbook is sound."""
    problems: list[Problem] = []
    positions: dict[str, int] = {}
    for index, step in enumerate(playbook.steps):
        if step.id in positions:
            problems.append((("steps", index, "id"), f"duplicate step id {step.id!r}"))
        positions.setdefault(step.id, index)
    for index, step in enumerate(playbook.steps):
        if not isinstance(step, BranchStep):
            continue
        if positions.get(step.on_step, len(playbook.steps)) >= index:
            problems.append((("steps", index, "on_step"), f"{step.on_step!r} is not a step before this branch"))
        for key in ("then", "otherwise"):
            target = getattr(step, key)
            if target is not None and target not in positions:
                problems.append((("steps", index, key), f"unknown step {target!r}"))
    for index, step in enumerate(playbook.steps):
        if isinstance(step, NotifyEmailStep) and step.to_tenants_of is not None:
            source = positions.get(step.to_tenants_of, len(playbook.steps))
            if source >= index or not isinstance(playbook.steps[source], HuntIndicatorsStep):
                problems.append((("steps", index, "to_tenants_of"),
                                 f"{step.to_tenants_of!r} is not a hunt_indicators step before this one"))
    if problems:
        return problems
    cycle = _find_cycle(playbook)
    if cycle is not None:
        names = " -> ".join(playbook.steps[i].id for i in cycle)
        return [(_backward_jump(playbook, cycle), f"branch cycle: {names}")]
    return _unapproved(playbook)


def _backward_jump(playbook: Playbook, cycle: list[int]) -> tuple[Any, ...]:
    """Where a cycle is written: the branch key that jumps back (only a branch can)."""
    positions = {s.id: i for i, s in enumerate(playbook.steps)}
    for index in cycle:
        step = playbook.steps[index]
        if isinstance(step, BranchStep):
            for key in ("then", "otherwise"):
                target = getattr(step, key)
                if target is not None and positions[target] <= index:
                    return ("steps", index, key)
    return ("steps", cycle[0])


def _find_cycle(playbook: Playbook) -> list[int] | None:
    """A path of step indices that returns to its start, or None (iterative depth-first search)."""
    colour = [0] * len(playbook.steps)  # 0 unseen, 1 on the current path, 2 finished
    for start in range(len(playbook.steps)):
        if colour[start]:
            continue
        path: list[int] = [start]
        pending: list[list[int]] = [playbook.successors(start)]
        colour[start] = 1
        while path:
            if not pending[-1]:
                colour[path.pop()] = 2
                pending.pop()
                continue
            nxt = pending[-1].pop()
            if colour[nxt] == 1:
                return path[path.index(nxt):] + [nxt]
            if colour[nxt] == 0:
                colour[nxt] = 1
                path.append(nxt)
                pending.append(playbook.successors(nxt))
    return None


def _unapproved(playbook: Playbook) -> list[Problem]:
    """Side-effect steps that some path reaches without passing an approval step.

    The graph is acyclic here. Starting from "approved" everywhere but the first step, a step
    loses it when any step reaching it neither was approved nor is an approval; repeated until
    nothing changes, which leaves "approved on every path" for each step reached.
    """
    count = len(playbook.steps)
    # approved[i]: every path from the first step to step i passes an approval before i
    approved = [True] * count
    approved[0] = False
    changed = True
    reached = {0}
    while changed:
        changed = False
        for index in sorted(reached):
            after = approved[index] or isinstance(playbook.steps[index], ApprovalStep)
            for nxt in playbook.successors(index):
                if nxt not in reached:
                    reached.add(nxt)
                    changed = True
                if approved[nxt] and not after:
                    approved[nxt] = False
                    changed = True
    return [(("steps", i, "type"),
             f"{step.type} changes something outside govsoc: put an approval step before it "
             "or mark it automatic: true")
            for i, step in enumerate(playbook.steps)
            if step.requires_approval and not approved[i]]
