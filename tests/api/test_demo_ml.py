"""The demo's ML step end to end: the ward's ordinary week through the packet sensor, models trained
from the store, the demo day scored with the online feed; the tunnelling and the sweep of
10.31.0.23 become alerts with reasons and incidents, nothing else is flagged, other tenants stay cold."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from api.demo.ml import TENANT, BaselineSpec, MlDemoStats, build_baseline, dns_message, train_and_score_demo
from api.demo.packets import CaptureSpec, write_capture
from api.demo.setup import demo_start
from api.wiring import Runtime, build_runtime
from config.load import load_settings
from config.tenants import TenantScope
from detections.ml import EntityKind, ModelRegistry
from pipeline.records import DetectionKind
from pipeline.store.base import AlertQuery, IncidentQuery
from sensors.packets import CaptureSource, read_capture
from sensors.packets.dns import parse_dns

NOW = datetime(2026, 11, 23, 6, 40, tzinfo=UTC)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    data = tmp_path_factory.mktemp("demo-ml")
    opened = build_runtime(load_settings(None, overrides={"data_dir": data}))
    capture = write_capture(data / "haichau.pcap", CaptureSpec(start=demo_start(NOW) + timedelta(hours=8)))
    opened.pipeline.replay_batches(read_capture(capture, CaptureSource(tenant=TENANT, sensor="haichau-s1")))
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def stats(runtime: Runtime) -> MlDemoStats:
    return train_and_score_demo(runtime, NOW)


def test_the_tunnelling_and_the_sweep_are_alerts_with_reasons(stats: MlDemoStats) -> None:
    assert stats.baseline_events > 10_000 and stats.models == 2  # flows and DNS; the ward has no auth log
    by_rule = {a.rule_id for a in stats.alerts}
    assert by_rule == {"ml.dns_client", "ml.flow_source"}
    assert all(a.entity == {"source.ip": "10.31.0.23"} and a.kind is DetectionKind.ML for a in stats.alerts)
    assert all(a.asset_id == "haichau-ws" and a.security_level == 1 for a in stats.alerts)
    dns = [a for a in stats.alerts if a.rule_id == "ml.dns_client"]
    assert all("dns_mean_name_length" in a.description and "typical" in a.description for a in dns)
    [sweep] = [a for a in stats.alerts if a.rule_id == "ml.flow_source"]
    assert "flow_distinct_destinations = 41" in sweep.description
    assert len(stats.alerts) == len(stats.reasons) and all(": " in r for r in stats.reasons)
    assert stats.windows_scored > len(stats.alerts)  # the ordinary morning was scored, not flagged


def test_alerts_reach_the_store_and_group_into_incidents(runtime: Runtime, stats: MlDemoStats) -> None:
    scope = TenantScope.everything()
    stored = runtime.incidents.alerts(scope, AlertQuery(limit=100))
    assert {a.id for a in stats.alerts} <= {a.id for a in stored}
    incidents = runtime.incidents.incidents(scope, IncidentQuery(limit=100))
    assert {i.tenant for i in incidents if i.rule_id.startswith("ml.")} == {TENANT}


def test_only_the_ward_has_models_and_a_second_run_changes_nothing(runtime: Runtime, stats: MlDemoStats) -> None:
    registry = ModelRegistry(runtime.settings.data_dir / "models")
    loaded = registry.load_current([t.id for t in runtime.tree])
    assert set(loaded.models) == {(TENANT, EntityKind.FLOW_SOURCE), (TENANT, EntityKind.DNS_CLIENT)}
    again = train_and_score_demo(runtime, NOW)
    assert [a.id for a in again.alerts] == [a.id for a in stats.alerts]


def test_the_baseline_capture_is_deterministic_and_its_dns_parses(tmp_path: Path) -> None:
    spec = BaselineSpec(end=demo_start(NOW) + timedelta(hours=8), days=1, sessions_per_day=1)
    first, second = build_baseline(spec).pcap, build_baseline(spec).pcap
    assert first.frames == second.frames
    first.write(tmp_path / "a.pcap")
    second.write(tmp_path / "b.pcap")
    assert (tmp_path / "a.pcap").read_bytes() == (tmp_path / "b.pcap").read_bytes()
    reply = parse_dns(dns_message(7, "portal.danang.example", answer="203.0.113.10", rcode=0))
    assert (reply.question_name, reply.response_code, reply.answers[0].data) == (
        "portal.danang.example", "NOERROR", "203.0.113.10")
