"""SLA and regulatory clocks, counted from a fixed `now`: breach times, countdowns, warnings."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from config.settings import IncidentSettings, RegulatoryClock
from detections.incidents.clocks import (
    Deadline,
    DeadlineStatus,
    DeadlineWatch,
    deadline_warnings,
    incident_deadlines,
    regulatory_deadlines,
    sla_deadlines,
)
from pipeline.records import Incident, IncidentState, Severity
from tests.factories import T0

SETTINGS = IncidentSettings()
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def incident(severity: Severity = Severity.HIGH, **changes: object) -> Incident:
    base = Incident(id="inc-1", tenant="hanoi", title="SSH brute force", severity=severity, state=IncidentState.NEW,
                    rule_id="rule-1", entity={"source.address": "203.0.113.77"}, first_seen=T0, last_seen=T0,
                    alert_count=1, created=T0, updated=T0)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def by_id(found: list[Deadline]) -> dict[str, Deadline]:
    return {d.id: d for d in found}


@pytest.mark.parametrize("severity, first_response, resolution", [
    (Severity.CRITICAL, 1 * HOUR, 1 * DAY),
    (Severity.HIGH, 4 * HOUR, 3 * DAY),
    (Severity.MEDIUM, 1 * DAY, 7 * DAY),
    (Severity.LOW, 3 * DAY, 30 * DAY),
    (Severity.INFORMATIONAL, 7 * DAY, 90 * DAY),
])
def test_sla_breach_times_per_severity(severity: Severity, first_response: timedelta,
                                       resolution: timedelta) -> None:
    first, end = sla_deadlines(incident(severity), SETTINGS)
    assert (first.id, first.due) == ("sla-first-response", T0 + first_response)
    assert (end.id, end.due) == ("sla-resolution", T0 + resolution)
    assert first.status(T0 + first_response) is DeadlineStatus.DUE_SOON  # due, not yet breached
    assert first.status(T0 + first_response + timedelta(microseconds=1)) is DeadlineStatus.OVERDUE


def test_sla_targets_come_from_configuration() -> None:
    settings = IncidentSettings.model_validate({"sla": {**{k: v.model_dump() for k, v in SETTINGS.sla.items()},
                                                        "high": {"first_response": "PT30M", "resolution": "P1D"}}})
    first, end = sla_deadlines(incident(Severity.HIGH), settings)
    assert (first.due, end.due) == (T0 + timedelta(minutes=30), T0 + DAY)
    with pytest.raises(ValueError, match="no target for severity critical"):
        IncidentSettings.model_validate({"sla": {"high": {"first_response": "PT30M", "resolution": "P1D"}}})


def test_sla_met_on_time_and_late() -> None:
    first, end = sla_deadlines(incident(responded=T0 + HOUR, resolved=T0 + 4 * DAY), SETTINGS)
    assert first.status(T0 + 10 * DAY) is DeadlineStatus.MET
    assert end.status(T0 + 10 * DAY) is DeadlineStatus.MET_LATE
    assert first.remaining(T0 + 10 * DAY) is None


def test_regulatory_defaults_count_down_from_detection() -> None:
    deadlines = by_id(regulatory_deadlines(incident(Severity.HIGH), SETTINGS.regulatory_clocks))
    assert set(deadlines) == {"initial-report", "acknowledge-report", "final-report"}  # not critical
    initial = deadlines["initial-report"]
    assert initial.due == T0 + 5 * DAY
    assert initial.remaining(T0 + 2 * DAY) == 3 * DAY
    assert initial.status(T0 + 2 * DAY) is DeadlineStatus.RUNNING
    assert initial.status(T0 + 4 * DAY) is DeadlineStatus.DUE_SOON  # warned a day before
    assert initial.remaining(T0 + 6 * DAY) == -DAY
    for later in ("acknowledge-report", "final-report"):  # no report received, response not ended
        assert deadlines[later].status(T0 + 6 * DAY) is DeadlineStatus.NOT_STARTED


def test_a_critical_incident_must_be_reported_at_once() -> None:
    deadlines = by_id(regulatory_deadlines(incident(Severity.CRITICAL), SETTINGS.regulatory_clocks))
    at_once = deadlines["beyond-capacity"]
    assert at_once.due == T0
    assert at_once.status(T0 + timedelta(seconds=1)) is DeadlineStatus.OVERDUE


def test_final_report_counts_from_the_end_of_the_response() -> None:
    ended = T0 + 3 * DAY
    deadlines = by_id(regulatory_deadlines(incident(resolved=ended, reported=T0 + HOUR,
                                                    clocks_met={"acknowledge-report": T0 + HOUR}),
                                           SETTINGS.regulatory_clocks))
    assert deadlines["final-report"].due == ended + 5 * DAY
    assert deadlines["acknowledge-report"].status(T0 + DAY) is DeadlineStatus.MET


def test_clocks_are_configured_not_coded() -> None:
    clock = RegulatoryClock(id="decree-x", name_vi="Báo cáo theo nghị định mới", name_en="New decree report",
                            starts_on="detected", due_after=2 * DAY, applies_to="medium", warn_before=HOUR)
    settings = IncidentSettings(regulatory_clocks=(clock,))
    assert [d.id for d in incident_deadlines(incident(Severity.LOW), settings)] == [
        "sla-first-response", "sla-resolution"]
    [deadline] = regulatory_deadlines(incident(Severity.MEDIUM), settings.regulatory_clocks)
    assert (deadline.id, deadline.due, deadline.name_vi) == ("decree-x", T0 + 2 * DAY, clock.name_vi)
    with pytest.raises(ValueError, match="share an id"):
        IncidentSettings(regulatory_clocks=(clock, clock))


def test_warnings_are_raised_before_a_deadline_is_missed() -> None:
    quiet = incident(Severity.LOW, id="inc-quiet", responded=T0, clocks_met={"initial-report": T0})
    urgent = incident(Severity.HIGH, id="inc-urgent")
    now = T0 + 3 * HOUR + 30 * timedelta(minutes=1)  # 30 min before the first-response SLA of a high incident
    warnings = deadline_warnings([quiet, urgent], SETTINGS, now)
    assert [(w.incident_id, w.deadline.id, w.status, w.remaining) for w in warnings] == [
        ("inc-urgent", "sla-first-response", DeadlineStatus.DUE_SOON, timedelta(minutes=30))]
    later = deadline_warnings([quiet, urgent], SETTINGS, T0 + 4 * DAY + HOUR)
    assert [(w.incident_id, w.deadline.id, w.status) for w in later] == [  # most urgent first
        ("inc-urgent", "sla-first-response", DeadlineStatus.OVERDUE),
        ("inc-urgent", "sla-resolution", DeadlineStatus.OVERDUE),
        ("inc-urgent", "initial-report", DeadlineStatus.DUE_SOON),
    ]
    assert deadline_warnings([quiet], SETTINGS, now) == []


def test_the_watch_raises_each_warning_once() -> None:
    watch = DeadlineWatch(SETTINGS)
    urgent = incident(Severity.CRITICAL, clocks_met={"beyond-capacity": T0})
    soon = T0 + 50 * timedelta(minutes=1)  # 10 minutes before the 1-hour first response
    assert [(w.deadline.id, w.status) for w in watch.step([urgent], soon)] == [
        ("sla-first-response", DeadlineStatus.DUE_SOON)]
    assert watch.step([urgent], soon + timedelta(minutes=5)) == []
    late = watch.step([urgent], T0 + 2 * HOUR)
    assert [(w.deadline.id, w.status) for w in late] == [("sla-first-response", DeadlineStatus.OVERDUE)]
    assert watch.step([dataclasses.replace(urgent, responded=T0 + 3 * HOUR)], T0 + 3 * HOUR) == []
