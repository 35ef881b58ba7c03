"""The documents: form 03 as PDF holding every field (pdftotext) in fonts with Vietnamese
diacritics, the English version, the final report, a prefilled report, the period statistics."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from api.demo.reports import demo_report_body
from pipeline.records import Incident, IncidentState, Severity
from tests.api.reports.conftest import NOW, ReportsApi
from tests.api.reports.test_filing import final_body

needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                   reason="pdftotext (Debian's poppler-utils) is not installed")


def text_of(pdf: bytes, tmp_path: Path) -> str:
    """The PDF's text with every run of whitespace made one space (table cells wrap lines)."""
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True).stdout
    return re.sub(r"\s+", " ", out.decode("utf-8"))


def flat(value: str) -> str:
    return re.sub(r"\s+", " ", value)


def file_demo_report(api: ReportsApi) -> dict[str, Any]:
    answer = api.post("/api/v1/reports", "reporter-byt", demo_report_body(NOW))
    assert answer.status_code == 201, answer.text
    ack: dict[str, Any] = answer.json()
    return ack


def document(api: ReportsApi, incident_id: str, **params: str) -> Any:
    answer = api.get(f"/api/v1/incidents/{incident_id}/report", "coordinator", **params)
    assert answer.status_code == 200, answer.text
    return answer


INITIAL_LABELS_VI = [
    "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "BÁO CÁO BAN ĐẦU SỰ CỐ AN TOÀN THÔNG TIN MẠNG",
    "Mẫu số 03, Thông tư số 20/2017/TT-BTTTT", "Số hiệu báo cáo",
    "1. Thông tin về đơn vị báo cáo sự cố", "Tên cơ quan, đơn vị", "Địa chỉ", "Điện thoại", "Thư điện tử",
    "Người liên hệ", "Họ và tên", "Chức vụ",
    "2. Thông tin về đơn vị vận hành hệ thống thông tin", "Tên đơn vị vận hành hệ thống thông tin",
    "Cơ quan chủ quản hệ thống thông tin",
    "3. Thông tin về hệ thống thông tin bị sự cố", "Tên hệ thống thông tin", "Tên miền", "Địa chỉ IP công khai",
    "Cấp độ hệ thống thông tin (1–5)", "Đơn vị cung cấp dịch vụ bảo đảm an toàn thông tin",
    "Đơn vị cung cấp dịch vụ kết nối (ISP)", "Hệ điều hành", "Các dịch vụ có trên hệ thống",
    "Các biện pháp bảo đảm an toàn thông tin đã triển khai", "Mục đích sử dụng của hệ thống",
    "4. Thông tin về sự cố", "Tên sự cố", "Loại sự cố", "Mô tả sơ bộ về sự cố", "Ngày, giờ phát hiện sự cố",
    "Tình trạng hiện tại", "Cách thức phát hiện", "Đã thông báo sự cố cho",
    "5. Thông tin khác", "Thông tin cần bảo mật", "Đề nghị hỗ trợ", "Thời gian báo cáo sự cố",
    "NGƯỜI BÁO CÁO",
]


def expected_values_vi(body: dict[str, Any], reference: str) -> list[str]:
    """Every value of the demo form, as the document prints it."""
    r, u, s, i = body["reporter"], body["operating_unit"], body["system"], body["incident"]
    return [
        reference, r["name"], r["address"], r["phone"], r["email"], *r["contact"].values(),
        u["name"], u["address"], u["phone"], u["email"], u["owner_agency"],
        s["name"], ", ".join(s["domains"]), *s["public_addresses"], "☒ Cấp độ 3", s["security_provider"],
        s["connectivity_provider"], ", ".join(s["operating_systems"]), "☒ Web", "☒ Thư điện tử",
        "☒ Tường lửa", "☒ Phòng chống mã độc", "☒ Sao lưu dữ liệu", "☐ Mã hóa", s["purpose"],
        i["title"], "☒ Tấn công bằng mã độc", flat(i["description"]), "23/11/2026 07:40", "☒ Đang xử lý",
        "☐ Đã khắc phục", "☒ Người dùng phát hiện và thông báo", "☒ Cơ quan chủ quản hệ thống thông tin",
        "☒ Có", "☒ Hỗ trợ ứng cứu trực tiếp tại chỗ", "☒ Phân tích mã độc",
        "☐ Điều phối ứng cứu sự cố", body["help_details"], "23/11/2026 10:30", "THÔNG TIN CẦN BẢO MẬT",
    ]


@needs_poppler
def test_the_initial_report_pdf_holds_every_field_of_the_form(api: ReportsApi, tmp_path: Path) -> None:
    ack = file_demo_report(api)
    answer = document(api, ack["incident_id"], format="pdf", lang="vi")
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.content.startswith(b"%PDF")
    text = text_of(answer.content, tmp_path)
    missing = [item for item in INITIAL_LABELS_VI + expected_values_vi(demo_report_body(NOW), ack["reference"])
               if item not in text]
    assert missing == []
    assert ack["incident_id"] in text


@needs_poppler
def test_the_pdf_embeds_fonts_with_vietnamese_glyphs_and_renders_page_one(api: ReportsApi, tmp_path: Path) -> None:
    ack = file_demo_report(api)
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(document(api, ack["incident_id"], format="pdf").content)
    fonts = subprocess.run(["pdffonts", str(pdf)], check=True, capture_output=True, text=True).stdout
    assert "DejaVu-Sans" in fonts
    assert all(" yes yes yes " in line for line in fonts.splitlines()[2:]), fonts  # embedded, subset, unicode
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile", str(pdf),
                    str(tmp_path / "page1")], check=True)
    assert (tmp_path / "page1.png").read_bytes().startswith(b"\x89PNG")


@needs_poppler
def test_the_english_version_and_the_final_report(api: ReportsApi, tmp_path: Path) -> None:
    ack = file_demo_report(api)
    reference = ack["reference"]
    assert api.post(f"/api/v1/reports/{reference}/final", "reporter-byt", final_body(reference)).status_code == 201
    english = text_of(document(api, ack["incident_id"], format="pdf", lang="en").content, tmp_path)
    for item in ("INITIAL NETWORK INFORMATION SECURITY INCIDENT REPORT", "Form 03, Circular 20/2017/TT-BTTTT",
                 "Owner (governing agency) of the information system", "☒ Malware attack", "☒ Yes",
                 "Bộ Y tế", reference):
        assert item in english
    final = text_of(document(api, ack["incident_id"], format="pdf", kind="final").content, tmp_path)
    body = final_body(reference)
    for item in ("BÁO CÁO KẾT THÚC ỨNG CỨU SỰ CỐ AN TOÀN THÔNG TIN MẠNG", "Số hiệu báo cáo ban đầu", reference,
                 "Ngày báo cáo ban đầu", "23/11/2026", body["handling"], body["resolution"], body["proposals"],
                 body["damage"], "mail-server-logs.txt", "Nhật ký (log)", "phuong-an-ung-cuu.txt",
                 "Phương án ứng cứu sự cố", "24/11/2026 10:30"):
        assert flat(item) in final, item


def test_a_final_document_before_the_final_report_answers_404(api: ReportsApi) -> None:
    ack = file_demo_report(api)
    answer = api.get(f"/api/v1/incidents/{ack['incident_id']}/report", "coordinator", kind="final")
    assert answer.status_code == 404


def test_an_incident_nobody_reported_prints_a_prefilled_form(api: ReportsApi) -> None:
    incident = Incident(id="c" * 32, tenant="byt", title="Đăng nhập SSH dò mật khẩu", severity=Severity.HIGH,
                        state=IncidentState.IN_PROGRESS, rule_id="rule-1", entity={"source.address": "203.0.113.77"},
                        first_seen=NOW - timedelta(hours=3), last_seen=NOW, alert_count=4, created=NOW, updated=NOW,
                        asset_id="byt-mail")
    api.incidents.save_incident(incident, [])
    html = document(api, incident.id, format="html").text
    for item in ("Máy chủ thư điện tử", "mail.moh.example", "192.0.2.31", "☒ Cấp độ 3", "Bộ Y tế",
                 "Trung tâm giám sát quốc gia", "☒ Đang xử lý", "☒ Qua hệ thống giám sát an toàn thông tin (SOC)",
                 "23/11/2026 07:30"):
        assert item in html, item


def test_values_are_escaped_in_the_html(api: ReportsApi) -> None:
    body = demo_report_body(NOW)
    body["incident"]["description"] = "<script>alert(1)</script> & co"
    ack = api.post("/api/v1/reports", "reporter-byt", body).json()
    html = document(api, ack["incident_id"], format="html").text
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html


@needs_poppler
def test_period_statistics_of_a_subtree(api: ReportsApi, tmp_path: Path) -> None:
    file_demo_report(api)
    api.post("/api/v1/reports", "reporter-btc", demo_report_body(NOW))
    params = {"from": "2026-07-01", "to": "2026-12-31"}
    national = api.get("/api/v1/reports/period", "coordinator", format="pdf", **params)
    assert national.status_code == 200 and national.headers["content-type"] == "application/pdf"
    text = text_of(national.content, tmp_path)
    for item in ("BÁO CÁO ĐỊNH KỲ 6 THÁNG VỀ SỰ CỐ AN TOÀN THÔNG TIN MẠNG", "từ 01/07/2026 đến 31/12/2026",
                 "Tổng số sự cố 2", "Báo cáo của cơ quan, đơn vị 2", "cao 2", "mới 2", "Bộ Y tế 1 1 1 1 0",
                 "Bộ Tài chính 1 1 1 0 0", "Cảm biến hoạt động trong kỳ 0/1"):
        assert item in text, text
    own = api.get("/api/v1/reports/period", "reporter-byt", tenant="byt", format="html", lang="en", **params)
    assert own.status_code == 200 and "Ministry of Health" in own.text and "Bộ Tài chính" not in own.text
    assert api.get("/api/v1/reports/period", "reporter-btc", tenant="byt", **params).status_code == 404
    backwards = api.get("/api/v1/reports/period", "coordinator", **{"from": "2026-12-31", "to": "2026-07-01"})
    assert backwards.status_code == 422


def test_the_period_defaults_to_the_current_half_year_and_sensors_may_not_read_it(api: ReportsApi) -> None:
    answer = api.get("/api/v1/reports/period", "coordinator")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    assert "Bộ Y tế" in answer.text
    assert api.get("/api/v1/reports/period", "sensor-byt").status_code == 403
