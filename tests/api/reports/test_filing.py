"""Filing an initial report, a follow-up and the final report through the API; who sees them."""

from __future__ import annotations

import copy
import re
from datetime import timedelta
from typing import Any

import pytest

from api.demo.reports import demo_report_body
from config.tenants import TenantScope
from pipeline.records import Incident, IncidentState, Severity
from tests.api.reports.conftest import NOW, TREE, ReportsApi

REPORTS = "/api/v1/reports"


def follow_up_body() -> dict[str, Any]:
    return {"reported_at": (NOW + timedelta(hours=2)).isoformat(), "current_status": "in_progress",
            "update": "Đã xác định mẫu mã độc; đang khôi phục hộp thư từ bản sao lưu.",
            "actions_taken": "Cô lập máy chủ, đổi mật khẩu quản trị.", "help_requested": ["malware_analysis"]}


def final_body(reference: str) -> dict[str, Any]:
    reporter = demo_report_body(NOW)["reporter"]
    return {
        "initial_reference": reference, "initial_date": "2026-11-23", "reporter": reporter,
        "handling": "Cô lập máy chủ, gỡ mã độc, vá lỗ hổng dịch vụ thư.",
        "resolution": "Khôi phục toàn bộ hộp thư từ bản sao lưu ngày 22/11/2026.",
        "resolved_at": (NOW + timedelta(days=1)).isoformat(), "damage": "Gián đoạn thư điện tử 26 giờ.",
        "proposals": "Triển khai xác thực đa yếu tố cho thư điện tử.",
        "attachments": [{"name": "mail-server-logs.txt", "kind": "logs", "content": "Nov 23 07:40 locked"},
                        {"name": "phuong-an-ung-cuu.txt", "kind": "response_plan", "content": "Bước 1: cô lập"}],
        "reported_at": (NOW + timedelta(days=1, hours=1)).isoformat(),
    }


def file_initial(api: ReportsApi, user: str = "reporter-byt") -> dict[str, Any]:
    answer = api.post(REPORTS, user, demo_report_body(NOW))
    assert answer.status_code == 201, answer.text
    ack: dict[str, Any] = answer.json()
    return ack


def test_an_agency_files_a_report_a_follow_up_and_the_final_report(api: ReportsApi) -> None:
    ack = file_initial(api)
    assert re.fullmatch(r"BC-2026-\d{6}", ack["reference"])
    assert ack["version"] == 1 and ack["tenant"] == "byt"
    assert ack["acknowledged_by"] == "Trung tâm giám sát quốc gia"
    assert ack["reference"] in ack["message_vi"] and "đã nhận báo cáo ban đầu sự cố" in ack["message_vi"]
    reference = ack["reference"]

    up = api.post(f"{REPORTS}/{reference}/follow-ups", "reporter-byt", follow_up_body())
    assert up.status_code == 201, up.text
    assert up.json()["version"] == 2 and up.json()["kind"] == "follow_up"
    final = api.post(f"{REPORTS}/{reference}/final", "reporter-byt", final_body(reference))
    assert final.status_code == 201, final.text
    assert final.json()["version"] == 3 and final.json()["incident_id"] == ack["incident_id"]

    late = api.post(f"{REPORTS}/{reference}/follow-ups", "reporter-byt", follow_up_body())
    assert late.status_code == 409


def test_the_report_creates_an_incident_of_the_reporters_tenant(api: ReportsApi) -> None:
    ack = file_initial(api)
    incident = api.incidents.incident(TREE.scope("byt"), ack["incident_id"])
    assert incident is not None
    assert incident.tenant == "byt" and incident.state == IncidentState.NEW
    assert incident.severity == Severity.HIGH  # security level 3
    assert incident.reported == NOW and incident.clocks_met == {"acknowledge-report": NOW}
    assert incident.entity == {"report.reference": ack["reference"]}


def test_the_national_coordinator_sees_it_and_a_sibling_agency_does_not(api: ReportsApi) -> None:
    ack = file_initial(api)
    reference = ack["reference"]
    api.post(f"{REPORTS}/{reference}/follow-ups", "reporter-byt", follow_up_body())

    seen = api.get(f"{REPORTS}/{reference}", "coordinator")
    assert seen.status_code == 200
    assert [v["kind"] for v in seen.json()["history"]] == ["initial", "follow_up"]
    assert seen.json()["history"][0]["body"]["system"]["public_addresses"] == ["192.0.2.31"]
    assert api.get(REPORTS, "coordinator").json()["total"] == 1
    assert api.get(REPORTS, "auditor").json()["total"] == 1

    assert api.get(f"{REPORTS}/{reference}", "reporter-btc").status_code == 404
    assert api.get(f"{REPORTS}/BC-2026-999999", "reporter-btc").status_code == 404  # the same answer
    assert api.get(REPORTS, "reporter-btc").json() == {"reports": [], "total": 0}
    assert api.post(f"{REPORTS}/{reference}/follow-ups", "reporter-btc", follow_up_body()).status_code == 404
    assert api.get(f"/api/v1/incidents/{ack['incident_id']}/report", "reporter-btc").status_code == 404


def test_the_audit_trail_shows_each_step(api: ReportsApi) -> None:
    ack = file_initial(api)
    reference = ack["reference"]
    api.post(f"{REPORTS}/{reference}/follow-ups", "analyst-byt", follow_up_body())
    api.post(f"{REPORTS}/{reference}/final", "reporter-byt", final_body(reference))

    trail = api.incidents.audit_trail(TenantScope.everything(), object_id=reference)
    steps = [(r.action, r.actor, r.details["version"]) for r in reversed(trail)]
    assert steps == [("report.initial_filed", "reporter-byt", 1), ("report.follow_up_filed", "analyst-byt", 2),
                     ("report.final_filed", "reporter-byt", 3)]
    assert all(r.tenant == "byt" for r in trail)
    on_incident = api.incidents.audit_trail(TenantScope.everything(), object_id=ack["incident_id"])
    assert [r.action for r in on_incident] == ["incident.created_from_report"]
    assert api.incidents.verify_audit().ok


@pytest.mark.parametrize(("path", "value"), [
    ((), "colour"), (("system",), "owner"), (("reporter", "contact"), "fax"), (("incident",), "severity"),
])
def test_unknown_fields_are_refused_with_the_field_named(api: ReportsApi, path: tuple[str, ...], value: str) -> None:
    body = demo_report_body(NOW)
    node = body
    for key in path:
        node = node[key]
    node[value] = "x"
    answer = api.post(REPORTS, "reporter-byt", body)
    assert answer.status_code == 422
    assert ["body", *path, value] in [e["loc"] for e in answer.json()["detail"]]
    assert api.get(REPORTS, "coordinator").json()["total"] == 0


@pytest.mark.parametrize(("path", "value", "loc"), [
    (("incident", "kind"), "alien", ["body", "incident", "kind"]),
    (("incident", "reported_to"), ["owner_agency", "mayor"], ["body", "incident", "reported_to", "1"]),
    (("help_requested",), ["pizza"], ["body", "help_requested", "0"]),
    (("system", "public_addresses"), ["192.0.2.31", "not-an-ip"], ["body", "system", "public_addresses"]),
    (("system", "security_level"), 6, ["body", "system", "security_level"]),
    (("incident", "detected_at"), "2026-11-23T07:40:00", ["body", "incident", "detected_at"]),
])
def test_invalid_values_are_refused_with_the_field_named(api: ReportsApi, path: tuple[str, ...], value: Any,
                                                         loc: list[str]) -> None:
    body = copy.deepcopy(demo_report_body(NOW))
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    answer = api.post(REPORTS, "reporter-byt", body)
    assert answer.status_code == 422, answer.text
    assert loc in [[str(part) for part in e["loc"]] for e in answer.json()["detail"]]


def test_a_final_report_on_another_reference_is_refused(api: ReportsApi) -> None:
    reference = file_initial(api)["reference"]
    body = final_body(reference) | {"initial_reference": "BC-2026-000777", "initial_date": "2026-01-01"}
    answer = api.post(f"{REPORTS}/{reference}/final", "reporter-byt", body)
    assert answer.status_code == 422
    assert {tuple(e["loc"]) for e in answer.json()["detail"]} == {("body", "initial_reference"),
                                                                   ("body", "initial_date")}


def test_roles_that_may_not_file_are_refused_before_any_lookup(api: ReportsApi) -> None:
    assert api.post(REPORTS, "auditor", demo_report_body(NOW)).status_code == 403
    assert api.post(f"{REPORTS}/BC-2026-000001/final", "sensor-byt", {}).status_code == 403
    assert api.get(REPORTS, "sensor-byt").status_code == 403
    assert api.client.get(REPORTS).status_code == 401
    assert api.client.post(REPORTS, json=demo_report_body(NOW)).status_code == 401


def test_a_report_links_an_incident_the_reporter_sees(api: ReportsApi) -> None:
    def incident(tenant: str) -> Incident:
        found = Incident(id=("a" if tenant == "byt" else "b") * 32, tenant=tenant, title="SSH brute force",
                         severity=Severity.HIGH, state=IncidentState.TRIAGE, rule_id="rule-1",
                         entity={"source.address": "203.0.113.77"}, first_seen=NOW - timedelta(hours=5),
                         last_seen=NOW - timedelta(hours=4), alert_count=3, created=NOW - timedelta(hours=5),
                         updated=NOW - timedelta(hours=4))
        api.incidents.save_incident(found, [])
        return found

    own, sibling = incident("byt"), incident("btc")
    ack = api.post(REPORTS, "analyst-byt", demo_report_body(NOW) | {"incident_id": own.id}).json()
    assert ack["incident_id"] == own.id
    linked = api.incidents.incident(TREE.scope("byt"), own.id)
    assert linked is not None and linked.reported == NOW and linked.state == IncidentState.TRIAGE
    refused = api.post(REPORTS, "analyst-byt", demo_report_body(NOW) | {"incident_id": sibling.id})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "incident_id"]


def test_references_count_up_and_lists_page(api: ReportsApi) -> None:
    refs = [file_initial(api, user)["reference"] for user in ("reporter-byt", "reporter-btc", "reporter-byt")]
    assert refs == ["BC-2026-000001", "BC-2026-000002", "BC-2026-000003"]
    first = api.get(REPORTS, "coordinator", limit=2).json()
    second = api.get(REPORTS, "coordinator", limit=2, offset=2).json()
    assert first["total"] == second["total"] == 3
    assert len(first["reports"]) == 2 and len(second["reports"]) == 1
    assert {r["reference"] for r in first["reports"] + second["reports"]} == set(refs)
    assert api.get(REPORTS, "reporter-byt").json()["total"] == 2


def test_the_form_schema_is_published_in_openapi(api: ReportsApi) -> None:
    doc = api.client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert schemas["InitialReport"]["additionalProperties"] is False
    assert {"reporter", "operating_unit", "system", "incident", "is_confidential", "help_requested",
            "reported_at"} <= set(schemas["InitialReport"]["properties"])
    assert schemas["AffectedSystem"]["properties"]["security_level"]["maximum"] == 5
    assert {"/api/v1/reports", "/api/v1/reports/{reference}/follow-ups", "/api/v1/reports/{reference}/final",
            "/api/v1/reports/period", "/api/v1/incidents/{incident_id}/report"} <= set(doc["paths"])
