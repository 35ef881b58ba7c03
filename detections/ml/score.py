"""Events -> ML alerts: windows scored with each tenant's current model, with the reasons.

Stage: the last of detections/ml, run by the detection worker beside the Sigma engine (and by
`govsoc ml score` offline). In: batches of events in arrival order. Out: `Alert`s of kind
`DetectionKind.ML`, the same records Sigma emits, so incidents group them the same way.

Invariants:
- Scoring uses features.WindowFeaturizer, the pipeline training used; a model whose feature names
  differ was refused at load (models.load_model).
- A row is scored only by the model of its (tenant, entity kind); with none (cold start) it is
  counted in `unscored` and raises nothing.
- Deterministic: an alert's id is (tenant, rule id, entity, first event id of the window), so
  scoring the same events again yields the same ids (an idempotent upsert downstream).
- `event_ids` holds at most `max_event_ids` ids of the window, the first ones.
- Severity comes from the margin past the threshold (`SEVERITY_MARGINS`), never from the rule alone.
- Not thread-safe: one detector per worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detections.ml.explain import Reason, describe, explain
from detections.ml.features import FEATURE_NAMES, EntityKind, FeatureRow, WindowFeaturizer
from detections.ml.models import AnomalyModel, load_model, model_path
from pipeline.records import Alert, DetectionKind, Event, Severity

RULE_PREFIX = "ml."
TITLES: Mapping[EntityKind, str] = {
    EntityKind.AUTH_SOURCE: "Unusual authentication activity from a source",
    EntityKind.AUTH_USER: "Unusual authentication activity for a user",
    EntityKind.FLOW_SOURCE: "Unusual network flows from a host",
    EntityKind.DNS_CLIENT: "Unusual DNS queries from a client",
}
SEVERITY_MARGINS = ((3.0, Severity.CRITICAL), (1.5, Severity.HIGH), (0.5, Severity.MEDIUM))
"""Margin (how far past the threshold, in units of threshold - baseline median score) -> severity;
below the smallest margin an alert is LOW."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One anomalous window: the alert, and the score and reasons behind it as data."""

    alert: Alert
    row: FeatureRow
    score: float
    threshold: float
    reasons: tuple[Reason, ...]


def rule_id_for(kind: EntityKind) -> str:
    return f"{RULE_PREFIX}{kind.value}"


def severity_for(margin: float) -> Severity:
    for floor, severity in SEVERITY_MARGINS:
        if margin >= floor:
            return severity
    return Severity.LOW


def load_current_models(models_dir: Path, tenants: Iterable[str]) -> list[AnomalyModel]:
    """The saved model of every (tenant, kind) that has one, each checked against `FEATURE_NAMES`.

    A (tenant, kind) without a file has no model (cold start); a bad file raises `ModelError`.
    """
    found: list[AnomalyModel] = []
    for tenant in sorted(set(tenants)):
        for kind in EntityKind:
            path = model_path(models_dir, tenant, kind.value)
            if path.is_file():
                found.append(load_model(path, FEATURE_NAMES[kind]))
    return found


class MlDetector:
    """Current models by (tenant, entity kind), fed events, returning alerts for anomalous windows."""

    def __init__(self, models: Iterable[AnomalyModel], featurizer: WindowFeaturizer | None = None, *,
                 top_reasons: int = 3, max_event_ids: int = 100) -> None:
        self.models: dict[tuple[str, EntityKind], AnomalyModel] = {}
        for model in models:
            self.models[(model.tenant, EntityKind(model.kind))] = model
        self.featurizer = featurizer or WindowFeaturizer()
        self.top_reasons = top_reasons
        self.max_event_ids = max_event_ids
        self.unscored = 0
        self.scored = 0

    def process(self, events: Sequence[Event]) -> list[Alert]:
        """Alerts of the windows these events closed; open windows carry over to the next batch."""
        return [f.alert for f in self.score_rows(self.featurizer.add(events))]

    def flush(self) -> list[Alert]:
        """Close and score every open window (end of input)."""
        return [f.alert for f in self.score_rows(self.featurizer.flush())]

    def score_rows(self, rows: Sequence[FeatureRow]) -> list[Finding]:
        """Findings for the rows above their model's threshold, in row order."""
        by_model: dict[tuple[str, EntityKind], list[int]] = {}
        for index, row in enumerate(rows):
            by_model.setdefault((row.tenant, row.kind), []).append(index)
        found: dict[int, Finding] = {}
        for key, indices in by_model.items():
            model = self.models.get(key)
            if model is None:
                self.unscored += len(indices)
                continue
            matrix = np.array([rows[i].values for i in indices], dtype=np.float64)
            self.scored += len(indices)
            for i, score in zip(indices, model.score(matrix), strict=True):
                if score > model.baseline.threshold:
                    found[i] = self._finding(rows[i], model, float(score))
        return [found[i] for i in sorted(found)]

    def _finding(self, row: FeatureRow, model: AnomalyModel, score: float) -> Finding:
        reasons = explain(row.values, FEATURE_NAMES[row.kind], model.baseline, top=self.top_reasons)
        entity = {row.entity_field: row.entity}
        rule_id = rule_id_for(row.kind)
        description = (f"{row.entity_field} {row.entity}, {row.start:%Y-%m-%d %H:%M}-{row.end:%H:%M} UTC: "
                       f"anomaly score {score:.3f} above threshold {model.baseline.threshold:.3f} "
                       f"({model.spec.detector}). Why: {describe(reasons)}")
        alert = Alert(
            id=Alert.make_id(row.tenant, rule_id, entity, row.event_ids[0] if row.event_ids else row.start.isoformat()),
            tenant=row.tenant,
            timestamp=row.last_seen,
            kind=DetectionKind.ML,
            rule_id=rule_id,
            rule_title=TITLES[row.kind],
            severity=severity_for(model.margin(score)),
            event_ids=row.event_ids[: self.max_event_ids],
            entity=entity,
            description=description,
            asset_id=row.asset_id,  # kept by the window: a clock-flushed alert has no batch to look it up in
            security_level=row.security_level,
        )
        return Finding(alert, row, score, model.baseline.threshold, reasons)
