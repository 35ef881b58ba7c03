"""The incident lifecycle: which state may follow which, and the changes people make.

In: a person's request (transition, assignment, comment, a regulatory clock met) with the caller's
tenant scope and the time `now`. Out: the changed incident in the IncidentStore, one state-history
step for a transition, and one audit entry per change with the values before and after.

States (trạng thái) and the transitions allowed (`TRANSITIONS`):

    new -> triage | in_progress | false_positive
    triage -> in_progress | false_positive
    in_progress -> contained | resolved | false_positive
    contained -> resolved | in_progress | false_positive     (containment did not hold)
    resolved -> closed | in_progress                          (reopen)
    false_positive -> triage                                  (reopen)
    closed -> nothing: closed is final; new alerts open a new incident

Invariants:
- A transition not in the table raises `TransitionRefused`, and nothing is stored or audited.
- A transition to false_positive, and every reopen, needs a non-empty reason.
- `responded` is set by the first change a person makes (transition, assignment or comment) and
  never changes after; `resolved` is set on entering resolved or false_positive (the response
  ended) and cleared by a reopen, so the final-report clock restarts when the response ends again.
- An incident outside the scope is `IncidentNotFound`, exactly like one that does not exist.
- No wall clock: every time comes from `now`.
- A change is a compare-and-set on the incident's `updated` time, retried from a fresh read
  (and re-checked) when grouping added an alert in between; the audit entry is written only
  after the change is stored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from config.errors import GovsocError
from config.settings import IncidentSettings
from config.tenants import TenantScope
from pipeline.ids import stable_id
from pipeline.records import Incident, IncidentComment, IncidentState, StateChange, to_iso
from pipeline.store.base import IncidentConflict, IncidentStore

S = IncidentState
TRANSITIONS: Mapping[IncidentState, frozenset[IncidentState]] = {
    S.NEW: frozenset({S.TRIAGE, S.IN_PROGRESS, S.FALSE_POSITIVE}),
    S.TRIAGE: frozenset({S.IN_PROGRESS, S.FALSE_POSITIVE}),
    S.IN_PROGRESS: frozenset({S.CONTAINED, S.RESOLVED, S.FALSE_POSITIVE}),
    S.CONTAINED: frozenset({S.RESOLVED, S.IN_PROGRESS, S.FALSE_POSITIVE}),
    S.RESOLVED: frozenset({S.CLOSED, S.IN_PROGRESS}),
    S.FALSE_POSITIVE: frozenset({S.TRIAGE}),
    S.CLOSED: frozenset(),
}
STATE_LABELS_VI: Mapping[IncidentState, str] = {  # ../shared/GLOSSARY-vi.md
    S.NEW: "mới", S.TRIAGE: "đang phân loại", S.IN_PROGRESS: "đang xử lý", S.CONTAINED: "đã ngăn chặn",
    S.RESOLVED: "đã khắc phục", S.CLOSED: "đã đóng", S.FALSE_POSITIVE: "cảnh báo sai",
}
REOPENS = frozenset({(S.RESOLVED, S.IN_PROGRESS), (S.FALSE_POSITIVE, S.TRIAGE)})
RESPONSE_ENDED = frozenset({S.RESOLVED, S.FALSE_POSITIVE})
CONFLICT_ATTEMPTS = 5


class LifecycleError(GovsocError):
    """A change to an incident that cannot be made."""


class IncidentNotFound(LifecycleError):
    """No incident of that id within the caller's scope."""


class UnknownClock(LifecycleError):
    """No regulatory clock of that id is configured."""


class TransitionRefused(LifecycleError):
    """The change is not allowed from the incident's current state (or lacks a reason)."""


def is_allowed(current: IncidentState, to: IncidentState) -> bool:
    return to in TRANSITIONS[current]


def needs_reason(current: IncidentState, to: IncidentState) -> bool:
    return to is S.FALSE_POSITIVE or (current, to) in REOPENS


def check_transition(current: IncidentState, to: IncidentState, reason: str) -> None:
    """Raise `TransitionRefused` unless `current -> to` is allowed and has the reason it needs."""
    if not is_allowed(current, to):
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "nothing (final state)"
        raise TransitionRefused(f"cannot move an incident from {current.value} to {to.value}; allowed: {allowed}")
    if needs_reason(current, to) and not reason.strip():
        raise TransitionRefused(f"moving an incident from {current.value} to {to.value} needs a reason")


def transitioned(incident: Incident, to: IncidentState, now: datetime) -> Incident:
    """The incident after an allowed transition at `now` (pure; `check_transition` first)."""
    resolved = incident.resolved
    if to in RESPONSE_ENDED:
        resolved = now
    elif (incident.state, to) in REOPENS:
        resolved = None
    return dataclasses.replace(incident, state=to, updated=now, resolved=resolved,
                               responded=incident.responded or now)


def _snapshot(incident: Incident) -> dict[str, Any]:
    """The fields a person can change, as an audit entry records them before and after."""
    def iso(ts: datetime | None) -> str | None:
        return None if ts is None else to_iso(ts)

    return {"state": incident.state.value, "assignee": incident.assignee, "responded": iso(incident.responded),
            "resolved": iso(incident.resolved), "clocks_met": {k: to_iso(v) for k, v in incident.clocks_met.items()}}


class IncidentLifecycle:
    """The changes people make to incidents; every one is stored, then audited."""

    def __init__(self, store: IncidentStore, settings: IncidentSettings) -> None:
        self._store = store
        self._clock_ids = frozenset(clock.id for clock in settings.regulatory_clocks)

    def _get(self, scope: TenantScope, incident_id: str) -> Incident:
        incident = self._store.incident(scope, incident_id)
        if incident is None:
            raise IncidentNotFound(f"incident {incident_id!r} not found")
        return incident

    def _change(self, scope: TenantScope, incident_id: str, make: Callable[[Incident], Incident], *,
                actor: str, action: str, **extra: Any) -> tuple[Incident, Incident]:
        """Read, apply `make` (which may refuse), compare-and-set, audit; re-read and retry when the
        incident changed in between (a new alert joined it), so neither change is lost."""
        for _ in range(CONFLICT_ATTEMPTS):
            before = self._get(scope, incident_id)
            after = make(before)
            try:
                self._store.save_incident(after, [], expected_updated=before.updated)
            except IncidentConflict:
                continue
            self._store.append_audit(actor=actor, tenant=after.tenant, action=action, object_type="incident",
                                     object_id=after.id,
                                     details={"before": _snapshot(before), "after": _snapshot(after), **extra})
            return before, after
        raise LifecycleError(f"incident {incident_id!r} kept changing; try again")

    def transition(self, scope: TenantScope, incident_id: str, to: IncidentState, *, actor: str,
                   now: datetime, reason: str = "") -> Incident:
        """Move the incident to `to`; raises `TransitionRefused` (nothing stored) if not allowed."""
        def make(before: Incident) -> Incident:
            check_transition(before.state, to, reason)
            return transitioned(before, to, now)

        before, after = self._change(scope, incident_id, make, actor=actor, action="incident.transition",
                                     reason=reason)
        self._store.record_state_change(StateChange(incident_id=after.id, tenant=after.tenant,
                                                    from_state=before.state, to_state=to, actor=actor,
                                                    reason=reason, at=now))
        return after

    def assign(self, scope: TenantScope, incident_id: str, assignee: str | None, *, actor: str,
               now: datetime) -> Incident:
        """Give the incident to `assignee` (None: unassign); a closed incident cannot be reassigned."""
        def make(before: Incident) -> Incident:
            if before.state is S.CLOSED:
                raise TransitionRefused("a closed incident cannot be reassigned")
            return dataclasses.replace(before, assignee=assignee, updated=now, responded=before.responded or now)

        return self._change(scope, incident_id, make, actor=actor, action="incident.assign")[1]

    def comment(self, scope: TenantScope, incident_id: str, text: str, *, actor: str,
                now: datetime) -> IncidentComment:
        """Add a comment (ghi chú); the same author, time and text is one comment, however often sent."""
        if not text.strip():
            raise LifecycleError("a comment needs some text")
        comment_id = stable_id("comment", incident_id, actor, to_iso(now), text)

        def make(before: Incident) -> Incident:
            return dataclasses.replace(before, updated=now, responded=before.responded or now)

        _, after = self._change(scope, incident_id, make, actor=actor, action="incident.comment",
                                comment_id=comment_id, text=text)
        comment = IncidentComment(id=comment_id, incident_id=after.id, tenant=after.tenant, author=actor,
                                  text=text, created=now)
        self._store.add_comment(comment)
        return comment

    def mark_clock_met(self, scope: TenantScope, incident_id: str, clock_id: str, *, actor: str,
                       now: datetime) -> Incident:
        """Record that a regulatory deadline was met at `now` (a report sent, an acknowledgement given)."""
        if clock_id not in self._clock_ids:
            known = ", ".join(sorted(self._clock_ids)) or "none configured"
            raise UnknownClock(f"unknown regulatory clock {clock_id!r} (known: {known})")

        def make(before: Incident) -> Incident:
            return dataclasses.replace(before, updated=now, clocks_met={**before.clocks_met, clock_id: now})

        return self._change(scope, incident_id, make, actor=actor, action="incident.clock_met",
                            clock_id=clock_id)[1]
