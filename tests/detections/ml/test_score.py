"""MlDetector on synthetic tenants: a scan, DNS tunnelling and a password spray each raise an alert
naming the right feature; a normal day stays under the target alert rate; ids are deterministic."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import timedelta

import pytest

from detections.ml.features import EntityKind, FeatureRow, WindowFeaturizer
from detections.ml.models import AnomalyModel, ModelSpec, train_kinds
from detections.ml.score import Finding, MlDetector, rule_id_for, severity_for
from pipeline.records import DetectionKind, Event, Severity
from tests.detections.ml.factory import DAY1, DAY2, TENANT, WINDOW, normal_day, scan, spray, tunnel

RATE = 0.01
ATTACK_AT = DAY2 + timedelta(hours=10, minutes=1)


@dataclass
class Trained:
    models: list[AnomalyModel]
    featurizer: WindowFeaturizer  # holds the history learnt from the baseline, as a running worker would


@pytest.fixture(scope="module")
def baseline_events() -> list[Event]:
    return normal_day(DAY1, seed=1)


@pytest.fixture(scope="module")
def day2() -> list[Event]:
    return normal_day(DAY2, seed=2)


def train(events: list[Event]) -> Trained:
    featurizer = WindowFeaturizer(window=WINDOW)
    rows = featurizer.add(events) + featurizer.flush()
    outcomes = train_kinds(rows, ModelSpec(target_alert_rate=RATE), tenant=TENANT)
    assert [o.status for o in outcomes] == ["trained"] * len(EntityKind)
    return Trained([o.model for o in outcomes if o.model is not None], featurizer)


@pytest.fixture(scope="module")
def trained_once(baseline_events: list[Event]) -> Trained:
    return train(baseline_events)


@pytest.fixture
def trained(trained_once: Trained) -> Trained:
    """The module's models with a copy of the warmed featurizer, so tests do not share window state."""
    return Trained(trained_once.models, copy.deepcopy(trained_once.featurizer))


def findings(trained: Trained, events: list[Event]) -> tuple[list[Finding], int]:
    detector = MlDetector(trained.models, trained.featurizer)
    rows: list[FeatureRow] = detector.featurizer.add(sorted(events, key=lambda e: e.timestamp))
    found = detector.score_rows(rows + detector.featurizer.flush())
    return found, detector.scored


def at_attack(found: list[Finding], entity: str) -> Finding:
    [finding] = [f for f in found if f.row.entity == entity and f.row.start <= ATTACK_AT < f.row.end]
    return finding


def test_a_normal_day_stays_within_the_target_rate(trained: Trained, day2: list[Event]) -> None:
    found, scored = findings(trained, day2)
    assert scored > 4_000
    assert len(found) / scored <= RATE * 1.5


@pytest.mark.parametrize(("attack", "entity", "kind", "features"), [
    (scan, "10.0.0.5", EntityKind.FLOW_SOURCE, {"flow_distinct_destinations"}),
    (tunnel, "10.0.1.3", EntityKind.DNS_CLIENT, {"dns_mean_name_length", "dns_max_name_length", "dns_mean_entropy",
                                                 "dns_max_entropy", "dns_max_subdomains_per_domain"}),
    (spray, "203.0.113.77", EntityKind.AUTH_SOURCE, {"auth_distinct_users"}),
])
def test_an_attack_raises_an_alert_that_names_why(trained: Trained, day2: list[Event], attack: object,
                                                  entity: str, kind: EntityKind, features: set[str]) -> None:
    assert callable(attack)
    found, _ = findings(trained, day2 + attack(ATTACK_AT))
    finding = at_attack(found, entity)
    alert = finding.alert
    assert finding.row.kind is kind
    assert finding.reasons[0].feature in features
    assert (alert.kind, alert.rule_id, alert.tenant) == (DetectionKind.ML, rule_id_for(kind), TENANT)
    assert alert.entity == {finding.row.entity_field: entity}
    assert alert.severity >= Severity.HIGH
    assert finding.reasons[0].feature in alert.description and "Why: " in alert.description
    assert set(alert.event_ids) <= {e.id for e in day2 + attack(ATTACK_AT)}


def test_alert_ids_are_deterministic(baseline_events: list[Event], day2: list[Event]) -> None:
    events = day2 + scan(ATTACK_AT)
    first, _ = findings(train(baseline_events), events)
    second, _ = findings(train(baseline_events), events)
    assert [f.alert.id for f in first] == [f.alert.id for f in second]
    assert len({f.alert.id for f in first}) == len(first)


def test_a_tenant_without_a_model_raises_nothing(day2: list[Event]) -> None:
    detector = MlDetector([])
    assert detector.process(day2) + detector.flush() == []
    assert detector.unscored > 0 and detector.scored == 0


@pytest.mark.parametrize(("margin", "severity"), [(-0.1, Severity.LOW), (0.0, Severity.LOW),
                                                  (0.5, Severity.MEDIUM), (2.0, Severity.HIGH),
                                                  (10.0, Severity.CRITICAL)])
def test_severity_grows_with_the_margin(margin: float, severity: Severity) -> None:
    assert severity_for(margin) is severity


def test_batches_give_the_same_alerts_as_one_pass(trained: Trained, day2: list[Event]) -> None:
    events = sorted(day2 + scan(ATTACK_AT), key=lambda e: e.timestamp)
    whole = MlDetector(trained.models, copy.deepcopy(trained.featurizer))
    expected = whole.process(events) + whole.flush()
    batched = MlDetector(trained.models, trained.featurizer)
    got = [a for i in range(0, len(events), 997) for a in batched.process(events[i:i + 997])] + batched.flush()
    assert [a.id for a in got] == [a.id for a in expected]
