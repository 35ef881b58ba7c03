"""Everything the incident page shows about one incident, read within the caller's scope.

In: an incident id and the caller's `Principal`. Out: an `IncidentView`, or None when the incident
is not in the caller's scope (the page answers 404, exactly as for one that does not exist).

- Alerts, comments, state history and audit come from the incident store under the caller's
  scope; events are read by the alerts' event ids, again under the scope, so a link that names a
  sibling's event shows nothing.
- The timeline merges alerts and events, oldest first; at most `MAX_EVENTS` events are shown.
- ATT&CK techniques are the `attack.tNNNN[.NNN]` tags of the incident and its alerts.
- Related incidents share at least one entity pair (`source.address=...`) with this one, among
  the `RELATED_SCAN` most recent incidents in scope (the store has no entity index yet).
- Playbook runs are the runner's runs of this incident (when playbooks are enabled); a step is
  decidable when the run is waiting on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from api.auth import Principal
from config.settings import IncidentSettings
from detections.incidents.clocks import Deadline, incident_deadlines
from detections.incidents.lifecycle import TRANSITIONS
from pipeline.records import Alert, AuditRecord, Event, Incident, IncidentComment, IncidentState, StateChange, flatten
from pipeline.store.base import AlertQuery, EventQuery, EventStore, IncidentQuery, IncidentStore
from playbooks.runner import PlaybookRunner
from playbooks.runs import Run, RunState, StepState

MAX_EVENTS = 200
RELATED_SCAN = 1000
RUNS_SCANNED = 1000
_TECHNIQUE = re.compile(r"^attack\.(t\d{4}(?:\.\d{3})?)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    kind: str  # "alert" or "event"
    title: str
    ref: str  # the anchor of the alert or event below


@dataclass(frozen=True, slots=True)
class EventView:
    event: Event
    fields: list[tuple[str, str]]
    original: str


@dataclass
class IncidentView:
    incident: Incident
    alerts: list[Alert]
    events: list[EventView]
    timeline: list[TimelineEntry]
    techniques: list[str]
    related: list[Incident]
    runs: list[Run]
    comments: list[IncidentComment]
    history: list[StateChange]
    audit: list[AuditRecord]
    deadlines: list[Deadline]
    next_states: list[IncidentState] = field(default_factory=list)


def event_view(event: Event) -> EventView:
    """The event's fields as (dotted name, text) pairs, sorted, and its original line."""
    pairs = sorted((name, display(value)) for name, value in flatten(event.doc))
    original = event.get("event.original")
    return EventView(event, pairs, original if isinstance(original, str) else event.message)


def display(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(display(v) for v in value)
    return "" if value is None else str(value)


def techniques(incident: Incident, alerts: list[Alert]) -> list[str]:
    found = {m.group(1).upper() for tag in (*incident.tags, *(t for a in alerts for t in a.tags))
             if (m := _TECHNIQUE.match(tag))}
    return sorted(found)


def related_incidents(store: IncidentStore, principal: Principal, incident: Incident) -> list[Incident]:
    pairs = set(incident.entity.items())
    if not pairs:
        return []
    recent = store.incidents(principal.scope, IncidentQuery(limit=RELATED_SCAN))
    return [i for i in recent if i.id != incident.id and pairs & set(i.entity.items())][:20]


def incident_runs(runner: PlaybookRunner | None, principal: Principal, incident_id: str) -> list[Run]:
    if runner is None:
        return []
    found = []
    for run in runner.runs.runs(limit=RUNS_SCANNED):
        if run.incident_id == incident_id and run.tenant in principal.scope:
            found.append(runner.runs.run(run.id) or run)
    return found


def is_decidable(run: Run, step_id: str) -> bool:
    return run.state is RunState.WAITING_APPROVAL and run.cursor == step_id and any(
        s.step_id == step_id and s.state is StepState.WAITING_APPROVAL for s in run.steps)


def _timeline(alerts: list[Alert], events: list[EventView]) -> list[TimelineEntry]:
    entries = [TimelineEntry(a.timestamp, "alert", a.rule_title or a.rule_id, f"alert-{a.id}") for a in alerts]
    entries += [TimelineEntry(e.event.timestamp, "event", e.event.message or e.event.id, f"event-{e.event.id}")
                for e in events]
    return sorted(entries, key=lambda entry: (entry.at, entry.kind))


def load_incident(incidents: IncidentStore, events: EventStore, runner: PlaybookRunner | None,
                  settings: IncidentSettings, principal: Principal, incident_id: str) -> IncidentView | None:
    incident = incidents.incident(principal.scope, incident_id)
    if incident is None:
        return None
    scope = principal.scope
    alerts = incidents.alerts(scope, AlertQuery(incident_id=incident_id, limit=1000))
    event_ids = list(dict.fromkeys(eid for a in alerts for eid in a.event_ids))[:MAX_EVENTS]
    found = events.search(scope, EventQuery(ids=event_ids, limit=MAX_EVENTS, oldest_first=True)) if event_ids else []
    views = [event_view(e) for e in found]
    runs = incident_runs(runner, principal, incident_id)
    audit = incidents.audit_trail(scope, object_id=incident_id, limit=500)
    for run in runs:
        audit += incidents.audit_trail(scope, object_id=run.id, limit=200)
    audit.sort(key=lambda r: r.seq, reverse=True)
    return IncidentView(
        incident=incident, alerts=alerts, events=views, timeline=_timeline(alerts, views),
        techniques=techniques(incident, alerts), related=related_incidents(incidents, principal, incident),
        runs=runs, comments=incidents.comments(scope, incident_id, limit=500),
        history=incidents.state_history(scope, incident_id, limit=500), audit=audit,
        deadlines=incident_deadlines(incident, settings),
        next_states=sorted(TRANSITIONS[incident.state], key=list(IncidentState).index),
    )
