"""`govsoc hunt --rule`: the typer-free body (`api.cli.hunt_rules.run_rule_hunt`) over a configured
SQLite event store holding Windows events of two tenants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from api.cli.hunt_rules import RuleHuntUsageError, run_rule_hunt
from config.settings import Settings, TenantConfig, TenantKind
from config.tenants import TenantScope
from pipeline.records import Event
from pipeline.store.base import AlertQuery
from pipeline.store.registry import open_event_store, open_incident_store

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
RULE = """title: Whoami run
id: 0d1d2b38-9a8f-4f55-a0e8-7f5b7a5c2c11
status: test
logsource: {category: process_creation, product: windows}
detection:
  sel: {Image|endswith: '\\\\whoami.exe'}
  condition: sel
level: high
"""


def _event(tenant: str, n: int, image: str, age: timedelta) -> Event:
    doc = {"@timestamp": (NOW - age).isoformat(), "organization": {"id": tenant},
           "event": {"id": f"{tenant}-{n}", "code": "1", "dataset": "windows.sysmon_operational"},
           "host": {"name": f"ws-{n}"},
           "winlog": {"channel": "Microsoft-Windows-Sysmon/Operational",
                      "event_data": {"Image": image, "CommandLine": image}}}
    return Event.from_document(orjson.loads(orjson.dumps(doc)))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path, tenants=(
        TenantConfig(id="national", name="N", kind=TenantKind.NATIONAL),
        TenantConfig(id="hanoi", name="HN", parent="national"),
        TenantConfig(id="danang", name="DN", parent="national")))
    store = open_event_store(settings.events_url)
    store.write([
        _event("hanoi", 1, "C:\\Windows\\System32\\WHOAMI.EXE", timedelta(hours=2)),
        _event("hanoi", 2, "C:\\Windows\\System32\\cmd.exe", timedelta(hours=2)),
        _event("hanoi", 3, "C:\\Windows\\System32\\whoami.exe", timedelta(days=10)),
        _event("danang", 4, "C:\\Windows\\System32\\whoami.exe", timedelta(hours=1)),
    ])
    store.close()
    return settings


@pytest.fixture
def rule(tmp_path: Path) -> Path:
    path = tmp_path / "whoami.yml"
    path.write_text(RULE, encoding="utf-8")
    return path


def test_the_hunt_finds_the_rules_matches_in_the_tenant_and_window(settings: Settings, rule: Path) -> None:
    result = run_rule_hunt(settings, [rule], "7d", "hanoi", now=NOW)
    assert [alert.event_ids for alert in result.alerts] == [("hanoi-1",)]
    assert result.alerts[0].rule_title == "Whoami run" and result.refused == []
    everyone = run_rule_hunt(settings, [rule], "30d", None, now=NOW)
    assert sorted(alert.event_ids[0] for alert in everyone.alerts) == ["danang-4", "hanoi-1", "hanoi-3"]


def test_send_groups_the_alerts_into_incidents_once(settings: Settings, rule: Path) -> None:
    first = run_rule_hunt(settings, [rule], "7d", None, send=True, now=NOW)
    again = run_rule_hunt(settings, [rule], "7d", None, send=True, now=NOW)
    assert first.sent == 2 and again.sent == 2
    incidents = open_incident_store(settings.incidents_url)
    try:
        assert incidents.count_alerts(TenantScope.everything(), AlertQuery()) == 2  # same ids: no duplicates
    finally:
        incidents.close()


@pytest.mark.parametrize(("since", "tenant", "message"), [
    ("7 days", None, "--since"), ("7d", "nowhere", "--tenant"),
])
def test_usage_errors_name_the_option(settings: Settings, rule: Path, since: str, tenant: str | None,
                                      message: str) -> None:
    with pytest.raises(RuleHuntUsageError, match=message):
        run_rule_hunt(settings, [rule], since, tenant, now=NOW)


def test_refused_rule_files_are_reported_and_the_rest_hunted(settings: Settings, rule: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("title: x\nlogsource: {product: windows}\ndetection: {sel: {a|nope: b}, condition: sel}\n",
                      encoding="utf-8")
    result = run_rule_hunt(settings, [rule, broken], "7d", None, now=NOW)
    assert len(result.alerts) == 2
    assert len(result.refused) == 1 and "broken.yml" in result.refused[0]
    with pytest.raises(RuleHuntUsageError, match="no rule loaded"):
        run_rule_hunt(settings, [broken], "7d", None, now=NOW)
    with pytest.raises(RuleHuntUsageError, match="no such file"):
        run_rule_hunt(settings, [tmp_path / "absent.yml"], "7d", None, now=NOW)
