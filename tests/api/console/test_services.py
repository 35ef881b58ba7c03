"""The dashboard's e-government services panel: up/down, response time, certificate, last change."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from api.console.services import sparkline
from config.settings import Role
from pipeline.records import Alert, DetectionKind, Severity, utc_now
from tests.api.console.conftest import Console, sign_in
from tests.api.door import PASSWORD
from tests.factories import make_event


def seed_checks(console: Console) -> None:
    app = console.client.app
    assert isinstance(app, FastAPI)
    now = utc_now()
    checks = []
    for tenant, url, n in (("hanoi", "https://portal.hanoi.example/", 0),
                           ("danang", "https://portal.danang.example/", 50)):
        for minute in range(3):
            checks.append(make_event(
                tenant, n + minute, at=now - timedelta(minutes=10 - minute), message=f"check {tenant} {minute}",
                event__dataset="service_watch", event__outcome="success" if tenant == "hanoi" else "failure",
                govsoc__watch__target=f"{tenant}-portal", govsoc__watch__ttfb_ms=40.0 + minute * 5,
                govsoc__watch__tls__days_to_expiry=42.0, url__full=url, http__response__status_code=200))
    app.state.events.write(checks)
    entity = {"url.full": "https://portal.danang.example/"}
    defaced = Alert(id=Alert.make_id("danang", "govsoc-watch-defacement", entity, checks[-1].id), tenant="danang",
                    timestamp=now - timedelta(minutes=8), kind=DetectionKind.SERVICE_WATCH,
                    rule_id="govsoc-watch-defacement", rule_title="Website defacement", severity=Severity.HIGH,
                    event_ids=(checks[-1].id,), entity=entity)
    app.state.incidents.write_alerts([defaced])


def test_the_national_centre_sees_every_service_and_a_province_its_own(console: Console) -> None:
    seed_checks(console)
    csrf = sign_in(console.client, "analyst-national")
    page = console.client.get("/dashboard").text
    assert "https://portal.hanoi.example/" in page and "https://portal.danang.example/" in page
    assert "hoạt động" in page and "gián đoạn" in page and "<polyline points=" in page and "42 ngày" in page
    console.client.post("/logout", data={"csrf_token": csrf})
    sign_in(console.client, "analyst-hanoi")
    own = console.client.get("/dashboard").text
    assert "https://portal.hanoi.example/" in own and "portal.danang.example" not in own


def test_sparkline_scales_into_the_box() -> None:
    assert sparkline([1.0]) == ""
    assert sparkline([0.0, 10.0], width=10, height=10) == "0.0,10.0 10.0,0.0"


def test_the_national_admin_disables_a_rule_from_the_console_and_others_may_not(console: Console) -> None:
    app = console.client.app
    assert isinstance(app, FastAPI)
    rule_id = next(s.info.rule_id for s in app.state.rules.summaries())
    door = console.door
    door.identity.create_user(name="admin-national", tenant="national", role=Role.ADMIN, password=PASSWORD,
                              actor="test", now=utc_now())
    csrf = sign_in(console.client, "analyst-hanoi")
    assert console.client.post(f"/rules/{rule_id}/disable", data={"csrf_token": csrf}).status_code == 403
    console.client.post("/logout", data={"csrf_token": csrf})
    csrf = sign_in(console.client, "admin-national")
    page = console.client.get("/rules").text
    assert f'action="/rules/{rule_id}/disable"' in page
    answer = console.client.post(f"/rules/{rule_id}/disable", data={"csrf_token": csrf}, follow_redirects=False)
    assert answer.status_code == 303
    assert not next(s for s in app.state.rules.summaries() if s.info.rule_id == rule_id).enabled
    assert f'action="/rules/{rule_id}/enable"' in console.client.get("/rules").text
