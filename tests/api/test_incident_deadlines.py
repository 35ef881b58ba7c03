"""Incident deadlines raise alerts before they are missed and when they are (issue 8): the
pipeline's watch reads the incidents, publishes one alert per deadline due soon or overdue, and
the incident step adds each to the incident it is about, once, whichever process raises it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from api.wiring import Runtime, build_runtime
from config.load import load_settings
from config.tenants import TenantScope
from detections.incidents.clocks import CLOCK_RULE_ID
from pipeline.bus import topics
from pipeline.records import Alert, DetectionKind, Severity, utc_now
from pipeline.store.base import AlertQuery, IncidentQuery

EVERYONE = TenantScope.everything()


def brute_force(now_offset: timedelta = timedelta(0)) -> Alert:
    entity = {"source.address": "203.0.113.9"}
    return Alert(id=Alert.make_id("hanoi", "test-rule", entity, "e1"), tenant="hanoi",
                 timestamp=utc_now() + now_offset, kind=DetectionKind.SIGMA, rule_id="test-rule",
                 rule_title="Brute force", severity=Severity.HIGH, event_ids=("e1",), entity=entity)


def test_missed_deadlines_join_their_incident_once(runtime: Runtime, tmp_path: Path) -> None:
    runtime.bus.publish(topics.ALERTS, [("hanoi", brute_force().to_json())])
    runtime.pipeline.drain()
    [incident] = runtime.incidents.incidents(EVERYONE, IncidentQuery())
    assert runtime.pipeline.watch is not None

    runtime.pipeline.watch(utc_now())  # just opened: nothing is due yet
    runtime.pipeline.drain()
    assert runtime.incidents.count_alerts(EVERYONE, AlertQuery(rule_id=CLOCK_RULE_ID)) == 0

    later = incident.created + timedelta(days=6)  # past the high SLA and the 5-day report
    runtime.pipeline.watch(later)
    runtime.pipeline.drain()
    raised = runtime.incidents.alerts(EVERYONE, AlertQuery(rule_id=CLOCK_RULE_ID))
    assert {a.kind for a in raised} == {DetectionKind.INCIDENT_CLOCK}
    titles = {a.rule_title for a in raised}
    assert {"Incident deadline: First response", "Incident deadline: Resolution"} <= titles
    assert any(t.startswith("Incident deadline: Initial report") for t in titles)  # the regulatory clock
    assert all("missed: was due" in a.description and incident.id in a.description for a in raised)
    assert all(a.entity == {"incident.id": incident.id} and a.tenant == "hanoi" for a in raised)
    after = runtime.incidents.incident(EVERYONE, incident.id)
    assert after is not None and after.alert_count == 1 + len(raised)
    assert not [i for i in runtime.incidents.incidents(EVERYONE, IncidentQuery(limit=1000))
                if i.rule_id == CLOCK_RULE_ID]  # no incident of their own (the silent sensors have theirs)
    in_incident = runtime.incidents.alerts(EVERYONE, AlertQuery(incident_id=incident.id, limit=1000))
    assert {a.id for a in raised} <= {a.id for a in in_incident}

    runtime.pipeline.watch(later + timedelta(minutes=1))  # nothing new to say
    runtime.pipeline.drain()
    other = build_runtime(load_settings(None, overrides={"data_dir": tmp_path}))  # another process
    try:
        assert other.pipeline.watch is not None
        other.pipeline.watch(later)
        other.pipeline.drain()
    finally:
        other.close()
    final = runtime.incidents.incident(EVERYONE, incident.id)
    assert final is not None and final.alert_count == after.alert_count
