"""ML anomaly detection: per-tenant baselines of entity windows, scored with reasons.

Modules, in flow order:
- config: `MlConfig`, windows, registry checks, retraining period and window, the model choice.
- fields: reading ECS fields off events without raising; DNS name helpers; the asset enrichment set.
- windows: one entity's open window as running sums and distinct values (never its events), with its JSON form.
- features: ECS events -> per-entity window rows (auth, flow, DNS), one pipeline for training and scoring.
- models: rows -> fitted detector (IsolationForest by default), scaler, threshold from a target alert
  rate; skops files with a checksum, format version and feature-name check (`ModelError`, `ColdStart`).
- explain: a row and its model's baseline -> the features that departed most (`Reason`); drift per feature.
- registry: `ModelRegistry`, the current model per tenant and kind on disk, atomic saves, a revision;
  `SharedRegistry` loads each revision once for all the feeds of a process.
- score: `MlDetector`, events in, `Alert`s of kind ML out, with reasons and severity from the margin.
- training: from the event store to the registry, `retrain_due` for scheduled retraining.
- feed: `MlFeed`, online scoring in the detect step, models reloaded when the registry changes,
  time-driven flush, cold start and drift per feature in `status()`, `snapshot()` / `restore()` for checkpoints.
- nslkdd: the NSL-KDD benchmark's CSVs -> labelled matrices (evaluation only).
"""

from detections.ml.config import MlConfig
from detections.ml.explain import Drift, Reason, describe, drift, explain
from detections.ml.features import (
    ENTITY_FIELDS,
    FEATURE_NAMES,
    TRAINING_LIMITS,
    EntityKind,
    FeatureRow,
    WindowFeaturizer,
    WindowLimits,
    kinds_of,
    shannon_entropy,
    split_domain,
)
from detections.ml.feed import SNAPSHOT_VERSION, KindStatus, MlFeed, MlStateError
from detections.ml.models import (
    DETECTORS,
    SCALERS,
    AnomalyModel,
    Baseline,
    ColdStart,
    ModelError,
    ModelSpec,
    TrainOutcome,
    load_model,
    model_path,
    save_model,
    train_kinds,
    train_matrices,
    train_model,
)
from detections.ml.registry import Loaded, ModelRegistry, SharedRegistry, trained_at
from detections.ml.score import Finding, MlDetector, load_current_models, rule_id_for, severity_for
from detections.ml.training import (
    RetrainResult,
    TrainingSet,
    collect,
    due_reason,
    retrain_due,
    stored_pages,
    train_and_save,
    train_from_store,
)

__all__ = [
    "DETECTORS",
    "ENTITY_FIELDS",
    "FEATURE_NAMES",
    "SCALERS",
    "SNAPSHOT_VERSION",
    "TRAINING_LIMITS",
    "AnomalyModel",
    "Baseline",
    "ColdStart",
    "Drift",
    "EntityKind",
    "FeatureRow",
    "Finding",
    "KindStatus",
    "Loaded",
    "MlConfig",
    "MlDetector",
    "MlFeed",
    "MlStateError",
    "ModelError",
    "ModelRegistry",
    "SharedRegistry",
    "ModelSpec",
    "Reason",
    "RetrainResult",
    "TrainOutcome",
    "TrainingSet",
    "WindowFeaturizer",
    "WindowLimits",
    "collect",
    "describe",
    "drift",
    "due_reason",
    "explain",
    "kinds_of",
    "load_current_models",
    "load_model",
    "model_path",
    "retrain_due",
    "rule_id_for",
    "save_model",
    "severity_for",
    "shannon_entropy",
    "split_domain",
    "stored_pages",
    "train_and_save",
    "train_from_store",
    "train_kinds",
    "train_matrices",
    "train_model",
    "trained_at",
]
