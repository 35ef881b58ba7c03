"""Retro-hunts over stored events raise the alerts the stream raises, within the tenant scope and
the time window: SigmaHQ's regression events stored in a `SqliteEventStore`, hunted with the rules
those events were written for, compared with `SigmaEngine` over the same events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from config.tenants import TenantScope
from detections.sigma import SigmaEngine, load_rules
from detections.sigma.hunt import HuntStats, HuntWindow, SqliteCandidates, hunt_rules, hunt_ruleset, store_queries
from detections.sigma.hunt import sqlite_where as convert_sqlite
from detections.sigma.hunt_elastic import lucene_query, search_body
from pipeline.errors import StoreError
from pipeline.records import Alert, DetectionKind, Event
from pipeline.store.sqlite_events import SqliteEventStore
from sensors.windows import WindowsSource, read_windows_file

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
RULES = DATA / "sigma"
REGRESSION = DATA / "sigma-regression"
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)

pytestmark = pytest.mark.skipif(not REGRESSION.is_dir() or not RULES.is_dir(),
                                reason="../shared/data (SigmaHQ rules and regression data) is not present")


def _regression_rules() -> list[Path]:
    """The rule file of each regression folder (the folder's path, under rules/)."""
    files = [RULES / (folder.parent.relative_to(REGRESSION).as_posix() + ".yml")
             for folder in sorted(REGRESSION.rglob("info.yml"))]
    return [path for path in files if path.is_file()]


def _events() -> list[Event]:
    """The regression events in tenant `hanoi`, and a copy of each in tenant `hue`."""
    events = []
    for path in sorted(REGRESSION.rglob("*.json")):
        for batch in read_windows_file(path, WindowsSource(tenant="hanoi", sensor="test")):
            events.extend(batch.events)
    copies = []
    for event in events:
        doc = orjson.loads(event.to_json())
        doc["organization"]["id"] = "hue"
        doc["event"]["id"] = event.id + "-hue"
        copies.append(Event.from_document(doc))
    return events + copies


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('hunt') / 'events.db'}"
    store = SqliteEventStore.from_url(url)
    store.write(_events())
    store.close()
    return url


def _stream(paths: list[Path], scope: TenantScope, start: datetime) -> set[str]:
    ruleset, _errors = load_rules(paths)
    alerts = SigmaEngine(ruleset).process(sorted(_events(), key=lambda event: event.timestamp))
    return {alert.id for alert in alerts if alert.kind is DetectionKind.SIGMA and alert.tenant in scope
            and alert.timestamp >= start}


def test_the_hunt_raises_the_streams_alerts_in_the_scope(store_url: str) -> None:
    paths = _regression_rules()
    assert len(paths) >= 130
    hanoi = TenantScope(root="hanoi", tenant_ids=frozenset({"hanoi"}))
    stats = HuntStats()
    alerts = hunt_rules(store_url, paths, HuntWindow(hanoi, LONG_AGO), stats)
    assert {alert.tenant for alert in alerts} == {"hanoi"}
    assert {alert.id for alert in alerts} == _stream(paths, hanoi, LONG_AGO)
    assert len({alert.rule_id for alert in alerts}) >= 130  # each folder's rule, at least
    assert stats.rules >= 130 and stats.candidates < 20 * len(alerts)  # the query did narrow the read
    everyone = hunt_rules(store_url, paths, HuntWindow(TenantScope.everything(), LONG_AGO))
    assert {alert.tenant for alert in everyone} == {"hanoi", "hue"}
    assert len(everyone) == 2 * len(alerts)


def test_the_window_bounds_the_hunt(store_url: str) -> None:
    paths = _regression_rules()[:40]
    everything = TenantScope.everything()
    alerts = hunt_rules(store_url, paths, HuntWindow(everything, LONG_AGO))
    times = sorted(alert.timestamp for alert in alerts)
    middle = times[len(times) // 2]
    later = hunt_rules(store_url, paths, HuntWindow(everything, middle))
    assert {alert.id for alert in later} == {alert.id for alert in alerts if alert.timestamp >= middle}
    earlier = hunt_rules(store_url, paths, HuntWindow(everything, LONG_AGO, end=middle))
    assert {alert.id for alert in earlier} | {alert.id for alert in later} == {alert.id for alert in alerts}
    assert hunt_rules(store_url, paths, HuntWindow(everything, datetime.now(UTC) + timedelta(days=1))) == []


def test_a_rule_the_backend_cannot_convert_is_hunted_by_reading_its_log_source(tmp_path: Path,
                                                                               store_url: str) -> None:
    rule = tmp_path / "keyword.yml"
    rule.write_text("title: keyword\nid: 4a0c4b7e-1f1e-4bd4-9c83-52e0a8a5d1a1\n"
                    "logsource: {product: windows, category: process_creation}\n"
                    "detection:\n  keywords: ['whoami']\n  condition: keywords\nlevel: low\n", encoding="utf-8")
    ruleset, errors = load_rules([rule])
    assert not errors
    stats = HuntStats()
    window = HuntWindow(TenantScope.everything(), LONG_AGO)
    alerts: list[Alert] = hunt_ruleset(store_url, ruleset, window, stats)
    assert stats.full_scans == ["4a0c4b7e-1f1e-4bd4-9c83-52e0a8a5d1a1"] * 2  # Sysmon 1 and Security 4688
    assert {alert.id for alert in alerts} == _stream([rule], TenantScope.everything(), LONG_AGO)


def test_the_sql_binds_the_scope_and_window_as_parameters() -> None:
    ruleset, _errors = load_rules(_regression_rules()[:1])
    (query, *_rest) = list(store_queries(ruleset, convert_sqlite))
    scope = TenantScope(root="x", tenant_ids=frozenset({"x'; DROP TABLE events; --"}))
    sql, params = SqliteCandidates.statement(query, HuntWindow(scope, LONG_AGO))
    assert "DROP" not in sql and any("DROP" in str(param) for param in params)
    assert sql.count("?") == len(params)


def test_unknown_stores_are_refused() -> None:
    ruleset, _errors = load_rules(_regression_rules()[:1])
    with pytest.raises(StoreError, match="no retro-hunt"):
        hunt_ruleset("postgresql://x/y", ruleset, HuntWindow(TenantScope.everything(), LONG_AGO))


def test_the_elastic_query_maps_fields_to_the_paths_the_engine_reads() -> None:
    ruleset, _errors = load_rules([RULES / "rules/windows/process_creation/proc_creation_win_renamed_whoami.yml"])
    (query,) = list(store_queries(ruleset, lucene_query))[:1]
    assert query.text is not None and "winlog.event_data.OriginalFileName" in query.text
    hanoi = TenantScope(root="hanoi", tenant_ids=frozenset({"hanoi"}))
    body = search_body(query, HuntWindow(hanoi, LONG_AGO))
    filters = body["query"]["bool"]["filter"]
    assert {"terms": {"organization.id": ["hanoi"]}} in filters
    assert any("range" in item for item in filters)
    assert {"term": {"winlog.channel": query.rule.scope.value}} in filters
    assert body["query"]["bool"]["must"] == [{"query_string": {"query": query.text}}]
