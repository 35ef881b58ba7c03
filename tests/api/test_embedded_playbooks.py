"""`govsoc up`'s embedded back end runs playbooks on the incidents it opens (issue 8: playbooks are
triggered by incident conditions), through the same two halves as the scale-out workers: the
incident worker publishes each incident it touched, a playbook worker starts what it triggers."""

from __future__ import annotations

from api.wiring import Runtime, attach_playbooks, build_playbook_runner
from config.tenants import TenantScope
from pipeline.bus import topics
from pipeline.records import Alert, DetectionKind, Severity, utc_now
from pipeline.store.base import IncidentQuery
from playbooks.runs import RunState

EVERYONE = TenantScope.everything()


def alert(n: int, rule: str = "ssh-brute-force", tags: tuple[str, ...] = ("attack.t1110",)) -> Alert:
    entity = {"source.address": "203.0.113.77"}
    return Alert(id=Alert.make_id("hanoi", rule, entity, f"e{n}"), tenant="hanoi", timestamp=utc_now(),
                 kind=DetectionKind.SIGMA, rule_id=rule, rule_title="SSH brute force", severity=Severity.HIGH,
                 event_ids=(f"e{n}",), entity=entity, tags=tags)


def test_a_new_incident_starts_the_playbooks_it_triggers_once(runtime: Runtime) -> None:
    runner = build_playbook_runner(runtime, {"http": {"kind": "http", "url": "http://127.0.0.1:9/none"}})
    attach_playbooks(runtime, runner)
    runtime.bus.publish(topics.ALERTS, [("hanoi", alert(1).to_json())])
    runtime.pipeline.drain()
    [incident] = runtime.incidents.incidents(EVERYONE, IncidentQuery())
    [run] = runner.runs.runs()
    assert (run.playbook_id, run.incident_id, run.state) == ("brute-force-login", incident.id,
                                                           RunState.WAITING_APPROVAL)
    runtime.bus.publish(topics.ALERTS, [("hanoi", alert(2).to_json())])  # the incident grows
    runtime.pipeline.drain()
    assert [r.id for r in runner.runs.runs()] == [run.id]  # the same run, not a second one
    runtime.bus.publish(topics.ALERTS, [("hanoi", alert(3, "other-rule", ()).to_json())])
    runtime.pipeline.drain()
    assert len(runtime.incidents.incidents(EVERYONE, IncidentQuery())) == 2
    assert len(runner.runs.runs()) == 1  # nothing triggered by an incident without the tag
