"""Every console page: who may see it, what it shows, and that tenants stay apart."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from config.settings import Role
from pipeline.store.registry import open_event_store, open_incident_store
from tests.api.console.conftest import Console, sign_in
from tests.api.door import API, PASSWORD, TREE

PAGES = ["/incidents", "/events", "/dashboard", "/sensors", "/rules"]


@pytest.mark.parametrize("path", [*PAGES, "/incidents/anything"])
def test_a_page_without_a_session_answers_303_to_the_sign_in_form(console: Console, path: str) -> None:
    answer = console.client.get(path, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"


def test_a_bearer_key_does_not_open_pages(console: Console) -> None:
    answer = console.client.get("/incidents", headers=console.door.headers("hanoi", Role.ANALYST),
                                follow_redirects=False)
    assert answer.status_code == 303


def test_the_sign_in_form_is_vietnamese_by_default_and_follows_accept_language(console: Console) -> None:
    vi = console.client.get("/")
    assert vi.status_code == 200 and '<html lang="vi">' in vi.text
    assert "Đăng nhập" in vi.text and "Tên đăng nhập" in vi.text and "Mật khẩu" in vi.text
    en = console.client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9,vi;q=0.5"})
    assert '<html lang="en">' in en.text and "User name" in en.text
    assert '<label for="name">' in en.text and '<label for="password">' in en.text
    assert "/static/console.css" in vi.text and "<style" not in vi.text and "style=" not in vi.text


def test_a_wrong_password_shows_the_form_again_with_401(console: Console) -> None:
    import re
    form = console.client.get("/")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token
    answer = console.client.post("/login", data={"login_token": token.group(1), "name": "analyst-hanoi",
                                                 "password": "wrong password!"})
    assert answer.status_code == 401
    assert "Sai tên đăng nhập hoặc mật khẩu." in answer.text
    assert console.client.get("/incidents", follow_redirects=False).status_code == 303


def test_sign_in_needs_the_forms_token(console: Console) -> None:
    console.client.cookies.clear()
    answer = console.client.post("/login", data={"login_token": "forged", "name": "analyst-hanoi",
                                                 "password": PASSWORD})
    assert answer.status_code == 403
    assert console.client.get("/incidents", follow_redirects=False).status_code == 303


def test_a_signed_in_visitor_at_the_root_goes_to_the_queue(console: Console) -> None:
    sign_in(console.client, "analyst-hanoi")
    answer = console.client.get("/", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/incidents"


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_for_an_analyst_with_the_strict_policy(console: Console, path: str) -> None:
    sign_in(console.client, "analyst-hanoi")
    answer = console.client.get(path)
    assert answer.status_code == 200, answer.text
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert '<html lang="vi">' in answer.text and 'href="#main"' in answer.text
    assert "analyst-hanoi" in answer.text and "Hà Nội" in answer.text
    assert "style=" not in answer.text and "<script>" not in answer.text


def test_the_queue_shows_the_callers_incidents_only(console: Console) -> None:
    sign_in(console.client, "analyst-hanoi")
    page = console.client.get("/incidents").text
    assert f'/incidents/{console.door.incidents["hanoi"]}"' in page
    assert console.door.incidents["danang"] not in page
    assert "Đà Nẵng" not in page  # not even in the tenant filter


def test_the_national_centre_sees_the_tree_and_can_narrow_it(console: Console) -> None:
    sign_in(console.client, "analyst-national")
    everything = console.client.get("/incidents").text
    assert console.door.incidents["danang"] in everything and console.door.incidents["hanoi"] in everything
    narrowed = console.client.get("/incidents", params={"tenant": "danang"}).text
    assert console.door.incidents["danang"] in narrowed and console.door.incidents["hanoi"] not in narrowed
    board = console.client.get("/dashboard").text
    assert "Đà Nẵng" in board and "Ba Vì" in board and "<svg" in board


def test_a_tenant_filter_outside_the_scope_is_ignored(console: Console) -> None:
    sign_in(console.client, "analyst-hanoi")
    page = console.client.get("/incidents", params={"tenant": "danang"}).text
    assert console.door.incidents["danang"] not in page
    assert console.door.incidents["hanoi"] in page


def test_queue_filters_sorts_and_counts(console: Console) -> None:
    sign_in(console.client, "analyst-hanoi")
    hostile, seeded = console.hostile_incident, console.door.incidents["hanoi"]
    critical = console.client.get("/incidents", params={"severity": "critical"}).text
    assert hostile in critical and seeded in critical  # both critical (the seeded asset is level 4)
    triage = console.client.get("/incidents", params={"state": "triage"}).text  # the playbook triaged it
    assert seeded in triage and hostile not in triage
    new = console.client.get("/incidents", params=[("state", "new"), ("state", "contained")]).text
    assert hostile in new and seeded not in new
    by_rule = console.client.get("/incidents", params={"rule": "govsoc.linux.ssh_brute_force"}).text
    assert seeded in by_rule and hostile not in by_rule
    nobody = console.client.get("/incidents", params={"assignee": "nobody-here"}).text
    assert "Không có sự cố phù hợp." in nobody
    ordered = console.client.get("/incidents", params={"sort": "deadline", "period": "30d"}).text
    assert hostile in ordered
    assert "mới <strong>" not in ordered  # counts are rendered as labelled badges
    assert 'class="state st-new">mới</span> <strong>' in ordered
    assert "còn lại" in ordered or "quá hạn" in ordered  # SLA badges


def test_the_incident_page_shows_the_evidence(console: Console) -> None:
    sign_in(console.client, "analyst-hanoi")
    page = console.client.get(f"/incidents/{console.hostile_incident}").text
    for heading in ("Tóm tắt", "Diễn biến", "Sự kiện", "Kỹ thuật ATT&CK", "Sự cố liên quan", "Ghi chú",
                    "Thay đổi trạng thái", "Nhật ký kiểm toán", "Thời hạn"):
        assert heading in page
    assert "T1059.001" in page and "203.0.113.99" in page and "Dòng nhật ký gốc" in page
    assert f"/api/v1/incidents/{console.hostile_incident}/report?format=pdf" in page


def test_the_incident_page_shows_playbook_runs_with_pending_steps(console: Console) -> None:
    sign_in(console.client, "analyst-hanoi")
    run_id, step_id = console.door.runs["hanoi"]
    page = console.client.get(f"/incidents/{console.door.incidents['hanoi']}").text
    assert f"/runs/{run_id}/steps/{step_id}/approve" in page and "Phê duyệt" in page and "Từ chối" in page
    assert "chờ phê duyệt" in page


def test_a_sibling_tenants_incident_answers_404(console: Console) -> None:
    sign_in(console.client, "analyst-hanoi")
    answer = console.client.get(f"/incidents/{console.door.incidents['danang']}")
    assert answer.status_code == 404
    assert "Không tìm thấy" in answer.text and "text/html" in answer.headers["content-type"]
    missing = console.client.get("/incidents/does-not-exist")
    assert missing.status_code == 404 and missing.text.replace("does-not-exist", "") == \
        answer.text.replace(console.door.incidents["danang"], "")


def test_event_search_filters_and_pivots(console: Console) -> None:
    sign_in(console.client, "analyst-hanoi")
    everything = console.client.get("/events").text
    assert "seed hanoi 0" in everything and "seed danang" not in everything
    by_field = console.client.get("/events", params={"field": "source.ip:203.0.113.99"}).text
    assert "1 sự kiện" in by_field and "seed hanoi" not in by_field
    assert "/events?field=source.ip%3A203.0.113.99" in by_field  # the pivot link of the value
    added = console.client.get("/events", params={"add_name": "source.ip", "add_value": "203.0.113.99"}).text
    assert "1 sự kiện" in added
    text = console.client.get("/events", params={"q": "seed"}).text
    assert "5 sự kiện" in text
    window = console.client.get("/events", params={"start": "2000-01-01T00:00", "end": "2000-01-02T00:00"}).text
    assert "0 sự kiện" in window
    sibling = console.client.get("/events", params={"field": "organization.id:danang"}).text
    assert "0 sự kiện" in sibling


def test_event_search_pages(console: Console) -> None:
    from tests.factories import make_event
    app = console.client.app
    assert isinstance(app, FastAPI)
    app.state.events.write([make_event("hanoi", 1000 + n, message=f"bulk {n}") for n in range(60)])
    sign_in(console.client, "analyst-hanoi")
    first = console.client.get("/events", params={"q": "bulk"}).text
    assert "Trang 1 / 2" in first and "page=2" in first
    second = console.client.get("/events", params={"q": "bulk", "page": "2"}).text
    assert "Trang 2 / 2" in second


def test_sensors_page_lists_the_fleet(console: Console) -> None:
    sign_in(console.client, "analyst-hanoi")
    page = console.client.get("/sensors").text
    assert "Tình trạng hoạt động" in page and "Tín hiệu gần nhất" in page and "Số sự kiện chờ gửi" in page


def test_rules_page_lists_loaded_rules_with_hits(console: Console) -> None:
    from tests.factories import make_alert
    app = console.client.app
    assert isinstance(app, FastAPI)
    sign_in(console.client, "analyst-hanoi")
    service, app.state.rules = app.state.rules, None  # the app without the rule service or an engine
    assert "không có quy tắc để liệt kê" in console.client.get("/rules").text
    app.state.rules = service
    cradle = "0947f518-68eb-4293-9b22-8e93bede6256"
    app.state.incidents.write_alerts([make_alert("hanoi", n, rule_id=cradle) for n in range(3)]
                                     + [make_alert("danang", 9, rule_id=cradle)])
    page = console.client.get("/rules").text
    assert "PowerShell Download Cradle" in page and "SSH Brute Force From One Source" in page
    assert f'<a href="/incidents?rule={cradle}">3</a>' in page  # Đà Nẵng's hit is not counted
    assert "Chỉ quản trị viên của trung tâm quốc gia" in page and "tương quan" in page


def test_api_errors_stay_json_beside_the_console(console: Console) -> None:
    answer = console.client.get("/api/v1/incidents/does-not-exist", headers=console.door.headers("hanoi", Role.ANALYST))
    assert answer.status_code == 404 and answer.headers["content-type"] == "application/json"
    assert console.client.get("/api/v1/incidents").status_code == 401  # the API still answers 401, not 303


def test_create_app_serves_the_console(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'govsoc.db'}"
    events, incidents = open_event_store(url), open_incident_store(url)
    app = create_app(tree=TREE, tokens=(), events_store=events, incidents_store=incidents, api_settings=API)
    with TestClient(app) as client:
        assert client.get("/incidents", follow_redirects=False).status_code == 303
        assert "Đăng nhập" in client.get("/").text
        assert client.get("/static/console.js").status_code == 200
        paths = client.get("/openapi.json").json()["paths"]
        assert not {"/", "/login", "/incidents", "/events", "/dashboard"} & set(paths)  # pages stay out of it
    events.close()
    incidents.close()
