"""Changes made from console forms: CSRF, lifecycle, approvals, bulk, language, sign-out."""

from __future__ import annotations

from fastapi import FastAPI

from config.tenants import TenantScope
from playbooks.runs import StepState
from tests.api.console.conftest import Console, sign_in


def _app(console: Console) -> FastAPI:
    app = console.client.app
    assert isinstance(app, FastAPI)
    return app


def test_a_write_without_the_csrf_token_answers_403_and_changes_nothing(console: Console) -> None:
    sign_in(console.client, "analyst-hanoi")
    incident = console.door.incidents["hanoi"]
    answer = console.client.post(f"/incidents/{incident}/comment", data={"text": "sneaky"})
    assert answer.status_code == 403
    wrong = console.client.post(f"/incidents/{incident}/comment", data={"text": "sneaky", "csrf_token": "nope"})
    assert wrong.status_code == 403
    comments = _app(console).state.incidents.comments(TenantScope.everything(), incident)
    assert "sneaky" not in [c.text for c in comments]


def test_comment_transition_and_assign(console: Console) -> None:
    csrf = sign_in(console.client, "analyst-hanoi")
    incident = console.hostile_incident
    done = console.client.post(f"/incidents/{incident}/comment", data={"text": "checked the <b>logs</b>",
                                                                       "csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/incidents/{incident}?msg=comment_done"
    page = console.client.get(done.headers["location"]).text
    assert "Đã thêm ghi chú." in page and "checked the &lt;b&gt;logs&lt;/b&gt;" in page
    moved = console.client.post(f"/incidents/{incident}/transition", data={"to": "in_progress", "csrf_token": csrf})
    assert "Đã đổi trạng thái." in moved.text and 'class="state st-in_progress">đang xử lý' in moved.text
    refused = console.client.post(f"/incidents/{incident}/transition", data={"to": "closed", "csrf_token": csrf})
    assert "Thay đổi bị từ chối." in refused.text
    assigned = console.client.post(f"/incidents/{incident}/assign", data={"assignee": "lan", "csrf_token": csrf})
    assert "Đã đổi người xử lý." in assigned.text
    audit = _app(console).state.incidents.audit_trail(TenantScope.everything(), object_id=incident)
    assert {"incident.assign", "incident.comment", "incident.transition"} <= {r.action for r in audit}


def test_a_sibling_incident_cannot_be_changed(console: Console) -> None:
    csrf = sign_in(console.client, "analyst-hanoi")
    danang = console.door.incidents["danang"]
    answer = console.client.post(f"/incidents/{danang}/comment", data={"text": "from hanoi", "csrf_token": csrf})
    assert answer.status_code == 404
    run_id, step_id = console.door.runs["danang"]
    decided = console.client.post(f"/incidents/{danang}/runs/{run_id}/steps/{step_id}/approve",
                                  data={"csrf_token": csrf})
    assert decided.status_code == 404
    comments = _app(console).state.incidents.comments(TenantScope.everything(), danang)
    assert "from hanoi" not in [c.text for c in comments]


def test_approving_a_pending_step_continues_the_run(console: Console) -> None:
    csrf = sign_in(console.client, "analyst-hanoi")
    incident, (run_id, step_id) = console.door.incidents["hanoi"], console.door.runs["hanoi"]
    answer = console.client.post(f"/incidents/{incident}/runs/{run_id}/steps/{step_id}/approve",
                                 data={"csrf_token": csrf})
    assert answer.status_code == 200 and "Đã phê duyệt bước." in answer.text
    run = _app(console).state.playbook_runner.runs.run(run_id)
    assert run.step(step_id).state is StepState.DONE
    assert f"/runs/{run_id}/steps/{step_id}/approve" not in answer.text  # no longer pending
    again = console.client.post(f"/incidents/{incident}/runs/{run_id}/steps/{step_id}/approve",
                                data={"csrf_token": csrf})
    assert "Thay đổi bị từ chối." in again.text


def test_rejecting_a_pending_step_records_the_reason(console: Console) -> None:
    csrf = sign_in(console.client, "analyst-hanoi")
    incident, (run_id, step_id) = console.door.incidents["hanoi"], console.door.runs["hanoi"]
    answer = console.client.post(f"/incidents/{incident}/runs/{run_id}/steps/{step_id}/reject",
                                 data={"csrf_token": csrf, "reason": "wrong address"})
    assert "Đã từ chối bước." in answer.text and "wrong address" in answer.text


def test_bulk_assign_and_close_with_a_reason(console: Console) -> None:
    csrf = sign_in(console.client, "analyst-hanoi")
    ids = [console.hostile_incident, console.door.incidents["hanoi"]]
    without = console.client.post("/incidents/bulk", data={"csrf_token": csrf, "incident": ids, "action": "close"})
    assert "Hãy nhập lý do" in without.text
    assigned = console.client.post("/incidents/bulk", data={"csrf_token": csrf, "incident": ids, "action": "assign",
                                                            "assignee": "lan", "reason": "night shift"})
    assert "đã thay đổi 2 sự cố, 0 sự cố bị từ chối" in assigned.text
    closed = console.client.post("/incidents/bulk", data={"csrf_token": csrf, "incident": ids, "action": "close",
                                                          "reason": "duplicate of a known case"})
    assert "đã thay đổi 2 sự cố" in closed.text
    store = _app(console).state.incidents
    for incident_id in ids:
        incident = store.incident(TenantScope.everything(), incident_id)
        assert incident.state.value == "closed" and incident.assignee == "lan"
    sibling = console.client.post("/incidents/bulk", data={"csrf_token": csrf, "action": "false_positive",
                                                           "incident": [console.door.incidents["danang"]],
                                                           "reason": "x"})
    assert "đã thay đổi 0 sự cố, 1 sự cố bị từ chối" in sibling.text


def test_switching_language_is_stored_per_user(console: Console) -> None:
    csrf = sign_in(console.client, "analyst-hanoi")
    answer = console.client.post("/language", data={"csrf_token": csrf, "language": "en", "back": "/dashboard"},
                                 follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard"
    page = console.client.get("/dashboard").text
    assert '<html lang="en">' in page and "Mean time to acknowledge" in page
    user = console.door.identity.store.user("analyst-hanoi")
    assert user is not None and user.language == "en"
    elsewhere = console.client.post("/language", data={"csrf_token": csrf, "language": "vi",
                                                       "back": "//evil.example/"}, follow_redirects=False)
    assert elsewhere.headers["location"] == "/incidents"
    assert console.client.post("/language", data={"csrf_token": csrf, "language": "fr"}).status_code == 422


def test_sign_out_ends_the_session(console: Console) -> None:
    csrf = sign_in(console.client, "analyst-hanoi")
    cookie = console.client.cookies.get("govsoc_session")
    answer = console.client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    console.client.cookies.set("govsoc_session", cookie or "")
    assert console.client.get("/incidents", follow_redirects=False).status_code == 303


def test_roles_that_may_not_change_incidents_see_no_forms(console: Console) -> None:
    from api.identity.passwords import PasswordHasher  # noqa: F401  (the door's users use the fast hasher)
    from config.settings import Role
    from pipeline.records import utc_now
    from tests.api.door import PASSWORD
    console.door.identity.create_user(name="auditor-hanoi", tenant="hanoi", role=Role.AUDITOR, password=PASSWORD,
                                      actor="test", now=utc_now())
    csrf = sign_in(console.client, "auditor-hanoi")
    page = console.client.get(f"/incidents/{console.door.incidents['hanoi']}").text
    assert "/comment" not in page and "/approve" not in page
    answer = console.client.post(f"/incidents/{console.door.incidents['hanoi']}/comment",
                                 data={"text": "x", "csrf_token": csrf})
    assert answer.status_code == 403 and "Không được phép" in answer.text
