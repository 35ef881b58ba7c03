"""`govsoc report incident` and `govsoc report period`, run in-process on a real data directory.

The commands are invoked on `report_app` itself (the sub-app `govsoc report` mounts).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.auth import Principal
from api.cli.report import report_app
from api.demo.reports import demo_report_body
from api.reports import ReportService, open_report_store
from api.reports.form import InitialReport
from config.load import load_settings
from config.reports import ReportSettings
from config.settings import Role
from config.tenants import TenantTree
from pipeline.store.registry import open_incident_store

NOW = datetime(2026, 11, 23, 3, 30, tzinfo=UTC)
runner = CliRunner()


@pytest.fixture
def reported(tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """A data directory holding Bộ Y tế's demo report: (data dir, incident id, reference)."""
    settings = load_settings(None, overrides={"data_dir": tmp_path / "data"})
    tree = TenantTree.from_config(settings.tenants)
    incidents = open_incident_store(settings.store_url)
    store = open_report_store(settings.store_url, settings.data_dir)
    try:
        service = ReportService(store, incidents, tree, ReportSettings(), clock=lambda: NOW)
        reporter = Principal("reporter-byt", "byt", Role.AGENCY_REPORTER, tree.scope("byt"))
        ack = service.file_initial(reporter, InitialReport.model_validate(demo_report_body(NOW)))
    finally:
        store.close()
        incidents.close()
    yield settings.data_dir, ack.incident_id, ack.reference


def test_report_incident_writes_html_and_pdf(reported: tuple[Path, str, str], tmp_path: Path) -> None:
    data_dir, incident_id, reference = reported
    html = tmp_path / "out" / "report.html"
    result = runner.invoke(report_app, ["incident", incident_id[:12], "--format", "html", "--out", str(html),
                                        "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(html)
    text = html.read_text(encoding="utf-8")
    assert "BÁO CÁO BAN ĐẦU SỰ CỐ AN TOÀN THÔNG TIN MẠNG" in text and reference in text

    pdf = tmp_path / "report.pdf"
    result = runner.invoke(report_app, ["incident", incident_id, "--format", "pdf", "--out", str(pdf),
                                        "--lang", "en", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert pdf.read_bytes().startswith(b"%PDF")
    if shutil.which("pdftotext"):
        out = subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
        assert "INITIAL NETWORK INFORMATION SECURITY INCIDENT REPORT" in out and "Bộ Y tế" in out


def test_report_period_writes_the_statistics(reported: tuple[Path, str, str], tmp_path: Path) -> None:
    data_dir, _, _ = reported
    out = tmp_path / "period.html"
    result = runner.invoke(report_app, ["period", "--from", "2026-01-01", "--to", "2026-12-31", "--tenant", "byt",
                                        "--format", "html", "--out", str(out), "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert "BÁO CÁO ĐỊNH KỲ HẰNG NĂM VỀ SỰ CỐ AN TOÀN THÔNG TIN MẠNG" in text and "Bộ Y tế" in text
    assert "Bộ Tài chính" not in text  # a sibling is outside byt's subtree


@pytest.mark.parametrize(("args", "message"), [
    (["incident", "ffffffff", "--format", "html"], "ID: no incident with id 'ffffffff'"),
    (["incident", "PLACEHOLDER", "--format", "html", "--kind", "final"], "has no final report"),
    (["period", "--from", "2026-12-31", "--to", "2026-01-01", "--format", "html"], "--to: the last day is before"),
    (["period", "--from", "2026-01-01", "--to", "2026-12-31", "--tenant", "nowhere", "--format", "html"],
     "--tenant: unknown tenant 'nowhere'"),
])
def test_usage_errors_exit_2_naming_the_option(reported: tuple[Path, str, str], tmp_path: Path,
                                               args: list[str], message: str) -> None:
    data_dir, incident_id, _ = reported
    args = [incident_id if a == "PLACEHOLDER" else a for a in args]
    result = runner.invoke(report_app, [*args, "--out", str(tmp_path / "x"), "--data-dir", str(data_dir)])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "x").exists()
