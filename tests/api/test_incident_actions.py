"""Working an incident through the API: transition, assign, comment; roles, scope and audit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import token_sha256
from config.settings import ApiToken, IncidentSettings, Role
from detections.incidents import IncidentService
from pipeline.store.base import IncidentStore
from pipeline.store.registry import open_event_store, open_incident_store
from tests.api.conftest import TOKENS, TREE
from tests.factories import make_alert

ROLE_TOKENS = {role: f"token-{role.value}" for role in Role}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, IncidentStore]]:
    """The app with the conftest's analyst tokens plus one token of every role at national."""
    url = f"sqlite:///{tmp_path / 'govsoc.db'}"
    events, incidents = open_event_store(url), open_incident_store(url)
    tokens = tuple(ApiToken(name=f"analyst-{t}", tenant=t, role=Role.ANALYST, sha256=token_sha256(v))
                   for t, v in TOKENS.items())
    tokens += tuple(ApiToken(name=f"{role.value}-national", tenant="national", role=role, sha256=token_sha256(v))
                    for role, v in ROLE_TOKENS.items())
    with TestClient(create_app(tree=TREE, tokens=tokens, events_store=events, incidents_store=incidents)) as client:
        yield client, incidents
    events.close()
    incidents.close()


def seed(store: IncidentStore, tenant: str = "hanoi-bavi") -> str:
    [incident] = IncidentService(store, TREE, IncidentSettings()).ingest([make_alert(tenant)])
    return incident.id


def post(client: TestClient, token: str, url: str, body: dict[str, Any]) -> Any:
    return client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})


def test_an_analyst_works_an_incident_through(app: tuple[TestClient, IncidentStore]) -> None:
    client, store = app
    incident_id = seed(store)
    base, token = f"/api/v1/incidents/{incident_id}", TOKENS["hanoi"]
    assert post(client, token, f"{base}/assign", {"assignee": "tran.thi.b"}).json()["assignee"] == "tran.thi.b"
    comment = post(client, token, f"{base}/comments", {"text": "Đã chặn 203.0.113.77 trên tường lửa"})
    assert comment.status_code == 201 and comment.json()["author"] == "analyst-hanoi"
    for to in ("triage", "in_progress", "contained", "resolved", "closed"):
        answer = post(client, token, f"{base}/transition", {"to": to})
        assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == to
    detail = client.get(base, headers={"Authorization": f"Bearer {token}"}).json()
    assert detail["state"] == "closed" and detail["responded"] is not None and detail["resolved"] is not None
    assert [c["to_state"] for c in detail["state_history"]][0] == "closed"
    assert [c["text"] for c in detail["comments"]] == ["Đã chặn 203.0.113.77 trên tường lửa"]
    assert {d["id"] for d in detail["deadlines"]} >= {"sla-first-response", "sla-resolution", "initial-report"}
    actions = [r["action"] for r in detail["audit"]]
    assert actions.count("incident.transition") == 5 and "incident.assign" in actions
    assert "incident.comment" in actions and store.verify_audit().ok


def test_a_refused_transition_is_409_and_changes_nothing(app: tuple[TestClient, IncidentStore]) -> None:
    client, store = app
    incident_id = seed(store)
    answer = post(client, TOKENS["hanoi"], f"/api/v1/incidents/{incident_id}/transition", {"to": "closed"})
    assert answer.status_code == 409
    assert "from new to closed" in answer.json()["detail"]
    no_reason = post(client, TOKENS["hanoi"], f"/api/v1/incidents/{incident_id}/transition",
                     {"to": "false_positive"})
    assert no_reason.status_code == 409 and "reason" in no_reason.json()["detail"]
    assert [r.action for r in store.audit_trail(TREE.scope("national"), object_id=incident_id)] == [
        "incident.created"]


def test_every_change_is_audited_with_before_and_after(app: tuple[TestClient, IncidentStore]) -> None:
    client, store = app
    incident_id = seed(store)
    post(client, TOKENS["hanoi-bavi"], f"/api/v1/incidents/{incident_id}/transition",
         {"to": "false_positive", "reason": "máy quét của chính đơn vị"})
    [entry, _created] = store.audit_trail(TREE.scope("national"), object_id=incident_id)
    assert entry.actor == "analyst-hanoi-bavi"
    assert (entry.details["before"]["state"], entry.details["after"]["state"]) == ("new", "false_positive")
    assert entry.details["reason"] == "máy quét của chính đơn vị"


@pytest.mark.parametrize("role, allowed", [
    (Role.ANALYST, True), (Role.ADMIN, True), (Role.NATIONAL_COORDINATOR, True),
    (Role.AUDITOR, False), (Role.AGENCY_REPORTER, False), (Role.SENSOR, False),
])
def test_roles_that_may_change_incidents(app: tuple[TestClient, IncidentStore], role: Role, allowed: bool) -> None:
    client, store = app
    incident_id = seed(store)
    base, token = f"/api/v1/incidents/{incident_id}", ROLE_TOKENS[role]
    answers = [post(client, token, f"{base}/transition", {"to": "triage"}),
               post(client, token, f"{base}/assign", {"assignee": "x"}),
               post(client, token, f"{base}/comments", {"text": "x"})]
    assert [a.status_code for a in answers] == ([200, 200, 201] if allowed else [403, 403, 403])
    if not allowed:
        assert store.state_history(TREE.scope("national"), incident_id) == []


@pytest.mark.parametrize("action, body", [("transition", {"to": "triage"}), ("assign", {"assignee": "x"}),
                                          ("comments", {"text": "x"})])
def test_a_siblings_incident_is_404(app: tuple[TestClient, IncidentStore], action: str,
                                    body: dict[str, Any]) -> None:
    client, store = app
    incident_id = seed(store, "danang")
    assert post(client, TOKENS["hanoi"], f"/api/v1/incidents/{incident_id}/{action}", body).status_code == 404
    assert post(client, TOKENS["hanoi"], f"/api/v1/incidents/missing/{action}", body).status_code == 404
    assert store.incident(TREE.scope("danang"), incident_id).state.value == "new"  # type: ignore[union-attr]


def test_bodies_are_validated(app: tuple[TestClient, IncidentStore]) -> None:
    client, store = app
    incident_id = seed(store)
    base, token = f"/api/v1/incidents/{incident_id}", TOKENS["hanoi"]
    assert post(client, token, f"{base}/transition", {"to": "done"}).status_code == 422
    assert post(client, token, f"{base}/transition", {"to": "triage", "extra": 1}).status_code == 422
    assert post(client, token, f"{base}/comments", {"text": ""}).status_code == 422
    assert post(client, token, f"{base}/assign", {}).status_code == 422


def test_a_regulatory_clock_is_marked_met(app: tuple[TestClient, IncidentStore]) -> None:
    client, store = app
    incident_id = seed(store)
    base, token = f"/api/v1/incidents/{incident_id}", TOKENS["hanoi"]
    answer = post(client, token, f"{base}/clocks/initial-report/met", {})
    assert answer.status_code == 200 and "initial-report" in answer.json()["clocks_met"]
    detail = client.get(base, headers={"Authorization": f"Bearer {token}"}).json()
    [initial] = [d for d in detail["deadlines"] if d["id"] == "initial-report"]
    assert initial["status"] == "met" and initial["remaining_s"] is None
    assert post(client, token, f"{base}/clocks/nope/met", {}).status_code == 404


def test_a_suppression_is_previewed_then_saved_and_audited(app: tuple[TestClient, IncidentStore]) -> None:
    client, store = app
    now = datetime.now(UTC)
    scanner = {"source.address": "10.0.0.5"}
    store.write_alerts([make_alert("hanoi-bavi", n=n, entity=scanner, at=now - timedelta(days=1, seconds=n))
                        for n in range(3)] + [make_alert("danang", n=9, entity=scanner, at=now)])
    body = {"reason": "máy quét lỗ hổng của Sở", "entity": scanner, "expires": "2099-01-01T00:00:00Z"}
    preview = post(client, TOKENS["hanoi"], "/api/v1/suppressions", {**body, "preview": True})
    assert preview.status_code == 200
    assert (preview.json()["would_hide"], preview.json()["examined"], preview.json()["saved"]) == (3, 3, False)
    assert store.suppressions(TREE.scope("national")) == []
    saved = post(client, TOKENS["hanoi"], "/api/v1/suppressions", body)
    assert saved.status_code == 201 and saved.json()["suppression"]["tenant"] == "hanoi"
    listed = client.get("/api/v1/suppressions", headers={"Authorization": f"Bearer {TOKENS['hanoi-bavi']}"})
    assert listed.json()["suppressions"] == []  # hanoi's exception is above hanoi-bavi's scope
    listed = client.get("/api/v1/suppressions", headers={"Authorization": f"Bearer {TOKENS['hanoi']}"})
    assert [s["reason"] for s in listed.json()["suppressions"]] == ["máy quét lỗ hổng của Sở"]
    [entry] = store.audit_trail(TREE.scope("national"), object_id=saved.json()["suppression"]["id"])
    assert (entry.action, entry.actor, entry.details["would_hide"]) == ("suppression.created", "analyst-hanoi", 3)
    # from now on the service keeps such alerts out of incidents
    assert IncidentService(store, TREE, IncidentSettings()).ingest(
        [make_alert("hanoi-bavi", n=20, entity=scanner, at=now)]) == []


def test_suppressions_are_refused_outside_scope_and_without_a_target(app: tuple[TestClient,
                                                                              IncidentStore]) -> None:
    client, _ = app
    body = {"reason": "x", "rule_id": "rule-1"}
    assert post(client, TOKENS["hanoi"], "/api/v1/suppressions", {**body, "tenant": "danang"}).status_code == 404
    assert post(client, TOKENS["hanoi"], "/api/v1/suppressions", {"reason": "everything"}).status_code == 422
    assert post(client, ROLE_TOKENS[Role.AUDITOR], "/api/v1/suppressions", body).status_code == 403
