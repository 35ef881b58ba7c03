"""`govsoc intel import|list` and `govsoc hunt --intel`, run in-process on a real data directory."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from api.cli.common import configure_logging
from api.cli.hunt import hunt
from api.cli.intel import intel_app
from config.tenants import TenantScope
from pipeline.store.base import IncidentQuery
from pipeline.store.registry import open_event_store, open_incident_store
from tests.factories import make_event

DATA = Path(__file__).parents[1] / "data" / "intel"
runner = CliRunner()
app = typer.Typer()  # as api/cli/main.py registers them, with its logging set-up


@app.callback()
def main() -> None:
    configure_logging(False)


app.add_typer(intel_app, name="intel")
app.command()(hunt)


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def test_import_detects_each_format_and_lists_by_tenant(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    result = invoke("intel", "import", str(DATA / "stix-poisonivy-excerpt.json"),
                    str(DATA / "misp-event-sednit-excerpt.json"), "--data-dir", data, "--json", "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"published": 32, "context_objects": 31, "issues": 0}
    listed = invoke("intel", "list", "--data-dir", data, "--json", "--limit", "1000")
    assert len(listed.stdout.splitlines()) == 32
    amber = invoke("intel", "import", str(DATA / "stix-indicator-for-c2-ip-address.json"), "--tenant", "btc",
                   "--tlp", "amber", "--source", "btc-soc", "--data-dir", data, "--quiet")
    assert amber.exit_code == 0, amber.output
    as_byt = invoke("intel", "list", "--tenant", "byt", "--type", "ipv4", "--data-dir", data, "--json")
    assert "btc-soc" not in as_byt.stdout  # a sibling's AMBER indicator
    as_btc = invoke("intel", "list", "--tenant", "btc", "--type", "ipv4", "--data-dir", data, "--json")
    assert "btc-soc" in as_btc.stdout


def test_bad_files_are_named_with_their_objects(tmp_path: Path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text("{not json", encoding="utf-8")
    email = tmp_path / "email.json"
    shutil.copy(DATA / "stix-malicious-email-indicator-with-attachment.json", email)
    result = invoke("intel", "import", str(junk), str(email), "--data-dir", str(tmp_path / "d"), "--quiet")
    assert result.exit_code == 2
    assert f"{junk}" in result.stderr and "not JSON" in result.stderr
    assert f"{email} objects[2] indicator--8cf9236f-1b96-493d-98be-0c1c1e8b62d7" in result.stderr
    missing = invoke("intel", "import", str(tmp_path / "nope.json"), "--data-dir", str(tmp_path / "d"))
    assert missing.exit_code == 2 and "nope.json: no such file" in missing.stderr
    assert invoke("intel", "import", str(email), "--tenant", "mars", "--data-dir", str(tmp_path / "d")).exit_code == 2


def test_hunt_finds_history_and_sends_incidents_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    stix = {"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d", "objects": [{
        "type": "indicator", "spec_version": "2.1", "id": "indicator--d81f86b9-975b-4c0b-875e-810c5ad45a4f",
        "created": "2026-01-01T00:00:00Z", "modified": "2026-01-01T00:00:00Z", "pattern_type": "stix",
        "pattern": "[ipv4-addr:value = '203.0.113.77']", "valid_from": "2026-01-01T00:00:00Z"}]}
    bundle = tmp_path / "b.json"
    bundle.write_text(json.dumps(stix), encoding="utf-8")
    assert invoke("intel", "import", str(bundle), "--data-dir", str(data), "--quiet").exit_code == 0
    url = f"sqlite:///{data / 'govsoc.db'}"
    events = open_event_store(url)
    now = datetime.now(UTC)
    events.write([make_event("danang", n, at=now - timedelta(hours=1), source__ip=ip)
                  for n, ip in enumerate(["203.0.113.77", "198.51.100.1", "203.0.113.77"])])
    events.close()
    assert invoke("hunt", "--data-dir", str(data)).exit_code == 2  # nothing to hunt with
    found = invoke("hunt", "--intel", "--since", "1d", "--data-dir", str(data), "--json", "--send")
    assert found.exit_code == 1, found.output
    alerts = [json.loads(line) for line in found.stdout.splitlines()]
    assert [(a["tenant"], a["entity"]) for a in alerts] == [("danang", {"source.ip": "203.0.113.77"})] * 2
    assert invoke("hunt", "--intel", "--tenant", "btc", "--data-dir", str(data)).exit_code == 0
    invoke("hunt", "--intel", "--since", "1d", "--data-dir", str(data), "--send")  # again: same alert ids
    incidents = open_incident_store(url)
    [incident] = incidents.incidents(TenantScope.everything(), IncidentQuery())
    assert incident.tenant == "danang" and incident.alert_count == 2
    incidents.close()


def test_taxii_imports_a_collection_and_names_it_on_failure(tmp_path: Path) -> None:
    import threading
    from http.server import ThreadingHTTPServer

    from tests.detections.intel.test_taxii import COLLECTION, TaxiiHandler

    server = ThreadingHTTPServer(("127.0.0.1", 0), TaxiiHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/api1/collections/{COLLECTION}/"
    try:
        data = str(tmp_path / "data")
        ok = invoke("intel", "taxii", url, "--user", "taxii", "--password", "secret", "--data-dir", data, "--json")
        assert ok.exit_code == 0, ok.output
        assert json.loads(ok.stdout)["published"] == 20
        refused = invoke("intel", "taxii", url, "--user", "taxii", "--password", "no", "--data-dir", data)
        assert refused.exit_code == 3 and url in refused.stderr
    finally:
        server.shutdown()
        server.server_close()
