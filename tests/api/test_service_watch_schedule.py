"""`govsoc up` checks the configured service-watch targets on their intervals (its own vantage
point): each check goes through ingest into the store, and the detect step's `WatchDetector`
raises what the check shows (here a certificate three days from expiry) as an alert and an
incident, once however many rounds see it. Loopback portal with a certificate of the test's CA."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from api.wiring import Runtime, build_runtime
from api.wiring.service_watch import start_service_watch
from config.load import load_settings
from config.tenants import TenantScope
from pipeline.store.base import AlertQuery, EventQuery, IncidentQuery
from tests.sensors.watch.loopback import CertLab, serving

EVERYONE = TenantScope.everything()
DEADLINE_S = 60.0


def test_up_checks_the_targets_on_their_interval_and_raises_what_they_show(tmp_path: Path) -> None:
    lab = CertLab.create(tmp_path)
    server = lab.serve("portal.hanoi.example", days=3)
    with serving(server):
        settings = load_settings(None, overrides={"data_dir": tmp_path / "data", "service_watch": {
            "vantage_point": "hanoi-s1", "jitter_s": 0, "targets": [
                {"id": "hanoi-portal", "tenant": "hanoi", "url": "https://portal.hanoi.example/",
                 "connect_to": server.address, "ca_file": str(lab.ca_file), "interval_s": 5}]}})
        runtime = build_runtime(settings)
        stop = threading.Event()
        pipeline = threading.Thread(target=runtime.pipeline.run, args=(stop, 0.05), daemon=True)
        pipeline.start()
        watching = start_service_watch(runtime, stop)
        assert watching is not None
        try:
            deadline = time.monotonic() + DEADLINE_S
            while runtime.events.count(EVERYONE, EventQuery(fields={"event.dataset": "service_watch"})) < 2:
                assert time.monotonic() < deadline, "fewer than two rounds of checks stored"
                time.sleep(0.2)
        finally:
            stop.set()
            watching.join(timeout=10)
            pipeline.join(timeout=10)
        try:
            alerts = runtime.incidents.alerts(EVERYONE, AlertQuery(rule_id="govsoc-watch-cert-expiring"))
            assert len(alerts) == 1 and alerts[0].tenant == "hanoi"  # one, not one per round
            incidents = runtime.incidents.incidents(EVERYONE, IncidentQuery(rule_id="govsoc-watch-cert-expiring"))
            assert len(incidents) == 1 and incidents[0].tenant == "hanoi"
        finally:
            runtime.close()
    assert not watching.is_alive()


def test_without_targets_nothing_starts(runtime: Runtime) -> None:
    assert start_service_watch(runtime, threading.Event()) is None
