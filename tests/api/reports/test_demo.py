"""Step 5 of the demo: Bộ Y tế files its report through the API and gets a reference number, once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.demo.reports import DEMO_TENANT, DEMO_TITLE, file_demo_report
from api.reports import SqliteReportStore
from api.wiring import Runtime, build_runtime
from config.load import load_settings
from config.tenants import TenantScope
from tests.api.reports.conftest import NOW


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    built = build_runtime(load_settings(None, overrides={"data_dir": tmp_path}))
    yield built
    built.close()


def test_the_health_ministry_reports_and_the_centre_acknowledges(runtime: Runtime) -> None:
    ack = file_demo_report(runtime, NOW)
    assert re.fullmatch(r"BC-2026-\d{6}", ack.reference)
    assert ack.tenant == DEMO_TENANT and ack.acknowledged_by == "Trung tâm giám sát quốc gia"
    incident = runtime.incidents.incident(runtime.tree.scope("national"), ack.incident_id)
    assert incident is not None and incident.tenant == "byt" and DEMO_TITLE in incident.title
    trail = runtime.incidents.audit_trail(TenantScope.everything(), object_id=ack.reference)
    assert [(r.action, r.actor) for r in trail] == [("report.initial_filed", "reporter-byt")]

    again = file_demo_report(runtime, NOW)  # a second `govsoc up --demo` on the same data
    assert (again.reference, again.incident_id) == (ack.reference, ack.incident_id)
    store = SqliteReportStore.from_url(runtime.settings.store_url)
    try:
        assert store.count_reports(TenantScope.everything()) == 1
    finally:
        store.close()
