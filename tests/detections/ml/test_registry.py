"""ModelRegistry: atomic saves, a revision that follows the files, refusals as data, training time."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np

from detections.ml import FEATURE_NAMES, AnomalyModel, EntityKind, ModelRegistry, ModelSpec, train_model, trained_at
from tests.detections.ml.factory import DAY1, TENANT


def flow_model(tenant: str = TENANT, seed: int = 0, at: str = DAY1.isoformat()) -> AnomalyModel:
    rows = np.random.default_rng(seed).lognormal(3.0, 0.5, size=(80, len(FEATURE_NAMES[EntityKind.FLOW_SOURCE])))
    return train_model(rows, FEATURE_NAMES[EntityKind.FLOW_SOURCE], ModelSpec(), tenant=tenant,
                       kind=EntityKind.FLOW_SOURCE.value, info={"trained_at": at})


def test_save_replaces_in_place_and_the_revision_follows(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    assert registry.revision() == ()
    assert registry.load(TENANT, EntityKind.FLOW_SOURCE) is None  # cold start: no file
    path = registry.save(flow_model())
    assert path == tmp_path / "models" / TENANT / "flow_source.skops"
    first = registry.revision()
    assert [name for name, _, _ in first] == [f"{TENANT}/flow_source.skops", f"{TENANT}/flow_source.skops.sha256"]
    later = (DAY1 + timedelta(days=7)).isoformat()
    registry.save(flow_model(seed=1, at=later))
    assert registry.revision() != first
    assert sorted(p.name for p in path.parent.iterdir()) == ["flow_source.skops", "flow_source.skops.sha256"]
    model = registry.load(TENANT, EntityKind.FLOW_SOURCE)
    assert model is not None and trained_at(model) == DAY1 + timedelta(days=7)
    assert registry.newest_training(TENANT) == DAY1 + timedelta(days=7)
    assert registry.newest_training("danang") is None


def test_a_bad_file_is_refused_as_data_and_the_others_load(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    registry.save(flow_model())
    bad = registry.save(flow_model(tenant="danang"))
    bad.write_bytes(bad.read_bytes()[:-1] + bytes([bad.read_bytes()[-1] ^ 1]))
    loaded = registry.load_current([TENANT, "danang", "hue"])
    assert list(loaded.models) == [(TENANT, EntityKind.FLOW_SOURCE)]
    [(key, reason)] = loaded.refused.items()
    assert key == ("danang", EntityKind.FLOW_SOURCE)
    assert "flow_source.skops" in reason and "checksum mismatch" in reason
