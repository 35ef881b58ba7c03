"""The console in a real browser: Debian's Chromium, headless, driven by Playwright, over real HTTP.

The app (tests/api/door.py's, with the console installed and a few more incidents) is served by
uvicorn on a free loopback port in a background thread. One analyst's shift, checked after each
step: sign in, the queue, a filter, an incident, approving a pending playbook step, a comment,
the language switch, the dashboard. Screenshots of the main pages are written to docs/.

Needs `apt-get install -y chromium` and `pip install playwright` (never `playwright install`):
without them this test fails, naming what to install.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from config.settings import IncidentSettings
from detections.incidents import IncidentService
from pipeline.records import Event, Severity, utc_now
from tests.api.door import PASSWORD, TREE, Door, open_door
from tests.factories import T0, make_alert, make_event

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DOCS = Path(__file__).resolve().parents[3] / "docs"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _more_incidents(door: Door) -> None:
    """A few incidents of several rules and severities, so the queue and dashboard have something to show."""
    app = door.client.app
    assert isinstance(app, FastAPI)
    now = utc_now()
    service = IncidentService(app.state.incidents, TREE, IncidentSettings())
    cases = [("hanoi", "govsoc.windows.powershell_download", "PowerShell download cradle", Severity.HIGH,
              "10.1.2.3", 2),
             ("hanoi-bavi", "govsoc.dns.tunnelling", "DNS tunnelling", Severity.MEDIUM, "10.9.8.7", 30),
             ("hanoi", "govsoc.web.defacement", "Portal defacement", Severity.LOW, "198.51.100.20", 50)]
    for n, (tenant, rule, title, severity, address, hours) in enumerate(cases):
        at = now - timedelta(hours=hours)
        app.state.events.write([make_event(tenant, 500 + n, at=at, message=f"{title} from {address}",
                                           source__ip=address)])
        alert = make_alert(tenant, 500 + n, rule_id=rule, severity=severity, at=at, entity={"source.address": address})
        service.ingest([dataclasses.replace(alert, rule_title=title)])
    line = "Nov 23 07:00:00 portal sshd[812]: Failed password for root from 203.0.113.77 port 52144 ssh2"
    app.state.events.write([Event.from_document({  # the event the door's Hà Nội alert names
        "@timestamp": T0, "message": "Failed password for root from 203.0.113.77", "organization": {"id": "hanoi"},
        "event": {"id": "event-hanoi-0", "dataset": "system.auth", "outcome": "failure", "original": line},
        "source": {"ip": "203.0.113.77"}, "user": {"name": "root"}, "host": {"name": "portal.hanoi.example"}})])


class Server:
    def __init__(self, app: FastAPI) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="console-uvicorn", daemon=True)

    def __enter__(self) -> Server:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start within 10 s")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Door]]:
    with open_door(tmp_path_factory.mktemp("browser")) as door:
        app = door.client.app
        assert isinstance(app, FastAPI)
        _more_incidents(door)
        with Server(app) as server:
            yield server, door


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's browser with `apt-get install -y chromium`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: `pip install playwright` (never `playwright install`)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _sign_in(page: Any, server: Server) -> None:
    page.goto(server.url + "/")
    assert page.locator("html").get_attribute("lang") == "vi"
    assert page.get_by_role("heading", name="Đăng nhập").is_visible()
    assert page.evaluate("document.activeElement.id") == "name"  # the form is ready to type into
    page.screenshot(path=str(DOCS / "console-signin.png"))
    page.get_by_label("Tên đăng nhập").fill("analyst-hanoi")
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    page.wait_for_url(re.compile(r"/incidents$"))


def _queue_and_filter(page: Any) -> None:
    assert page.get_by_role("heading", name="Danh sách sự cố").is_visible()
    assert page.locator("table.queue tbody tr").count() >= 4
    assert page.locator("#select-all").count() == 1  # the one script ran under the strict CSP
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"  # keyboard: skip link comes first
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.screenshot(path=str(DOCS / "console-queue.png"), full_page=True)
    page.locator("form.filters").get_by_label("đang phân loại").check()
    page.get_by_role("button", name="Lọc", exact=True).click()
    page.wait_for_url(re.compile(r"state=triage"))
    rows = page.locator("table.queue tbody tr")
    assert rows.count() == 1 and "SSH brute force" in rows.first.inner_text()
    rows.first.get_by_role("link").click()


def _approve_and_comment(page: Any) -> None:
    assert page.get_by_text("chờ phê duyệt").first.is_visible()
    countdowns = page.locator("#h-deadlines ~ table .countdown")
    assert countdowns.count() >= 2 and page.locator(".countdown[data-live]").count() == countdowns.count()
    assert all(re.search(r"^(còn lại|quá hạn) \d+ \w+", text) for text in countdowns.all_inner_texts()), \
        countdowns.all_inner_texts()  # counted down by console.js, in the page's language
    assert "Failed password for root" in page.locator("pre.original").first.inner_text()
    page.get_by_role("button", name="Phê duyệt").click()
    assert page.get_by_role("status").inner_text() == "Đã phê duyệt bước."
    assert page.get_by_role("button", name="Phê duyệt").count() == 0
    page.get_by_label("Ghi chú mới").fill("Đã chặn địa chỉ 203.0.113.77 <b>tạm thời</b>")
    page.get_by_role("button", name="Thêm ghi chú").click()
    assert page.get_by_role("status").inner_text() == "Đã thêm ghi chú."
    assert page.locator("blockquote.comment p").first.inner_text() == "Đã chặn địa chỉ 203.0.113.77 <b>tạm thời</b>"
    page.screenshot(path=str(DOCS / "console-incident.png"), full_page=True)


def _switch_to_english(page: Any) -> None:
    page.get_by_label("Ngôn ngữ").select_option("en")
    page.get_by_role("button", name="Đổi", exact=True).click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_role("heading", name="Summary").is_visible()
    assert page.get_by_role("status").inner_text() == "Comment added."
    page.get_by_role("link", name="Dashboard").click()
    assert page.get_by_role("heading", name="Dashboard", exact=True).is_visible()
    assert page.locator("svg[role=img]").count() == 2
    page.screenshot(path=str(DOCS / "console-dashboard.png"), full_page=True)


def test_an_analysts_shift_in_the_browser(served: tuple[Server, Door], browser: Any) -> None:
    server, door = served
    context = browser.new_context(locale="vi-VN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    _sign_in(page, server)
    _queue_and_filter(page)
    page.wait_for_url(re.compile(r"/incidents/" + door.incidents["hanoi"]))
    _approve_and_comment(page)
    _switch_to_english(page)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(server.url + "/")
    page.goto(server.url + "/incidents")
    assert page.url == server.url + "/"  # signed out: back to the form
    assert errors == []  # no CSP violation, no missing file
    context.close()
