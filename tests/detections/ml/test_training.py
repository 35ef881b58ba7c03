"""Training from the event store and scheduled retraining: only the tenant's own events, the model
records its window, fresh models are left alone, stale or missing ones are retrained, cold start."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from detections.ml import EntityKind, MlConfig, ModelRegistry, due_reason, retrain_due, train_from_store
from pipeline.store.base import EventStore
from pipeline.store.registry import open_event_store
from tests.detections.ml.factory import DAY1, DAY2, TENANT, normal_day

NOW = DAY2 + timedelta(hours=1)
CONFIG = MlConfig(training_window=timedelta(days=3), retrain_every=timedelta(days=7))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventStore]:
    """DAY1 of the factory tenant, and ten minutes of a second tenant under the same parent."""
    opened = open_event_store(f"sqlite:///{tmp_path_factory.mktemp('store') / 'govsoc.db'}")
    opened.write(normal_day(DAY1, seed=1))
    other = [e for e in normal_day(DAY1, seed=5) if e.timestamp < DAY1 + timedelta(minutes=10)]
    opened.write([e.__class__.from_document({**e.doc, "organization": {"id": "hanoi-bavi"}}) for e in other])
    yield opened
    opened.close()


def test_train_from_store_reads_only_the_tenant_and_records_the_window(store: EventStore, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    outcomes = train_from_store(store, registry, TENANT, CONFIG, now=NOW)
    assert [o.status for o in outcomes] == ["trained"] * len(EntityKind)
    model = registry.load(TENANT, EntityKind.FLOW_SOURCE)
    assert model is not None
    info = model.info
    assert info["trained_at"] == NOW.isoformat() and info["window_s"] == 300.0
    assert info["events"] == len(normal_day(DAY1, seed=1))  # not one of hanoi-bavi's
    assert info["first_event"] >= DAY1.isoformat() and info["source"] == "store, 3 days"


def test_retrain_due_skips_fresh_models_and_retrains_stale_or_missing_ones(store: EventStore,
                                                                            tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    tenants = [TENANT, "hanoi-bavi", "danang"]
    first = {r.tenant: r for r in retrain_due(store, registry, tenants, CONFIG, now=NOW)}
    assert first[TENANT].retrained and first[TENANT].reason == "no model yet" and first[TENANT].models == 4
    bavi = first["hanoi-bavi"]  # ten minutes: too little history for a model
    assert bavi.retrained and bavi.models == 0
    assert all(o.status.startswith("cold start: hanoi-bavi/") for o in bavi.outcomes)
    assert first["danang"].models == 0
    revision = registry.revision()
    again = {r.tenant: r for r in retrain_due(store, registry, [TENANT], CONFIG, now=NOW + timedelta(days=6))}
    assert not again[TENANT].retrained and registry.revision() == revision
    later = NOW + timedelta(days=7)
    assert due_reason(registry, TENANT, CONFIG, later) == "newest model is 7 days old (retrain every 7)"
    [stale] = retrain_due(store, registry, [TENANT], CONFIG, now=later)
    # DAY1 is now outside the 3-day window: the kinds are cold, and the previous models stay.
    assert stale.retrained and stale.models == 0 and registry.revision() == revision
    [forced] = retrain_due(store, registry, [TENANT], MlConfig(training_window=timedelta(days=30)), now=later,
                           force=True)
    assert forced.reason == "forced" and forced.models == 4 and registry.revision() != revision
