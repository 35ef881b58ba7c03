"""`govsoc ml train` and `govsoc ml score`: per-tenant anomaly models, trained and used offline.

`train` reads one tenant's events (from the configured store over `--since`, or from NDJSON files),
builds window features, fits one model per entity kind and saves each under
`DATA_DIR/models/<tenant>/<kind>.skops` (with its `.sha256`). A kind with too little history gets
no model and says so. `score` runs the saved models over NDJSON event files and prints the alerts
(exit 1 when there are any). `status` lists, per tenant and kind, the saved model and what it was
trained on, or that there is none (cold start: no ML alerts for it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from api.cli.common import ConfigOption, DataDirOption, ExitCode, JsonOption, fail, out_console, settings_from
from config.errors import GovsocError
from config.settings import Settings
from config.tenants import TenantScope, TenantTree
from detections.ml import (
    DETECTORS,
    FEATURE_NAMES,
    EntityKind,
    FeatureRow,
    MlDetector,
    ModelError,
    ModelSpec,
    TrainOutcome,
    WindowFeaturizer,
    load_current_models,
    load_model,
    model_path,
    save_model,
    train_kinds,
)
from pipeline.errors import ParseError
from pipeline.records import Alert, Event
from pipeline.store.base import MAX_LIMIT, EventQuery, EventStore
from pipeline.store.registry import open_event_store

ml_app = typer.Typer(help="ML anomaly models: train per tenant, score event files.", no_args_is_help=True)

DURATION = re.compile(r"^(\d+)([dhm])$")
UNITS = {"d": "days", "h": "hours", "m": "minutes"}
WINDOW_MINUTES = 5


def parse_duration(text: str) -> timedelta:
    """`14d`, `12h`, `30m` -> a timedelta; raises ValueError otherwise."""
    match = DURATION.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"not a duration like 14d, 12h or 30m: {text!r}")
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


def read_event_files(paths: Sequence[Path]) -> tuple[list[Event], int]:
    """Events from NDJSON files (one ECS document a line), oldest first, and how many lines were not events."""
    events: list[Event] = []
    skipped = 0
    for path in paths:
        with path.open("rb") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    events.append(Event.from_json(line))
                except ParseError:
                    skipped += 1
    events.sort(key=lambda e: e.timestamp)
    return events, skipped


def stored_pages(store: EventStore, scope: TenantScope, start: datetime, end: datetime) -> Iterator[list[Event]]:
    """Every event of `scope` in [start, end), oldest first, a page at a time (never all in memory)."""
    offset = 0
    while True:
        page = store.search(scope, EventQuery(start=start, end=end, limit=MAX_LIMIT, offset=offset,
                                              oldest_first=True))
        if page:
            yield page
        if len(page) < MAX_LIMIT:
            return
        offset += len(page)


@dataclass
class TrainingSet:
    """Feature rows of one tenant's events, with what they came from."""

    rows: list[FeatureRow]
    events: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def add(self, featurizer: WindowFeaturizer, events: Sequence[Event]) -> None:
        self.rows.extend(featurizer.add(events))
        self.events += len(events)
        if events:
            self.first = self.first or events[0].timestamp
            self.last = events[-1].timestamp


def _training_set(settings: Settings, tenant: str, since: timedelta, files: Sequence[Path]) -> TrainingSet:
    if tenant not in TenantTree.from_config(settings.tenants):
        fail(f"--tenant: unknown tenant {tenant!r}", ExitCode.USAGE)
    featurizer = WindowFeaturizer(window=timedelta(minutes=WINDOW_MINUTES), timezone=settings.timezone)
    found = TrainingSet([])
    if files:
        found.add(featurizer, [e for e in read_event_files(files)[0] if e.tenant == tenant])
    else:
        # Only the tenant itself: a parent's model must not learn its children's normal.
        scope = TenantScope(root=tenant, tenant_ids=frozenset({tenant}))
        end = datetime.now(UTC)
        store = open_event_store(settings.events_url)
        try:
            for page in stored_pages(store, scope, end - since, end):
                found.add(featurizer, page)
        finally:
            store.close()
    found.rows.extend(featurizer.flush())
    return found


@ml_app.command("train")
def train(
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant whose normal to learn.")],
    since: Annotated[str, typer.Option("--since", help="Training window back from now: 14d, 12h, 30m.")] = "14d",
    from_file: Annotated[list[Path] | None, typer.Option("--from-file", help="NDJSON events instead of the store.")]
    = None,
    detector: Annotated[str, typer.Option(help="One of: " + ", ".join(DETECTORS))] = "isolation_forest",
    target_rate: Annotated[float, typer.Option(help="Share of baseline windows above the threshold.")] = 0.01,
    config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False,
) -> None:
    """Train one model per entity kind for a tenant; exit 3 when no kind had enough history."""
    settings = settings_from(config, data_dir)
    files = from_file or []
    try:
        window = parse_duration(since)
    except ValueError as e:
        fail(f"--since: {e}", ExitCode.USAGE)
    for path in files:
        if not path.is_file():
            fail(f"{path}: no such file", ExitCode.USAGE)
    spec = ModelSpec(detector=detector, target_alert_rate=target_rate)
    try:
        spec.check()
        found = _training_set(settings, tenant, window, files)
        info = {"since": since, "source": "files" if files else "store", "events": found.events,
                "first_event": found.first.isoformat() if found.first else None,
                "last_event": found.last.isoformat() if found.last else None}
        outcomes = train_kinds(found.rows, spec, tenant=tenant, info=info)
        saved = {o.kind: save_model(o.model, model_path(settings.data_dir / "models", tenant, o.kind))
                 for o in outcomes if o.model is not None}
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
    _print_training(outcomes, saved, as_json)
    if not saved:
        fail(f"no model trained for {tenant!r}: too little history ({found.events} events)", ExitCode.RUNTIME)


def _print_training(outcomes: Sequence[TrainOutcome], saved: dict[str, Path], as_json: bool) -> None:
    rows = [{"kind": o.kind, "windows": o.rows, "status": o.status, "path": str(saved.get(o.kind, "")),
             "threshold": o.model.baseline.threshold if o.model else None} for o in outcomes]
    if as_json:
        typer.echo(orjson.dumps({"models": rows}).decode())
        return
    table = Table("kind", "windows", "status", "file")
    for row in rows:
        table.add_row(str(row["kind"]), str(row["windows"]), str(row["status"]), str(row["path"]))
    out_console.print(table)


@ml_app.command("score")
def score(
    paths: Annotated[list[Path], typer.Argument(help="NDJSON event files (one ECS document a line).")],
    config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False,
) -> None:
    """Score event files with the saved models; exit 1 when any window is anomalous."""
    settings = settings_from(config, data_dir)
    for path in paths:
        if not path.is_file():
            fail(f"{path}: no such file", ExitCode.USAGE)
    try:
        events, skipped = read_event_files(paths)
        models = load_current_models(settings.data_dir / "models", {e.tenant for e in events})
        detector = MlDetector(models, WindowFeaturizer(window=timedelta(minutes=WINDOW_MINUTES),
                                                       timezone=settings.timezone))
        alerts = detector.process(events) + detector.flush()
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
    summary = {"events": len(events), "skipped_lines": skipped, "windows_scored": detector.scored,
               "windows_without_model": detector.unscored}
    _print_alerts(alerts, summary, as_json)
    if alerts:
        raise typer.Exit(int(ExitCode.FINDINGS))


def _print_alerts(alerts: Sequence[Alert], summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(orjson.dumps({**summary, "alerts": [orjson.loads(a.to_json()) for a in alerts]}).decode())
        return
    table = Table("severity", "time (UTC)", "tenant", "entity", "why")
    for alert in alerts:
        entity = ", ".join(f"{k}={v}" for k, v in alert.entity.items())
        table.add_row(alert.severity.label, alert.timestamp.strftime("%Y-%m-%d %H:%M:%S"), alert.tenant, entity,
                      alert.description.partition("Why: ")[2])
    out_console.print(table)
    out_console.print(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in summary.items()))


@ml_app.command("status")
def status(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False,
) -> None:
    """Which tenants and kinds have a model, trained when, on how much, with which threshold."""
    settings = settings_from(config, data_dir)
    tenants = [t.id for t in settings.tenants if tenant is None or t.id == tenant]
    if not tenants:
        fail(f"--tenant: unknown tenant {tenant!r}", ExitCode.USAGE)
    rows = [_model_status(settings.data_dir / "models", t, kind) for t in tenants for kind in EntityKind]
    if as_json:
        typer.echo(orjson.dumps({"models": rows}).decode())
        return
    table = Table("tenant", "kind", "status", "detector", "windows", "trained at", "threshold")
    for row in rows:
        table.add_row(*(str(row.get(k, "")) for k in ("tenant", "kind", "status", "detector", "rows", "trained_at",
                                                       "threshold")))
    out_console.print(table)


def _model_status(models_dir: Path, tenant: str, kind: EntityKind) -> dict[str, Any]:
    path = model_path(models_dir, tenant, kind.value)
    row: dict[str, Any] = {"tenant": tenant, "kind": kind.value}
    if not path.is_file():
        return {**row, "status": "no model (cold start: no ML alerts)"}
    try:
        model = load_model(path, FEATURE_NAMES[kind])
    except ModelError as e:
        return {**row, "status": f"refused: {e.reason}"}
    return {**row, "status": "ok", "detector": model.spec.detector, "threshold": round(model.baseline.threshold, 4),
            **{k: v for k, v in model.info.items() if k in ("rows", "trained_at", "data_sha256", "since",
                                                               "first_event", "last_event")}}
