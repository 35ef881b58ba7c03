"""The read-only steps on real stores: `query` (a retro-hunt by entity or by Sigma rule, within the
incident's tenant and window, branched on) and `enrich` with `intel` (indicators as TLP lets the
incident's tenant see them)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from config.tenants import TenantScope
from detections.intel import ImportOptions, IndicatorType, Tlp
from detections.intel.model import make_indicator
from detections.sigma.load import builtin_rules_dir, load_rules
from pipeline.records import Event
from playbooks import RunState, StepState, load_playbook_text
from tests.factories import T0, make_event
from tests.playbooks.conftest import Agencies

NOW = T0 + timedelta(minutes=5)
ADDRESS = "203.0.113.77"
ALL = TenantScope.everything()


def ssh_failure(tenant: str, n: int, *, address: str = ADDRESS, minutes: int = 0) -> Event:
    return make_event(tenant, n, at=T0 + timedelta(minutes=minutes, seconds=n), message=f"sshd failure {n}",
                      event__dataset="system.auth", event__category=["authentication"], event__outcome="failure",
                      process__name="sshd", source__ip=address, source__address=address)


QUERY = """\
id: related
name: Related events
steps:
  - id: related
    type: query
    fields: [source.address]
    before: 2h
    after: 30m
    limit: 3
  - id: seen-before
    type: branch
    on_step: related
    key: found
    equals: true
    then: say-seen
  - id: say-new
    type: comment
    text: "No earlier events from ${entity.source.address}."
  - id: say-seen
    type: comment
    text: "${steps.related.count} events from ${entity.source.address}."
"""


def test_a_query_counts_the_entitys_events_in_the_tenant_and_window_and_a_branch_reads_it(
        agencies: Agencies) -> None:
    agencies.events.write([
        *[ssh_failure("hanoi", n, minutes=-60) for n in range(5)],  # in the window, in hanoi
        ssh_failure("hanoi-bavi", 9, minutes=10),  # below hanoi: in scope
        ssh_failure("danang", 10),  # a sibling: never seen
        ssh_failure("hanoi", 11, minutes=-200),  # before the window (2 h before the first sighting)
        ssh_failure("hanoi", 12, minutes=40),  # after it (30 min after the last)
        ssh_failure("hanoi", 13, address="198.51.100.1"),  # another address
    ])
    incident = agencies.incident("hanoi")
    run = agencies.runner().start(incident, load_playbook_text(QUERY), NOW)
    assert run.state is RunState.DONE
    output = run.step("related").output
    assert output["count"] == 6 and output["found"] is True
    assert output["event_ids"] == [ssh_failure("hanoi", n, minutes=-60).id for n in range(3)]  # oldest first
    assert output["fields"] == {"source.address": ADDRESS}
    assert output["window"] == {"start": (T0 - timedelta(hours=2)).isoformat(),
                                "end": (T0 + timedelta(minutes=30)).isoformat()}
    assert run.step("say-new").state is StepState.SKIPPED
    [comment] = agencies.incidents.comments(ALL, incident.id)
    assert comment.text == f"6 events from {ADDRESS}."


def test_a_query_that_finds_nothing_takes_the_other_branch(agencies: Agencies) -> None:
    agencies.events.write([ssh_failure("danang", 1)])
    run = agencies.runner().start(agencies.incident("hanoi"), load_playbook_text(QUERY), NOW)
    assert run.step("related").output["count"] == 0 and run.step("related").output["event_ids"] == []
    assert run.step("say-new").state is StepState.DONE and run.step("say-seen").state is StepState.DONE


RULE = """\
title: SSH login failure (test)
id: 5d0c1b52-4f0e-4c39-9a57-0c5a8f4f0a11
status: test
logsource: {product: linux, service: auth}
detection:
  selection: {event.outcome: failure, process.name: sshd}
  condition: selection
level: low
"""


def test_a_query_by_sigma_rule_hunts_the_stores_events(agencies: Agencies, tmp_path: Path) -> None:
    (tmp_path / "rule.yml").write_text(RULE, encoding="utf-8")
    agencies.rules, errors = load_rules([tmp_path / "rule.yml"])
    assert errors == []
    rule_id = "5d0c1b52-4f0e-4c39-9a57-0c5a8f4f0a11"
    agencies.events.write([*[ssh_failure("hanoi", n) for n in range(4)], ssh_failure("danang", 7),
                           make_event("hanoi", 8, message="a login that worked", event__dataset="system.auth",
                                      event__category=["authentication"], event__outcome="success",
                                      process__name="sshd")])
    playbook = load_playbook_text(f"""\
id: by-rule
name: By rule
steps:
  - {{id: failures, type: query, rule: {rule_id}, before: 1h, limit: 2}}
""")
    run = agencies.runner().start(agencies.incident("hanoi"), playbook, NOW, dry_run=True)  # read-only: runs
    output = run.step("failures").output
    assert output["count"] == 4 and output["rule"] == rule_id
    assert output["event_ids"] == [ssh_failure("hanoi", n).id for n in range(2)]


def test_a_query_of_an_unknown_rule_or_field_fails_the_step_with_the_reason(agencies: Agencies) -> None:
    agencies.rules, _ = load_rules([builtin_rules_dir()])
    incident = agencies.incident("hanoi")
    cases = [("{id: q, type: query, rule: no-such-rule}", "no Sigma rule 'no-such-rule' is loaded"),
             ("{id: q, type: query, fields: [user.name]}",
              "the incident's entity has no field user.name (it has: source.address)")]
    for n, (step, reason) in enumerate(cases):
        playbook = load_playbook_text(f"id: bad-{n}\nname: Bad\nsteps:\n  - {step}\n")
        run = agencies.runner().start(incident, playbook, NOW)
        assert run.state is RunState.FAILED and run.step("q").error == reason


def publish(agencies: Agencies, publisher: str, kind: IndicatorType, value: str, tlp: Tlp,
            **fields: object) -> str:
    indicator = make_indicator(ImportOptions(publisher=publisher, source="test"), kind, value, tlp=tlp, **fields)
    agencies.intel.publish([indicator])
    return indicator.id


def test_enrich_looks_the_entity_up_in_the_indicator_store_as_its_tenant_may_see_it(agencies: Agencies) -> None:
    seen = {
        publish(agencies, "national", IndicatorType.IPV4, ADDRESS, Tlp.AMBER),  # from above: shared down
        publish(agencies, "hue", IndicatorType.IPV4, ADDRESS, Tlp.CLEAR),
        publish(agencies, "danang", IndicatorType.DOMAIN, "evil.example", Tlp.GREEN),  # a parent domain
        publish(agencies, "hue", IndicatorType.SHA256, "AB" * 32, Tlp.RED, recipients=("hanoi",)),
    }
    hidden = {
        publish(agencies, "danang", IndicatorType.IPV4, ADDRESS, Tlp.AMBER),  # a sibling's AMBER
        publish(agencies, "danang", IndicatorType.SHA256, "ab" * 32, Tlp.RED, recipients=("hue",)),
        publish(agencies, "national", IndicatorType.IPV4, "198.51.100.1", Tlp.CLEAR),  # another value
    }
    incident = agencies.incident("hanoi", entity={"source.address": ADDRESS, "dns.question.name": "c2.evil.example",
                                                  "file.hash.sha256": "ab" * 32, "user.name": "lan"})
    playbook = load_playbook_text("""\
id: intel
name: Intel
steps:
  - {id: facts, type: enrich, sources: [incident, intel]}
  - {id: known, type: branch, on_step: facts, key: intel_found, equals: true, then: tell}
  - {id: unknown, type: comment, text: "nothing known"}
  - {id: tell, type: comment, text: "${steps.facts.intel_count} indicator(s)"}
""")
    run = agencies.runner().start(incident, playbook, NOW)
    output = run.step("facts").output
    assert {i["id"] for i in output["intel"]} == seen and not seen & hidden
    assert output["intel_count"] == 4 and output["severity"] == "high"
    by_value = {i["value"]: i["matched"] for i in output["intel"]}
    assert by_value == {ADDRESS: "source.address", "evil.example": "dns.question.name",
                        "ab" * 32: "file.hash.sha256"}
    assert run.step("unknown").state is StepState.SKIPPED
    # The same incident's entity at danang sees danang's AMBER and not hanoi's RED.
    at_danang = agencies.incident("danang", entity={"source.address": ADDRESS, "file.hash.sha256": "ab" * 32})
    danang = agencies.runner().start(at_danang, playbook, NOW).step("facts").output
    assert {i["publisher"] + ":" + i["tlp"] for i in danang["intel"]} == {"national:amber", "hue:clear",
                                                                          "danang:amber", "danang:red"}


def test_enrich_of_an_intel_incident_names_its_indicator(agencies: Agencies) -> None:
    indicator_id = publish(agencies, "national", IndicatorType.IPV4, ADDRESS, Tlp.GREEN)
    incident = agencies.incident("hue", rule_id=f"intel:{indicator_id}", entity={"destination.ip": ADDRESS})
    playbook = load_playbook_text("id: i\nname: I\nsteps:\n  - {id: facts, type: enrich, sources: [intel]}\n")
    output = agencies.runner().start(incident, playbook, NOW).step("facts").output
    assert [(i["id"], i["matched"]) for i in output["intel"]] == [(indicator_id, "rule")]

