"""Hostile event fields, rule titles and comments reach every page as text, never as markup."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from pipeline.records import SensorHeartbeat, utc_now
from tests.api.console.conftest import HOSTILE, HOSTILE_RULE, Console, sign_in

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;b onmouseover=x&gt;bold&lt;/b&gt;"
RAW_MARKUP = ("<script>alert(", "<b onmouseover", "<svg onload", '"><svg')


def _assert_inert(html: str) -> None:
    for raw in RAW_MARKUP:
        assert raw not in html
    assert html.count("<script") == 1  # the console's own /static/console.js, nothing else


@pytest.mark.parametrize(("path", "params", "expect_escaped"), [
    ("/incidents", {}, True),
    ("/incidents", {"rule": HOSTILE_RULE, "assignee": HOSTILE}, True),
    ("/events", {}, True),
    ("/events", {"q": "login", "field": f"user.name:{HOSTILE}"}, True),
    ("/dashboard", {}, False),
    ("/sensors", {}, False),
    ("/rules", {}, False),
])
def test_every_page_escapes_hostile_evidence(console: Console, path: str, params: dict[str, str],
                                             expect_escaped: bool) -> None:
    sign_in(console.client, "analyst-national")
    html = console.client.get(path, params=params).text
    _assert_inert(html)
    if expect_escaped:
        assert ESCAPED in html


def test_the_incident_page_escapes_every_hostile_field(console: Console) -> None:
    sign_in(console.client, "analyst-hanoi")
    html = console.client.get(f"/incidents/{console.hostile_incident}").text
    _assert_inert(html)
    assert f"sshd: {ESCAPED}" in html  # the original line
    assert f"note {ESCAPED}" in html  # the comment
    assert f"Rule {ESCAPED}" in html  # the rule title
    assert "govsoc.test.&#34;&gt;&lt;svg onload=alert(2)&gt;" in html  # the rule id


def test_the_dashboard_escapes_a_hostile_rule_id(console: Console) -> None:
    sign_in(console.client, "analyst-hanoi")
    html = console.client.get("/dashboard").text
    _assert_inert(html)
    assert "govsoc.test.&#34;&gt;&lt;svg onload=alert(2)&gt;" in html


def test_the_sensors_page_escapes_a_hostile_heartbeat(console: Console) -> None:
    from config.settings import SensorConfig, TenantConfig, TenantKind
    from config.tenants import TenantTree
    app = console.client.app
    assert isinstance(app, FastAPI)
    tree = TenantTree.from_config([
        TenantConfig(id="national", name="Trung tâm quốc gia", kind=TenantKind.NATIONAL),
        TenantConfig(id="hanoi", name="Hà Nội", parent="national", sensors=(SensorConfig(id="edge-1", kind="log"),)),
        TenantConfig(id="hanoi-bavi", name="Ba Vì", parent="hanoi"),
        TenantConfig(id="danang", name="Đà Nẵng", parent="national"),
    ])
    app.state.tree = tree
    app.state.sensors.record_heartbeats([SensorHeartbeat(timestamp=utc_now(), tenant="hanoi", sensor="edge-1",
                                                         version=HOSTILE, inputs=(HOSTILE,),
                                                         dropped={HOSTILE: 3})])
    sign_in(console.client, "analyst-hanoi")
    html = console.client.get("/sensors").text
    _assert_inert(html)
    assert ESCAPED in html and "edge-1" in html and "hoạt động tốt" in html


def test_the_error_page_escapes_the_path(console: Console) -> None:
    sign_in(console.client, "analyst-hanoi")
    answer = console.client.get("/incidents/%3Cscript%3Ealert(1)%3Cb%20onmouseover=x%3E")
    assert answer.status_code == 404
    html = answer.text
    _assert_inert(html)
