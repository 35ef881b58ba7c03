"""Approval chains on real stores: two different people, the tenant's and a parent tenant's
approvers, a person approving twice, and the root that has nobody above it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from config.tenants import TenantScope
from playbooks import (
    LIBRARY,
    ConnectorRegistry,
    HttpConnector,
    PlaybookError,
    RunState,
    StepState,
    load_playbook_text,
    load_playbooks,
)
from tests.factories import T0
from tests.playbooks.conftest import Agencies, Receiver

NOW = T0 + timedelta(minutes=5)
LATER = NOW + timedelta(minutes=10)
ALL = TenantScope.everything()

CHAIN = """\
id: chain
name: Chain
steps:
  - id: ask
    type: approval
    roles: [analyst, national_coordinator]
    levels: [tenant, parent]
  - id: isolate
    type: contain
    connector: http
    action: isolate_host
    target: "${incident.id}"
"""


def http(receiver: Receiver) -> ConnectorRegistry:
    return ConnectorRegistry({"http": HttpConnector(name="http", url=receiver.url, retries=0, timeout_s=2.0)})


def test_the_tenants_and_a_parents_approvers_are_both_needed(agencies: Agencies, receiver: Receiver) -> None:
    runner = agencies.runner(http(receiver))
    run = runner.start(agencies.incident("hanoi-bavi"), load_playbook_text(CHAIN), NOW)
    assert run.step("ask").output == {"roles": ["analyst", "national_coordinator"], "count": 2,
                                      "levels": ["tenant", "parent"], "approvals": []}
    run = runner.approve(run.id, "ask", "mai", "analyst", NOW, tenant="hanoi")  # hanoi is above hanoi-bavi
    with pytest.raises(PlaybookError, match="still needs an approver of hanoi-bavi, not one of 'national'"):
        runner.approve(run.id, "ask", "quang", "national_coordinator", NOW, tenant="national")
    with pytest.raises(PlaybookError, match="takes approvers of hanoi-bavi and the tenants above it, not of 'danang'"):
        runner.approve(run.id, "ask", "son", "analyst", NOW, tenant="danang")  # a sibling: never
    assert runner.run(run.id).state is RunState.WAITING_APPROVAL and receiver.requests == []
    done = runner.approve(run.id, "ask", "binh", "analyst", LATER, tenant="hanoi-bavi")
    assert done.state is RunState.DONE and len(receiver.requests) == 1
    assert done.step("ask").output == {"decision": "approved", "approvers": ["mai", "binh"],
                                       "chain": {"parent": "mai", "tenant": "binh"}}
    actions = [(a.action, a.details.get("level")) for a in agencies.incidents.audit_trail(
        ALL, run.id, limit=100) if a.action == "playbook.approval.approve"]
    assert sorted(actions) == [("playbook.approval.approve", "parent"), ("playbook.approval.approve", "tenant")]


def test_the_same_person_cannot_fill_both_links_of_the_chain(agencies: Agencies, receiver: Receiver) -> None:
    runner = agencies.runner(http(receiver))
    run = runner.start(agencies.incident("hanoi"), load_playbook_text(CHAIN), NOW)
    runner.approve(run.id, "ask", "lan", "analyst", NOW, tenant="hanoi")
    with pytest.raises(PlaybookError, match="'lan' has already decided on step 'ask'"):
        runner.approve(run.id, "ask", "lan", "national_coordinator", NOW, tenant="national")
    with pytest.raises(PlaybookError, match="still needs an approver of a tenant above hanoi, not one of 'hanoi'"):
        runner.approve(run.id, "ask", "hoa", "analyst", NOW, tenant="hanoi")  # the tenant's link is filled
    with pytest.raises(PlaybookError, match="the approver's tenant is required"):
        runner.approve(run.id, "ask", "quang", "national_coordinator", NOW)
    assert runner.run(run.id).step("ask").state is StepState.WAITING_APPROVAL and receiver.requests == []
    assert runner.approve(run.id, "ask", "quang", "national_coordinator", NOW, tenant="national").state \
        is RunState.DONE


def test_at_the_root_two_of_its_own_approvers_make_the_chain(agencies: Agencies, receiver: Receiver) -> None:
    runner = agencies.runner(http(receiver))
    run = runner.start(agencies.incident("national"), load_playbook_text(CHAIN), NOW)
    runner.approve(run.id, "ask", "quang", "national_coordinator", NOW, tenant="national")
    done = runner.approve(run.id, "ask", "thu", "analyst", NOW, tenant="national")
    assert done.state is RunState.DONE and done.step("ask").output["chain"] == {"tenant": "quang", "parent": "thu"}


def test_a_rejection_by_either_link_skips_the_side_effect(agencies: Agencies, receiver: Receiver) -> None:
    runner = agencies.runner(http(receiver))
    run = runner.start(agencies.incident("hanoi"), load_playbook_text(CHAIN), NOW)
    runner.approve(run.id, "ask", "lan", "analyst", NOW, tenant="hanoi")
    done = runner.reject(run.id, "ask", "quang", "national_coordinator", NOW, reason="a sanctioned scanner")
    assert done.state is RunState.DONE and done.step("isolate").state is StepState.SKIPPED
    assert receiver.requests == []


def test_the_shipped_malware_playbook_asks_the_agency_and_the_level_above(agencies: Agencies,
                                                                         receiver: Receiver) -> None:
    playbooks, errors = load_playbooks([LIBRARY])
    assert errors == []
    malware = next(p for p in playbooks if p.id == "malware-execution")
    incident = agencies.incident("hanoi", rule_id="malware", entity={"host.name": "ws-01"})
    runner = agencies.runner(http(receiver))
    run = runner.start(incident, malware, NOW)
    assert run.cursor == "approve-isolation"
    run = runner.approve(run.id, "approve-isolation", "lan", "analyst", NOW, tenant="hanoi")
    assert run.state is RunState.WAITING_APPROVAL
    run = runner.approve(run.id, "approve-isolation", "quang", "national_coordinator", LATER, tenant="national")
    assert run.state is RunState.DONE
    [sent] = receiver.requests
    assert sent["json"]["action"] == "isolate_host" and sent["json"]["target"] == "ws-01"

