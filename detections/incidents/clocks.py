"""Incident clocks: SLA deadlines per severity and regulatory deadlines from configuration.

In: an incident, `IncidentSettings` (SLA targets and regulatory clocks) and the time `now`.
Out: `Deadline`s (what applies, when it started, when it is due, when it was met),
`DeadlineWarning`s for the ones due soon or overdue, and `DeadlineWatch`, which a periodic loop
polls to raise each warning once, before the deadline is missed and again when it is.

- SLA: first response is due `sla[severity].first_response` after the incident was opened and is
  met by the first change a person makes (`Incident.responded`); resolution is due
  `sla[severity].resolution` after opening and is met when the response ended (`Incident.resolved`).
- Regulatory clocks start on `detected` (`Incident.created`), `response_ended`
  (`Incident.resolved`) or `reported` (`Incident.reported`); a clock whose start has not happened
  yet is `not_started` and has no due time. A clock is met by `Incident.clocks_met[clock.id]`.
- A deadline is overdue strictly after its due time; a deadline met late stays `met_late`.
- Everything is a pure function of its arguments: no wall clock, so the same `now` gives the
  same answer (tests use a fixed one; the API passes the request's time).
- Raising them: `deadline_alerts` turns the warnings of the incidents a periodic loop reads (the
  pipeline's watch, `api/wiring/runtime.py`) into `Alert`s of kind `incident_clock`, whose id is
  (incident, deadline, due soon or overdue): each is raised once however many processes or
  restarts raise it again (the store keeps one alert per id), and the incident step adds it to the
  incident it is about (grouping.py), so the warning shows in that incident's alerts and the
  incident comes up in the queue.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from config.settings import IncidentSettings, RegulatoryClock, SlaTarget
from pipeline.records import Alert, DetectionKind, Incident, IncidentState, Severity, to_iso


class DeadlineStatus(StrEnum):
    NOT_STARTED = "not_started"
    RUNNING = "running"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"
    MET = "met"
    MET_LATE = "met_late"


@dataclass(frozen=True, slots=True)
class Deadline:
    """One clock of one incident: `due` is None until the clock has started."""

    id: str
    kind: Literal["sla", "regulatory"]
    name_vi: str
    name_en: str
    started: datetime | None
    due: datetime | None
    met: datetime | None
    warn_before: timedelta = timedelta(0)

    def status(self, now: datetime) -> DeadlineStatus:
        if self.due is None:
            return DeadlineStatus.NOT_STARTED
        if self.met is not None:
            return DeadlineStatus.MET if self.met <= self.due else DeadlineStatus.MET_LATE
        if now > self.due:
            return DeadlineStatus.OVERDUE
        if now >= self.due - self.warn_before:
            return DeadlineStatus.DUE_SOON
        return DeadlineStatus.RUNNING

    def remaining(self, now: datetime) -> timedelta | None:
        """Time left until due (negative once overdue); None if not started or already met."""
        if self.due is None or self.met is not None:
            return None
        return self.due - now


@dataclass(frozen=True, slots=True)
class DeadlineWarning:
    """A deadline of an open clock that is due soon or overdue at `now`: what the alert is raised for."""

    incident_id: str
    tenant: str
    deadline: Deadline
    status: DeadlineStatus
    remaining: timedelta


def sla_target(settings: IncidentSettings, severity: Severity) -> SlaTarget:
    return settings.sla[severity.label]  # type: ignore[index]  # every label is present (validated)


def sla_deadlines(incident: Incident, settings: IncidentSettings) -> list[Deadline]:
    """First response and resolution deadlines for the incident's severity."""
    target = sla_target(settings, incident.severity)
    opened = incident.created
    return [
        Deadline(id="sla-first-response", kind="sla", name_vi="Thời hạn phản hồi đầu tiên",
                 name_en="First response", started=opened, due=opened + target.first_response,
                 met=incident.responded, warn_before=target.first_response / 4),
        Deadline(id="sla-resolution", kind="sla", name_vi="Thời hạn khắc phục", name_en="Resolution",
                 started=opened, due=opened + target.resolution, met=incident.resolved,
                 warn_before=target.resolution / 4),
    ]


def clock_applies(clock: RegulatoryClock, severity: Severity) -> bool:
    return clock.applies_to == "always" or severity >= Severity.from_label(clock.applies_to)


def clock_start(clock: RegulatoryClock, incident: Incident) -> datetime | None:
    starts = {"detected": incident.created, "response_ended": incident.resolved, "reported": incident.reported}
    return starts[clock.starts_on]


def regulatory_deadlines(incident: Incident, clocks: Iterable[RegulatoryClock]) -> list[Deadline]:
    """The configured clocks that apply to the incident, in configuration order."""
    deadlines = []
    for clock in clocks:
        if not clock_applies(clock, incident.severity):
            continue
        started = clock_start(clock, incident)
        deadlines.append(Deadline(
            id=clock.id, kind="regulatory", name_vi=clock.name_vi, name_en=clock.name_en, started=started,
            due=None if started is None else started + clock.due_after, met=incident.clocks_met.get(clock.id),
            warn_before=clock.warn_before,
        ))
    return deadlines


def incident_deadlines(incident: Incident, settings: IncidentSettings) -> list[Deadline]:
    """SLA deadlines, then regulatory ones; SLA clocks stop counting once the incident is not open
    (a resolved incident met its resolution SLA when it was resolved; a closed one stays as it was)."""
    return [*sla_deadlines(incident, settings), *regulatory_deadlines(incident, settings.regulatory_clocks)]


def deadline_warnings(incidents: Iterable[Incident], settings: IncidentSettings,
                      now: datetime) -> list[DeadlineWarning]:
    """Every deadline due soon or overdue at `now`, most urgent first (least time left)."""
    warnings = []
    for incident in incidents:
        for deadline in incident_deadlines(incident, settings):
            status = deadline.status(now)
            remaining = deadline.remaining(now)
            if status in (DeadlineStatus.DUE_SOON, DeadlineStatus.OVERDUE) and remaining is not None:
                warnings.append(DeadlineWarning(incident_id=incident.id, tenant=incident.tenant,
                                                deadline=deadline, status=status, remaining=remaining))
    return sorted(warnings, key=lambda w: (w.remaining, w.incident_id, w.deadline.id))


class DeadlineWatch:
    """Raises each warning once: a deadline is announced when it becomes due soon and again when it
    becomes overdue, never on every poll. The memory of what was raised is per process."""

    def __init__(self, settings: IncidentSettings) -> None:
        self._settings = settings
        self._raised: set[tuple[str, str, DeadlineStatus]] = set()

    def step(self, incidents: Iterable[Incident], now: datetime) -> list[DeadlineWarning]:
        """The warnings at `now` not raised before (feed it the open incidents, or any)."""
        fresh = []
        for warning in deadline_warnings(incidents, self._settings, now):
            key = (warning.incident_id, warning.deadline.id, warning.status)
            if key not in self._raised:
                self._raised.add(key)
                fresh.append(warning)
        return fresh


CLOCK_RULE_ID = "govsoc-incident-deadline"
CLOCK_RULE_TITLE = "Incident deadline"
CLOCK_ENTITY = "incident.id"
# Incidents whose clocks can still be missed: open ones, and resolved ones (the final report's
# clock starts when the response ends).
WATCHED_STATES = tuple(state for state in IncidentState
                       if state not in (IncidentState.CLOSED, IncidentState.FALSE_POSITIVE))


def deadline_alerts(incidents: Iterable[Incident], settings: IncidentSettings, now: datetime) -> list[Alert]:
    """An alert for each deadline of `incidents` due soon or overdue at `now` (see the module)."""
    by_id = {incident.id: incident for incident in incidents}
    alerts = []
    for warning in deadline_warnings(by_id.values(), settings, now):
        incident, deadline = by_id[warning.incident_id], warning.deadline
        entity = {CLOCK_ENTITY: incident.id}
        due = to_iso(deadline.due) if deadline.due is not None else "?"
        if warning.status is DeadlineStatus.OVERDUE:
            what = f"missed: was due {due}"
        else:
            what = f"due {due}, in {_minutes(warning.remaining)} min"
        alerts.append(Alert(
            id=Alert.make_id(incident.tenant, CLOCK_RULE_ID, entity, f"{deadline.id}:{warning.status.value}"),
            tenant=incident.tenant, timestamp=now, kind=DetectionKind.INCIDENT_CLOCK, rule_id=CLOCK_RULE_ID,
            rule_title=f"{CLOCK_RULE_TITLE}: {deadline.name_en}", severity=incident.severity, event_ids=(),
            entity=entity, tags=(), asset_id=incident.asset_id,
            description=f"incident {incident.id} ({incident.title}): {deadline.name_vi} / {deadline.name_en} {what}",
        ))
    return alerts


def _minutes(remaining: timedelta) -> int:
    return max(0, int(remaining.total_seconds() // 60))
