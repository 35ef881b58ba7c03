"""Step 5 of the demo: Bộ Y tế, which has no SOC of its own, reports an incident through the API with
the national initial-report form, and the national centre acknowledges it with a reference number.

The report goes through the real route (`POST /api/v1/reports`) of an in-process app, as the
agency's reporter (`reporter-byt`, role agency_reporter, tenant `byt`), into the reports store in
the runtime's data file; the incident it creates is in `byt`'s queue and the national view.

Idempotent: a data directory that already holds the demo report gets no second one; the existing
acknowledgement (version 1) is returned instead. Addresses and names are from the documentation
ranges (`192.0.2.0/24`, `.example`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import new_token, token_sha256
from api.demo.authlog import ICT
from api.reports import ReportError, ReportService, open_report_store
from api.reports.form import ReportAck
from api.routes import reports as report_routes
from api.wiring import Runtime
from config.reports import ReportSettings
from config.settings import ApiToken, Role

DEMO_TENANT = "byt"
DEMO_REPORTER = "reporter-byt"
DEMO_TITLE = "Mã độc mã hóa dữ liệu trên máy chủ thư điện tử Bộ Y tế"


def demo_report_body(now: datetime) -> dict[str, Any]:
    """Bộ Y tế's initial report (form 03) of ransomware on its mail server, found this morning."""
    local = now.astimezone(ICT)
    detected = local.replace(hour=7, minute=40, second=0, microsecond=0)
    if detected > local:
        detected -= timedelta(days=1)
    contact = {"name": "Nguyễn Thị Hương", "position": "Trưởng phòng Công nghệ thông tin",
               "phone": "+84 24 3000 0101", "email": "huong.nt@moh.example"}
    return {
        "reporter": {"name": "Bộ Y tế", "address": "Số 1 phố Ví Dụ, quận Ba Đình, Hà Nội",
                     "phone": "+84 24 3000 0100", "email": "attt@moh.example", "contact": contact},
        "operating_unit": {"name": "Cục Công nghệ thông tin, Bộ Y tế", "address": "Số 1 phố Ví Dụ, Hà Nội",
                           "phone": "+84 24 3000 0102", "email": "cntt@moh.example", "owner_agency": "Bộ Y tế"},
        "system": {
            "name": "Hệ thống thư điện tử Bộ Y tế", "domains": ["mail.moh.example", "moh.example"],
            "public_addresses": ["192.0.2.31"], "security_level": 3,
            "security_provider": "Công ty An toàn thông tin Ví Dụ", "connectivity_provider": "Nhà mạng Ví Dụ",
            "operating_systems": ["Windows Server 2019", "Ubuntu 22.04"], "services": ["email", "web"],
            "security_measures": ["firewall", "antivirus", "backup"], "purpose": "Thư điện tử công vụ của Bộ",
        },
        "incident": {
            "title": DEMO_TITLE, "kind": "malware",
            "description": "Nhiều hộp thư bị mã hóa, tệp đổi phần mở rộng thành .locked; máy chủ gửi thư rác "
                           "ra ngoài. Đã cô lập máy chủ khỏi mạng.",
            "detected_at": detected.isoformat(), "current_status": "in_progress", "detection_method": "user_report",
            "reported_to": ["owner_agency"],
        },
        "is_confidential": True, "help_requested": ["onsite_response", "malware_analysis"],
        "help_details": "Đề nghị hỗ trợ phân tích mẫu mã độc và khôi phục dữ liệu.",
        "reported_at": local.isoformat(),
    }


def _existing(service: ReportService) -> ReportAck | None:
    scope = service.tree.scope(DEMO_TENANT)
    found = next((s for s in service.store.reports(scope, limit=1000) if s.title == DEMO_TITLE), None)
    if found is None:
        return None
    return ReportAck(reference=found.reference, version=1, kind="initial", tenant=found.tenant,
                     incident_id=found.incident_id, acknowledged_at=found.created,
                     acknowledged_by=service.tree.get(service.settings.national_coordinator).name,
                     message_vi="", message_en="")


def file_demo_report(runtime: Runtime, now: datetime) -> ReportAck:
    """File Bộ Y tế's report through the API; returns the acknowledgement with its reference."""
    settings = getattr(runtime.settings, "reports", None)
    settings = settings if isinstance(settings, ReportSettings) else ReportSettings()
    store = open_report_store(runtime.settings.incidents_url, runtime.settings.data_dir)
    service = ReportService(store, runtime.incidents, runtime.tree, settings, clock=lambda: now)
    try:
        existing = _existing(service)
        if existing is not None:
            return existing
        token = new_token()  # for this one in-process request only; never written anywhere
        app = create_app(tree=runtime.tree, events_store=runtime.events, incidents_store=runtime.incidents,
                         tokens=(ApiToken(name=DEMO_REPORTER, tenant=DEMO_TENANT, role=Role.AGENCY_REPORTER,
                                          sha256=token_sha256(token)),))
        app.state.reports = service
        app.include_router(report_routes.router)
        answer = TestClient(app).post("/api/v1/reports", json=demo_report_body(now),
                                      headers={"Authorization": f"Bearer {token}"})
        if answer.status_code != 201:
            raise ReportError(f"demo report refused: HTTP {answer.status_code} {answer.text}")
        return ReportAck.model_validate(answer.json())
    finally:
        store.close()
