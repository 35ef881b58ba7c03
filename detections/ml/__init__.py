"""ML anomaly detection: per-tenant baselines of entity windows, scored with reasons.

Modules, in flow order:
- features: ECS events -> per-entity window rows (auth, flow, DNS), one pipeline for training and scoring.
- models: rows -> fitted detector (IsolationForest by default), scaler, threshold from a target alert
  rate; skops files with a checksum, format version and feature-name check (`ModelError`, `ColdStart`).
- explain: a row and its model's baseline -> the features that departed most (`Reason`); drift per feature.
- score: `MlDetector`, events in, `Alert`s of kind ML out, with reasons and severity from the margin.
- nslkdd: the NSL-KDD benchmark's CSVs -> labelled matrices (evaluation only).
"""

from detections.ml.explain import Drift, Reason, describe, drift, explain
from detections.ml.features import (
    ENTITY_FIELDS,
    FEATURE_NAMES,
    EntityKind,
    FeatureRow,
    WindowFeaturizer,
    kinds_of,
    shannon_entropy,
    split_domain,
)
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
    train_model,
)
from detections.ml.score import Finding, MlDetector, load_current_models, rule_id_for, severity_for

__all__ = [
    "DETECTORS",
    "ENTITY_FIELDS",
    "FEATURE_NAMES",
    "SCALERS",
    "AnomalyModel",
    "Baseline",
    "ColdStart",
    "Drift",
    "EntityKind",
    "FeatureRow",
    "Finding",
    "MlDetector",
    "ModelError",
    "ModelSpec",
    "Reason",
    "TrainOutcome",
    "WindowFeaturizer",
    "describe",
    "drift",
    "explain",
    "kinds_of",
    "load_current_models",
    "load_model",
    "model_path",
    "rule_id_for",
    "save_model",
    "severity_for",
    "shannon_entropy",
    "split_domain",
    "train_kinds",
    "train_model",
]
