"""Noise control: dedup by key, time-window suppressions with expiry and reason, the flood guard."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from config.settings import IncidentSettings, NoiseSettings, SuppressionRule, TenantConfig, TenantKind
from config.tenants import TenantScope, TenantTree
from detections.incidents import IncidentService
from detections.incidents.noise import NoiseFilter, Verdict, preview_suppression, suppression_from_rule
from pipeline.records import Alert, Suppression
from pipeline.store.base import AlertQuery, IncidentQuery, IncidentStore
from pipeline.store.registry import open_incident_store
from tests.factories import T0, make_alert

TREE = TenantTree.from_config([
    TenantConfig(id="national", name="N", kind=TenantKind.NATIONAL),
    TenantConfig(id="hanoi", name="HN", parent="national"),
    TenantConfig(id="hanoi-bavi", name="BV", parent="hanoi"),
    TenantConfig(id="danang", name="DN", parent="national"),
])
ALL = TenantScope.everything()
SCANNER = {"source.address": "10.0.0.5"}


def verdicts(noise: NoiseFilter, alerts: list[Alert]) -> list[Verdict]:
    return [noise.decide(alert).verdict for alert in alerts]


def suppression(**fields: object) -> Suppression:
    values: dict[str, object] = {"id": "sup-1", "tenant": "hanoi", "reason": "máy quét lỗ hổng nội bộ",
                                 "created_by": "analyst-1", "created": T0, **fields}
    return Suppression(**values)  # type: ignore[arg-type]


def test_defaults_keep_everything() -> None:
    noise = NoiseFilter(NoiseSettings(), TREE)
    assert set(verdicts(noise, [make_alert(n=n) for n in range(50)])) == {Verdict.KEEP}


def test_dedup_by_key_within_the_window() -> None:
    noise = NoiseFilter(NoiseSettings(dedup_window_s=60), TREE)
    alerts = [make_alert(n=0), make_alert(n=30), make_alert(n=59), make_alert(n=60),
              make_alert(n=61, entity={"source.address": "198.51.100.1"}), make_alert("danang", n=62),
              make_alert(n=63, rule_id="rule-2")]
    assert verdicts(noise, alerts) == [Verdict.KEEP, Verdict.DUPLICATE, Verdict.DUPLICATE, Verdict.KEEP,
                                       Verdict.KEEP, Verdict.KEEP, Verdict.KEEP]
    assert noise.dropped[Verdict.DUPLICATE] == 2


def test_a_suppression_hides_matching_alerts_until_it_expires() -> None:
    rule = suppression(rule_id="rule-1", entity=SCANNER, expires=T0 + timedelta(hours=1))
    noise = NoiseFilter(NoiseSettings(), TREE, [rule])
    decision = noise.decide(make_alert("hanoi-bavi", n=10, entity=SCANNER))  # hanoi's subtree
    assert decision.verdict is Verdict.SUPPRESSED
    assert "máy quét lỗ hổng nội bộ" in decision.reason and "sup-1" in decision.reason
    assert verdicts(noise, [
        make_alert("hanoi", n=3600, entity=SCANNER),  # expired (expiry is exclusive)
        make_alert("danang", n=20, entity=SCANNER),  # another subtree
        make_alert("hanoi", n=30),  # another entity
        make_alert("hanoi", n=40, entity=SCANNER, rule_id="rule-2"),  # another rule
    ]) == [Verdict.KEEP] * 4


def test_configured_exceptions_cover_every_tenant_unless_one_is_named() -> None:
    settings = NoiseSettings(suppressions=(SuppressionRule(reason="lab network", entity=SCANNER),))
    noise = NoiseFilter(settings, TREE)
    assert verdicts(noise, [make_alert("danang", entity=SCANNER), make_alert("hanoi")]) == [
        Verdict.SUPPRESSED, Verdict.KEEP]
    only = suppression_from_rule(SuppressionRule(reason="x", tenant="danang"))
    assert (only.tenant, only.expires, only.rule_id) == ("danang", None, None)


def test_flood_guard_per_rule_and_tenant() -> None:
    noise = NoiseFilter(NoiseSettings(flood_window_s=60, flood_max_alerts=3), TREE)
    burst = [make_alert(n=n) for n in range(5)]
    assert verdicts(noise, burst) == [Verdict.KEEP] * 3 + [Verdict.FLOODED] * 2
    assert verdicts(noise, [make_alert("danang", n=5), make_alert(n=6, rule_id="rule-2")]) == [Verdict.KEEP] * 2
    assert noise.decide(make_alert(n=60)).verdict is Verdict.KEEP  # the window moved past the first alert
    assert noise.dropped[Verdict.FLOODED] == 2


def test_preview_counts_the_past_alerts_an_exception_would_hide() -> None:
    past = [make_alert("hanoi", n=n, entity=SCANNER) for n in range(4)] + [make_alert("danang", n=9)]
    assert preview_suppression(suppression(entity=SCANNER), past, TREE) == 4
    assert preview_suppression(suppression(entity=SCANNER, expires=T0 + timedelta(seconds=2)), past, TREE) == 2


@pytest.fixture
def store(tmp_path: Path) -> Iterator[IncidentStore]:
    instance = open_incident_store(f"sqlite:///{tmp_path / 'govsoc.db'}")
    yield instance
    instance.close()


def test_the_service_keeps_suppressed_alerts_but_groups_none(store: IncidentStore) -> None:
    store.save_suppression(suppression(entity=SCANNER))
    service = IncidentService(store, TREE, IncidentSettings())
    changed = service.ingest([make_alert("hanoi", n=1, entity=SCANNER), make_alert("hanoi", n=2)])
    assert len(changed) == 1 and changed[0].entity == {"source.address": "203.0.113.77"}
    assert store.count_alerts(ALL, AlertQuery()) == 2
    assert store.count_incidents(ALL, IncidentQuery()) == 1
    assert service.noise.dropped[Verdict.SUPPRESSED] == 1
