"""The model registry: each tenant's current model per entity kind, as checked skops files.

Stage: between training (training.py, `govsoc ml train`) and scoring (feed.py, score.py). In:
fitted `AnomalyModel`s. Out: files `<models_dir>/<tenant>/<kind>.skops` with their `.sha256`
companions (models.save_model / load_model), a `revision()` that changes whenever any of them
changes, and per (tenant, kind) the model, the reason it was refused, or nothing (cold start).

Invariants:
- `save` replaces a model atomically: the file and its checksum are written beside the target and
  renamed into place, model first. A reader between the two renames sees a checksum mismatch and
  keeps what it had (the feed retries at its next check), never a half-written file.
- `revision()` costs one directory walk (stat only): the feed may call it every few seconds.
- Loading checks the checksum and the feature names (`load_model`); a refusal is data here
  (`Loaded.refused`), so one bad file never stops the other tenants' models.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from detections.ml.features import FEATURE_NAMES, EntityKind
from detections.ml.models import AnomalyModel, ModelError, load_model, model_path, save_model

Key = tuple[str, EntityKind]


@dataclass(frozen=True, slots=True)
class Loaded:
    """The models found for some tenants, and the files refused with the reason."""

    models: dict[Key, AnomalyModel] = field(default_factory=dict)
    refused: dict[Key, str] = field(default_factory=dict)


class ModelRegistry:
    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir

    def path(self, tenant: str, kind: EntityKind | str) -> Path:
        return model_path(self.models_dir, tenant, EntityKind(kind).value)

    def save(self, model: AnomalyModel) -> Path:
        """Write `model` as its tenant's current model of its kind (atomic replace, see the module)."""
        target = self.path(model.tenant, model.kind)
        staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        save_model(model, staging)
        digest = hashlib.sha256(staging.read_bytes()).hexdigest()
        checksum = target.with_name(target.name + ".sha256")
        staged_checksum = staging.with_name(staging.name + ".sha256")
        staged_checksum.write_text(f"{digest}  {target.name}\n", encoding="utf-8")
        os.replace(staging, target)
        os.replace(staged_checksum, checksum)
        return target

    def revision(self) -> tuple[tuple[str, int, int], ...]:
        """(relative path, mtime ns, size) of every model and checksum file: equal means unchanged."""
        if not self.models_dir.is_dir():
            return ()
        found = []
        for path in self.models_dir.glob("*/*.skops*"):
            if path.name.startswith("."):
                continue
            try:
                stat = path.stat()
            except OSError:  # replaced between the listing and the stat: the next check sees it
                continue
            found.append((str(path.relative_to(self.models_dir)), stat.st_mtime_ns, stat.st_size))
        return tuple(sorted(found))

    def load(self, tenant: str, kind: EntityKind) -> AnomalyModel | None:
        """The current model, None without a file (cold start); raises `ModelError` for a bad file."""
        path = self.path(tenant, kind)
        if not path.is_file():
            return None
        return load_model(path, FEATURE_NAMES[kind])

    def load_current(self, tenants: Iterable[str]) -> Loaded:
        """Every (tenant, kind) model of `tenants` that loads; the refused ones with their reason."""
        loaded = Loaded()
        for tenant in sorted(set(tenants)):
            for kind in EntityKind:
                try:
                    model = self.load(tenant, kind)
                except ModelError as e:
                    loaded.refused[(tenant, kind)] = str(e)
                    continue
                if model is not None:
                    loaded.models[(tenant, kind)] = model
        return loaded

    def newest_training(self, tenant: str) -> datetime | None:
        """When the tenant's most recently trained model was trained (None: no loadable model)."""
        times = [trained_at(m) for m in self.load_current([tenant]).models.values()]
        known = [t for t in times if t is not None]
        return max(known, default=None)


class SharedRegistry(ModelRegistry):
    """A registry whose `load_current` reads each revision of the files once for the process.

    A scale-out detect worker runs one `MlFeed` per partition it owns (each checkpointed with its
    partition); they all score with the same models, so each revision is loaded (and held in
    memory) once, not once per partition. Feeds copy the dicts of the shared `Loaded` and never
    change the models, so sharing them is safe."""

    def __init__(self, models_dir: Path) -> None:
        super().__init__(models_dir)
        self._cached: tuple[object, Loaded] | None = None

    def load_current(self, tenants: Iterable[str]) -> Loaded:
        key = (self.revision(), tuple(sorted(set(tenants))))
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        loaded = super().load_current(key[1])
        self._cached = (key, loaded)
        return loaded


def trained_at(model: AnomalyModel) -> datetime | None:
    """The model's `info["trained_at"]` as an aware datetime, None when missing or unreadable."""
    value = model.info.get("trained_at")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
