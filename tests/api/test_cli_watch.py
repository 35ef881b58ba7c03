"""`govsoc watch run` / `watch status` against loopback servers, and the demo's service-watch story."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from typer.testing import CliRunner

from api.cli.common import configure_logging
from api.cli.watch import watch_app
from api.demo.watch import PortalServer, run_demo_watch
from api.wiring import build_runtime
from config.load import load_settings
from config.tenants import TenantScope
from pipeline.bus import open_bus, topics
from pipeline.records import Event
from pipeline.store.base import AlertQuery, IncidentQuery
from playbooks.load import LIBRARY, load_playbooks
from playbooks.triggers import triggered_playbooks
from tests.sensors.watch.loopback import CertLab, serving

if TYPE_CHECKING:  # imported for real by pytest_plugins
    from tests.servers.kafka import KafkaServer

pytest_plugins = ["tests.servers.kafka"]

runner = CliRunner()
app = typer.Typer()
app.add_typer(watch_app, name="watch")


@app.callback()
def main() -> None:
    configure_logging(False)


def targets_file(tmp_path: Path, lab: CertLab, server: PortalServer) -> Path:
    path = tmp_path / "watch.yaml"
    path.write_text(f"""service_watch:
  vantage_point: hanoi-s1
  targets:
    - {{id: hanoi-portal, tenant: hanoi, url: "https://portal.hanoi.example/", connect_to: "{server.address}",
       ca_file: "{lab.ca_file}", asset_id: hanoi-portal, security_level: 3}}
    - {{id: danang-portal, tenant: danang, url: "https://portal.danang.example/", connect_to: "{server.address}",
       ca_file: "{lab.ca_file}"}}
""", encoding="utf-8")
    return path


def test_run_prints_checks_and_findings_then_status_reads_the_store(tmp_path: Path) -> None:
    lab = CertLab.create(tmp_path)
    server = lab.serve("portal.hanoi.example", days=3)
    server.pages["portal.danang.example"] = b"<title>Da Nang</title>"
    with serving(server):
        targets = targets_file(tmp_path, lab, server)
        result = runner.invoke(app, ["watch", "run", "--targets", str(targets), "--data-dir", str(tmp_path),
                                     "--json"])
        table = runner.invoke(app, ["watch", "run", "--targets", str(targets), "--data-dir", str(tmp_path),
                                    "--no-save"], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output  # findings: one certificate, expiring, names only Hà Nội
    out = json.loads(result.stdout)
    assert [(c["tenant"], c["state"], c["status"]) for c in out["checks"]] == [("hanoi", "up", 200),
                                                                               ("danang", "up", 200)]
    assert sorted((a["tenant"], a["rule_id"]) for a in out["alerts"]) == [
        ("danang", "govsoc-watch-cert-expiring"), ("danang", "govsoc-watch-cert-name-mismatch"),
        ("hanoi", "govsoc-watch-cert-expiring")]
    assert "hanoi-portal" in table.stdout and "cert" in table.stdout
    status = runner.invoke(app, ["watch", "status", "--targets", str(targets), "--data-dir", str(tmp_path),
                                 "--json"])
    assert status.exit_code == 0, status.output
    rows = json.loads(status.stdout)["targets"]
    assert [(r["tenant"], r["target"], r["vantage"], r["state"]) for r in rows] == [
        ("danang", "danang-portal", "hanoi-s1", "up"), ("hanoi", "hanoi-portal", "hanoi-s1", "up")]


def test_a_bad_targets_file_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("targets:\n  - {id: x, tenant: hanoi, url: ftp://x.example/}\n", encoding="utf-8")
    result = runner.invoke(app, ["watch", "run", "--targets", str(path), "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "bad.yaml targets.0" in result.output and "http(s)" in result.output


def test_demo_defaces_danang_and_opens_its_incident(tmp_path: Path) -> None:
    runtime = build_runtime(load_settings(None, overrides={"data_dir": tmp_path}))
    try:
        stats = run_demo_watch(runtime, tmp_path / "demo", datetime(2026, 11, 23, 3, 0, tzinfo=UTC))
        incidents = runtime.incidents.incidents(TenantScope.everything(), IncidentQuery(limit=100))
        alerts = runtime.incidents.alerts(TenantScope.everything(), AlertQuery(limit=100))
        playbooks, errors = load_playbooks([LIBRARY])
        triggered = [p.id for i in incidents for p in triggered_playbooks(i, playbooks, runtime.tree)]
    finally:
        runtime.close()
    assert stats.defaced == ("danang",) and stats.events == 4
    assert [(i.tenant, i.rule_id) for i in incidents] == [("danang", "govsoc-watch-defacement")]
    (alert,) = alerts
    assert "Before (" in alert.description and "+Owned" in alert.description
    assert errors == [] and triggered == ["website-defacement"]


def test_on_a_shared_bus_run_publishes_the_checks_for_the_workers(tmp_path: Path,
                                                                  own_noida_kafka: KafkaServer) -> None:
    """Scale-out: the checks go to `topics.RAW` (the ingest workers store them, the detect workers
    judge them), not straight into the event store past the pipeline."""
    lab = CertLab.create(tmp_path)
    server = lab.serve("portal.hanoi.example", days=3)
    server.pages["portal.danang.example"] = b"<title>Da Nang</title>"
    bus_url = own_noida_kafka.url(partitions=1)  # a broker of its own: nothing else on govsoc.raw
    with serving(server):
        result = runner.invoke(app, ["watch", "run", "--targets", str(targets_file(tmp_path, lab, server)),
                                     "--data-dir", str(tmp_path), "--json"], env={"GOVSOC_BUS": bus_url})
    assert result.exit_code == 1, result.output  # the expiring certificate
    bus = open_bus(bus_url)
    consumer = bus.consumer([topics.RAW], f"check-{uuid.uuid4().hex}")
    seen: list[Event] = []
    deadline = time.monotonic() + 30
    while len(seen) < 2 and time.monotonic() < deadline:
        seen += [Event.from_json(m.value) for m in consumer.poll(100, 0.5)]
    consumer.close()
    bus.close()
    assert sorted((e.tenant, e.get("event.dataset")) for e in seen) == [("danang", "service_watch"),
                                                                        ("hanoi", "service_watch")]
