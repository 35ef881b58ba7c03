"""Feature matrices -> fitted anomaly models, their thresholds, and their files.

Stage: training (from a baseline of feature rows, see features.py, or any tabular data such as
NSL-KDD) and loading for scoring (score.py). In: a matrix of baseline rows and its feature names.
Out: `AnomalyModel`, saved with skops next to a `.sha256` file.

Invariants:
- One preprocessing for training and scoring: signed log1p, then the scaler fitted on the baseline,
  then the detector (`DETECTORS`, IsolationForest by default). Scores are "higher is more anomalous":
  the larger of the detector's margin and the largest single-feature deviation's (see `Baseline`).
- The threshold is the (1 - target_alert_rate) quantile of the baseline's scores, never set by hand;
  about `target_alert_rate` of baseline-like windows score above it.
- One model per tenant and entity kind (`model_path`). Too little baseline (`min_rows`) raises
  `ColdStart` with the counts, not a model that alerts on noise.
- Files are skops (never pickle); `load_model` refuses a file whose SHA-256 differs from its
  `.sha256` companion, with types outside `TRUSTED_TYPES`, of another format version, whose
  pipeline is not a registered scaler + detector, or whose feature names differ from the scorer's.
  Every refusal is a `ModelError` naming the file.
- Deterministic for a fixed `random_state`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import skops.io as sio
from sklearn.covariance import EllipticEnvelope
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import RobustScaler, StandardScaler

from config.errors import GovsocError, SourceLocation
from detections.ml.features import FEATURE_NAMES, EntityKind, FeatureRow

FORMAT_VERSION = 1
# Least distance between a baseline's median score and its threshold, per score (see `_anchor`):
# detector scores (IsolationForest's lie in 0..1), largest deviations (in spreads), combined margins.
DETECTOR_FLOOR = 1e-3
DEVIATION_FLOOR = 1.0
COMBINED_FLOOR = 0.1
Matrix = npt.NDArray[np.float64]
Anchoring = Literal["per_feature", "largest"]
ANCHORINGS: tuple[Anchoring, ...] = ("per_feature", "largest")


class ModelError(GovsocError):
    """A model cannot be trained, saved or loaded; names the file and the reason."""


class ColdStart(ModelError):
    """Too little baseline to learn from; the tenant and kind get no model (and raise no ML alerts)."""


def _isolation_forest(random_state: int, rows: int) -> Any:
    # 1,024 samples per tree, not the usual 256: on NSL-KDD KDDTest+ the detector alone goes from 0.958
    # to 0.963 ROC AUC (at 1,024: 0.9691 with the deviation guard anchored per feature, 2026-11-23);
    # 100 trees score as well as 200 there and load twice as fast (bench/ml_nslkdd.py).
    return IsolationForest(n_estimators=100, max_samples=min(1024, rows), random_state=random_state)


def _local_outlier_factor(random_state: int, rows: int) -> Any:
    return LocalOutlierFactor(n_neighbors=min(20, rows - 1), novelty=True)


def _elliptic_envelope(random_state: int, rows: int) -> Any:
    return EllipticEnvelope(support_fraction=0.9, random_state=random_state)


DETECTORS: Mapping[str, Callable[[int, int], Any]] = {
    "isolation_forest": _isolation_forest,
    "local_outlier_factor": _local_outlier_factor,
    "elliptic_envelope": _elliptic_envelope,
}
"""Detector name (as written in configuration and on the command line) -> factory(random_state, rows)."""

SCALERS: Mapping[str, Callable[[], Any]] = {"robust": RobustScaler, "standard": StandardScaler}

TRUSTED_TYPES = (
    "sklearn.pipeline.Pipeline", "sklearn.preprocessing._data.RobustScaler",
    "sklearn.preprocessing._data.StandardScaler", "sklearn.ensemble._iforest.IsolationForest",
    "sklearn.tree._classes.ExtraTreeRegressor", "sklearn.tree._tree.Tree",
    "sklearn.neighbors._lof.LocalOutlierFactor", "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree", "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.covariance._elliptic_envelope.EllipticEnvelope",
    "numpy.random._mt19937.MT19937", "numpy.random.mtrand.RandomState", "builtins.slice",
)
"""The only types a model file may hold; anything else is refused before it is built."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """How to train: detector and scaler by name, the target alert rate, the baseline floor."""

    detector: str = "isolation_forest"
    scaler: str = "robust"
    target_alert_rate: float = 0.01
    random_state: int = 0
    min_rows: int = 50
    deviation_guard: bool = True  # also score the largest single-feature deviation (see `Baseline`)
    deviation_anchoring: Anchoring = "per_feature"  # how that deviation is measured (see `Baseline`)

    def check(self) -> None:
        if self.detector not in DETECTORS:
            raise ModelError(f"unknown detector {self.detector!r}; known: {', '.join(sorted(DETECTORS))}")
        if self.scaler not in SCALERS:
            raise ModelError(f"unknown scaler {self.scaler!r}; known: {', '.join(sorted(SCALERS))}")
        if self.deviation_anchoring not in ANCHORINGS:
            raise ModelError(f"unknown deviation anchoring {self.deviation_anchoring!r}; "
                             f"known: {', '.join(ANCHORINGS)}")
        if not 0.0 < self.target_alert_rate < 0.5:
            raise ModelError(f"target alert rate {self.target_alert_rate} is not in (0, 0.5)")


@dataclass(frozen=True, slots=True)
class Baseline:
    """What normal looked like: per-feature typical value and spread, and how scores were calibrated.

    The model's score is the larger of two margins, each 0 at its baseline median and 1 at its
    (1 - target rate) quantile: the detector's score, and the largest robust deviation of any one
    feature (in log space). The second catches what trees cannot: a value beyond anything in the
    baseline, or a change in a feature that never varied (IsolationForest cannot split on it).

    Per-feature anchoring (`anchors_above` / `anchors_below`, the default since 2026-11-23): each
    feature's deviation is first divided by that feature's own (1 - target rate) quantile of baseline
    deviations on the same side of the median, so "far" means far for that feature, in that
    direction. Without it (`"largest"`, and files written before), the raw largest deviation is
    anchored as a whole, and its tail is set by the noisiest feature: a 6-11x excess of bytes out
    over anything seen stayed under it (bench/ml_own.py, exfiltration).
    """

    median: tuple[float, ...]  # raw feature values: what explanations show
    scale: tuple[float, ...]  # IQR, else 1.4826 * MAD, else std, else 10% of the median: never zero
    log_median: tuple[float, ...]  # the same after `preprocess`, for the deviation margin
    log_scale: tuple[float, ...]
    detector_anchor: tuple[float, float]  # (median, quantile) of the detector's baseline scores
    deviation_anchor: tuple[float, float]  # (median, quantile) of the baseline's largest deviations
    score_median: float  # of the combined score on the baseline
    threshold: float  # its (1 - target rate) quantile: the alert threshold
    # Per feature, the (1 - rate) quantile of its deviations above the median, then below; () = "largest".
    anchors_above: tuple[float, ...] = ()
    anchors_below: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class AnomalyModel:
    """A fitted pipeline with its threshold, the names of its features and where it came from."""

    tenant: str
    kind: str
    feature_names: tuple[str, ...]
    spec: ModelSpec
    pipeline: Any
    baseline: Baseline
    info: Mapping[str, Any] = field(default_factory=dict)  # rows, trained_at, data_sha256, window

    def score(self, rows: Matrix) -> npt.NDArray[np.float64]:
        """Anomaly scores, higher is more anomalous; above `baseline.threshold` is an alert."""
        prepared = preprocess(rows)
        detector = -np.asarray(self.pipeline.score_samples(prepared), dtype=np.float64)
        return self._combine(detector, prepared)

    def margin(self, score: float) -> float:
        """How far past the threshold, in units of (threshold - baseline median score)."""
        spread = max(self.baseline.threshold - self.baseline.score_median, COMBINED_FLOOR)
        return (score - self.baseline.threshold) / spread

    def deviation(self, prepared: Matrix) -> npt.NDArray[np.float64]:
        """Per row, the largest deviation, each feature's in units of its own anchor when there are anchors."""
        baseline = self.baseline
        if baseline.anchors_above:
            return anchored_deviation(prepared, baseline.log_median, baseline.log_scale,
                                      (baseline.anchors_above, baseline.anchors_below))
        return max_deviation(prepared, baseline.log_median, baseline.log_scale)

    def _combine(self, detector: npt.NDArray[np.float64], prepared: Matrix) -> npt.NDArray[np.float64]:
        combined = _anchored(detector, self.baseline.detector_anchor)
        if self.spec.deviation_guard:
            deviation = self.deviation(prepared)
            combined = np.maximum(combined, _anchored(deviation, self.baseline.deviation_anchor))
        return combined


def _anchored(scores: npt.NDArray[np.float64], anchor: tuple[float, float]) -> npt.NDArray[np.float64]:
    low, high = anchor
    return (scores - low) / max(high - low, 1e-9)


def _anchor(scores: npt.NDArray[np.float64], rate: float, floor: float) -> tuple[float, float]:
    """(median, quantile) with at least `floor` between them: a baseline of identical rows has no spread."""
    low = float(np.median(scores))
    return low, max(float(np.quantile(scores, 1.0 - rate)), low + floor)


def preprocess(rows: Matrix) -> Matrix:
    """Signed log1p: heavy-tailed counts and bytes become comparable before scaling."""
    data = np.nan_to_num(np.asarray(rows, dtype=np.float64), nan=0.0, posinf=1e12, neginf=-1e12)
    return np.sign(data) * np.log1p(np.abs(data))


def robust_scale(rows: Matrix) -> npt.NDArray[np.float64]:
    """Per-feature spread that is never zero (see `Baseline.scale`)."""
    q1, median, q3 = np.percentile(rows, [25, 50, 75], axis=0)
    scale = q3 - q1
    mad = 1.4826 * np.median(np.abs(rows - median), axis=0)
    std = np.std(rows, axis=0)
    # A feature that never varied gets a small spread: any change in it is remarkable.
    for fallback in (mad, std, np.maximum(0.1 * np.abs(median), 1e-3)):
        scale = np.where(scale > 1e-9, scale, fallback)  # not `> 0`: the std of a constant is rounding noise
    return np.asarray(scale, dtype=np.float64)


def max_deviation(rows: Matrix, median: Sequence[float] | Matrix,
                  scale: Sequence[float] | Matrix) -> npt.NDArray[np.float64]:
    """Per row, the largest |value - median| / scale over the features."""
    deviation = np.abs(rows - np.asarray(median)) / np.asarray(scale)
    return np.asarray(deviation.max(axis=1), dtype=np.float64)


def anchored_deviation(rows: Matrix, median: Sequence[float] | Matrix, scale: Sequence[float] | Matrix,
                       anchors: tuple[Sequence[float] | Matrix, Sequence[float] | Matrix]) -> npt.NDArray[np.float64]:
    """Per row, the largest deviation in units of its feature's anchor on that side of the median.

    Sides apart: a feature whose low values vary a lot (windows with one small flow) keeps a sharp
    anchor for its high values (bytes out far above anything seen), and the other way round."""
    deviation = (rows - np.asarray(median)) / np.asarray(scale)
    above = np.maximum(deviation, 0.0) / np.asarray(anchors[0])
    below = np.maximum(-deviation, 0.0) / np.asarray(anchors[1])
    return np.asarray(np.maximum(above, below).max(axis=1), dtype=np.float64)


def train_model(rows: Matrix, feature_names: Sequence[str], spec: ModelSpec, *, tenant: str, kind: str,
                info: Mapping[str, Any] | None = None) -> AnomalyModel:
    """Fit on baseline `rows` (n x len(feature_names)); raises `ColdStart` under `spec.min_rows`."""
    spec.check()
    data = np.asarray(rows, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != len(feature_names):
        raise ModelError(f"{tenant}/{kind}: rows have shape {data.shape}, expected (n, {len(feature_names)})")
    if data.shape[0] < spec.min_rows:
        raise ColdStart(f"{tenant}/{kind}: too little history: {data.shape[0]} windows, need {spec.min_rows}")
    detector = DETECTORS[spec.detector](spec.random_state, data.shape[0])
    pipeline = Pipeline([("scale", SCALERS[spec.scaler]()), ("detect", detector)])
    prepared = preprocess(data)
    pipeline.fit(prepared)
    detector_scores = _training_scores(pipeline, prepared)
    baseline = _calibrate(data, prepared, detector_scores, spec)
    details = {"rows": int(data.shape[0]), "trained_at": datetime.now(UTC).isoformat(),
               "data_sha256": hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest(), **(info or {})}
    model = AnomalyModel(tenant, kind, tuple(feature_names), spec, pipeline, baseline, details)
    combined = model._combine(detector_scores, prepared)
    rate = spec.target_alert_rate
    low, threshold = _anchor(combined, rate, COMBINED_FLOOR)
    final = dataclasses.replace(baseline, score_median=low, threshold=threshold)
    return dataclasses.replace(model, baseline=final)


def _calibrate(data: Matrix, prepared: Matrix, detector_scores: npt.NDArray[np.float64], spec: ModelSpec) -> Baseline:
    """Everything but the final threshold (which needs the anchors this sets)."""
    rate = spec.target_alert_rate
    log_median = np.median(prepared, axis=0)
    log_scale = robust_scale(prepared)
    deviations = (prepared - log_median) / log_scale
    # Per feature and side: the (1 - rate) quantile of its deviations, never under DEVIATION_FLOOR spreads.
    above = np.maximum(np.quantile(np.maximum(deviations, 0.0), 1.0 - rate, axis=0), DEVIATION_FLOOR)
    below = np.maximum(np.quantile(np.maximum(-deviations, 0.0), 1.0 - rate, axis=0), DEVIATION_FLOOR)
    per_feature = spec.deviation_anchoring == "per_feature"
    largest = (anchored_deviation(prepared, log_median, log_scale, (above, below)) if per_feature
               else max_deviation(prepared, log_median, log_scale))
    return Baseline(
        median=_floats(np.median(data, axis=0)), scale=_floats(robust_scale(data)),
        log_median=_floats(log_median), log_scale=_floats(log_scale),
        detector_anchor=_anchor(detector_scores, rate, DETECTOR_FLOOR),
        deviation_anchor=_anchor(largest, rate, DEVIATION_FLOOR), score_median=0.0, threshold=1.0,
        anchors_above=_floats(above) if per_feature else (), anchors_below=_floats(below) if per_feature else (),
    )


def _floats(values: npt.NDArray[np.float64]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _training_scores(pipeline: Any, prepared: Matrix) -> npt.NDArray[np.float64]:
    """Baseline scores; LOF's own training scores, since its `score_samples` is for unseen data."""
    detector = pipeline.named_steps["detect"]
    if isinstance(detector, LocalOutlierFactor):
        return -np.asarray(detector.negative_outlier_factor_, dtype=np.float64)
    return -np.asarray(pipeline.score_samples(prepared), dtype=np.float64)


def model_path(models_dir: Path, tenant: str, kind: str) -> Path:
    """Where the current model of a tenant and kind lives: `<models_dir>/<tenant>/<kind>.skops`."""
    return models_dir / tenant / f"{kind}.skops"


def save_model(model: AnomalyModel, path: Path) -> Path:
    """Write the model with skops and its SHA-256 beside it (`<path>.sha256`); returns `path`."""
    spec = model.spec
    payload = {
        "format_version": FORMAT_VERSION, "tenant": model.tenant, "kind": model.kind,
        "feature_names": list(model.feature_names), "pipeline": model.pipeline,
        "spec": {"detector": spec.detector, "scaler": spec.scaler, "target_alert_rate": spec.target_alert_rate,
                 "random_state": spec.random_state, "min_rows": spec.min_rows,
                 "deviation_guard": spec.deviation_guard, "deviation_anchoring": spec.deviation_anchoring},
        "baseline": {key: list(value) if isinstance(value, tuple) else value
                     for key, value in dataclasses.asdict(model.baseline).items()},
        "info": dict(model.info),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(payload, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    _checksum_path(path).write_text(f"{digest}  {path.name}\n", encoding="utf-8")
    return path


def _checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def load_model(path: Path, expected_features: Sequence[str] | None = None) -> AnomalyModel:
    """Read a model written by `save_model`; raises `ModelError` naming the file and the reason."""
    where = SourceLocation(path=str(path))
    try:
        data = path.read_bytes()
        recorded = _checksum_path(path).read_text(encoding="utf-8").split()[0]
    except (OSError, IndexError) as e:
        raise ModelError(f"cannot read the model or its checksum file: {e}", where) from e
    if hashlib.sha256(data).hexdigest() != recorded:
        raise ModelError("checksum mismatch: the model file was altered or truncated; retrain it", where)
    untrusted = [t for t in sio.get_untrusted_types(data=data) if t not in TRUSTED_TYPES]
    if untrusted:
        raise ModelError(f"refusing untrusted types in the model file: {', '.join(untrusted)}", where)
    try:
        payload = sio.load(io.BytesIO(data), trusted=list(TRUSTED_TYPES))
    except Exception as e:  # skops raises many kinds on a malformed file; all mean "not a model"
        raise ModelError(f"not a readable model file: {e}", where) from e
    return _from_payload(payload, expected_features, where)


def _from_payload(payload: Any, expected: Sequence[str] | None, where: SourceLocation) -> AnomalyModel:
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        found = payload.get("format_version") if isinstance(payload, dict) else None
        raise ModelError(f"model format version {found!r}, this govsoc reads {FORMAT_VERSION}; retrain", where)
    _check_pipeline(payload.get("pipeline"), where)
    try:
        names = tuple(payload["feature_names"])
        fields: dict[str, Any] = {key: tuple(value) if isinstance(value, list) else value
                                  for key, value in payload["baseline"].items()}
        spec = ModelSpec(**{"deviation_anchoring": "largest", **payload["spec"]})  # files before it: largest
        model = AnomalyModel(payload["tenant"], payload["kind"], names, spec,
                             payload["pipeline"], Baseline(**fields), payload["info"])
    except (KeyError, TypeError, AttributeError) as e:
        raise ModelError(f"not a govsoc model ({type(e).__name__}: {e}); retrain", where) from e
    if expected is not None and names != tuple(expected):
        missing = [n for n in expected if n not in names]
        extra = [n for n in names if n not in expected]
        raise ModelError(
            f"feature names differ from this pipeline's (missing {missing or 'none'}, unexpected {extra or 'none'}"
            f"{', or another order' if not missing and not extra else ''}); retrain the model", where)
    return model


def _check_pipeline(pipeline: Any, where: SourceLocation) -> None:
    """Only a scaler and a detector of the registries: skops trusts every scikit-learn type by default."""
    steps = getattr(pipeline, "steps", None)
    if not isinstance(pipeline, Pipeline) or not isinstance(steps, list) or len(steps) != 2:
        raise ModelError(f"the model's pipeline is a {type(pipeline).__name__}, not scaler + detector", where)
    scaler, detector = steps[0][1], steps[1][1]
    if not isinstance(scaler, RobustScaler | StandardScaler) or not isinstance(
            detector, IsolationForest | LocalOutlierFactor | EllipticEnvelope):
        raise ModelError(f"unexpected model steps: {type(scaler).__name__}, {type(detector).__name__}", where)


@dataclass(frozen=True, slots=True)
class TrainOutcome:
    """Per entity kind: the model trained, or why there is none (cold start)."""

    kind: str
    rows: int
    model: AnomalyModel | None = None
    status: str = "trained"


def train_kinds(rows: Sequence[FeatureRow], spec: ModelSpec, *, tenant: str,
                info: Mapping[str, Any] | None = None) -> list[TrainOutcome]:
    """One model per entity kind from one tenant's rows; kinds with too little history get a status."""
    matrices = {kind: np.array([r.values for r in rows if r.tenant == tenant and r.kind is kind],
                               dtype=np.float64).reshape(-1, len(names))
                for kind, names in FEATURE_NAMES.items()}
    return train_matrices(matrices, spec, tenant=tenant, info=info)


def train_matrices(matrices: Mapping[EntityKind, Matrix], spec: ModelSpec, *, tenant: str,
                   info: Mapping[str, Any] | None = None) -> list[TrainOutcome]:
    """`train_kinds` on one feature matrix per kind (rows in closing order, `FEATURE_NAMES` columns),
    as training.TrainingSet holds them; a kind missing from `matrices` has no rows (cold start)."""
    outcomes: list[TrainOutcome] = []
    for kind, names in FEATURE_NAMES.items():
        matrix = matrices.get(kind)
        matrix = np.empty((0, len(names))) if matrix is None else np.asarray(matrix, dtype=np.float64)
        try:
            model = train_model(matrix, names, spec, tenant=tenant, kind=kind.value, info=info)
        except ColdStart as e:
            outcomes.append(TrainOutcome(kind.value, matrix.shape[0], None, f"cold start: {e.reason}"))
            continue
        outcomes.append(TrainOutcome(kind.value, matrix.shape[0], model))
    return outcomes
