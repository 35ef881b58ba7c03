"""`govsoc ml train|retrain|score|status`: per-tenant anomaly models, trained, retrained, used offline.

`train` reads one tenant's events (from the configured store over `--since`, or from NDJSON files),
builds window features, fits one model per entity kind and saves each under
`DATA_DIR/models/<tenant>/<kind>.skops` (with its `.sha256`). A kind with too little history gets
no model and says so. `score` runs the saved models over NDJSON event files and prints the alerts
(exit 1 when there are any). `retrain` is scheduled retraining (tenants
whose newest model is older than `--every`). `status` lists, per tenant and kind, the saved model
and what it was trained on, a refused file, or that there is none (cold start: no ML alerts for it),
and with `--drift 1d` how far each feature moved from the baseline over the recent stored events.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
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
    MlConfig,
    MlDetector,
    ModelError,
    ModelRegistry,
    RetrainResult,
    TrainingSet,
    TrainOutcome,
    WindowFeaturizer,
    collect,
    drift,
    load_current_models,
    retrain_due,
    stored_pages,
    train_and_save,
)
from pipeline.errors import ParseError
from pipeline.records import Alert, Event
from pipeline.store.registry import open_event_store

ml_app = typer.Typer(help="ML anomaly models: train per tenant, score event files.", no_args_is_help=True)

COLD_START = "cold start (no model: no ML alerts)"
DURATION = re.compile(r"^(\d+)([dhm])$")
UNITS = {"d": "days", "h": "hours", "m": "minutes"}


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


def _training_set(settings: Settings, tenant: str, config: MlConfig, files: Sequence[Path]) -> TrainingSet:
    if tenant not in TenantTree.from_config(settings.tenants):
        fail(f"--tenant: unknown tenant {tenant!r}", ExitCode.USAGE)
    if files:
        return collect(tenant, [read_event_files(files)[0]], config, settings.timezone)
    # Only the tenant itself: a parent's model must not learn its children's normal.
    scope = TenantScope(root=tenant, tenant_ids=frozenset({tenant}))
    end = datetime.now(UTC)
    store = open_event_store(settings.events_url)
    try:
        return collect(tenant, stored_pages(store, scope, end - config.training_window, end), config,
                       settings.timezone)
    finally:
        store.close()


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
        ml = MlConfig.of(settings).model_copy(update={"detector": detector, "target_alert_rate": target_rate,
                                                      "training_window": window})
        ml.spec()
    except (ValueError, ModelError) as e:
        fail(f"--since/--detector/--target-rate: {e}", ExitCode.USAGE)
    for path in files:
        if not path.is_file():
            fail(f"{path}: no such file", ExitCode.USAGE)
    registry = ModelRegistry(settings.data_dir / "models")
    try:
        found = _training_set(settings, tenant, ml, files)
        source = "files" if files else f"store, last {since}"
        outcomes = train_and_save(found, registry, ml, now=datetime.now(UTC), source=source)
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
    saved = {o.kind: registry.path(tenant, o.kind) for o in outcomes if o.model is not None}
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
        detector = MlDetector(models, WindowFeaturizer(window=MlConfig.of(settings).window,
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


@ml_app.command("retrain")
def retrain(
    tenant: Annotated[list[str] | None, typer.Option("--tenant", help="Only these tenants (default: all).")] = None,
    every: Annotated[str, typer.Option("--every", help="Retrain models older than this: 7d.")] = "7d",
    since: Annotated[str, typer.Option("--since", help="Training window back from now: 14d.")] = "14d",
    force: Annotated[bool, typer.Option("--force", help="Retrain even models that are recent enough.")] = False,
    config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False,
) -> None:
    """Retrain tenants whose newest model is older than --every (or who have none) from the store.

    Scheduled retraining: run it daily from cron or a timer. Exit 3 on an error.
    """
    settings = settings_from(config, data_dir)
    tenants = tenant or [t.id for t in settings.tenants]
    known = {t.id for t in settings.tenants}
    if unknown := [t for t in tenants if t not in known]:
        fail(f"--tenant: unknown tenant(s) {', '.join(unknown)}", ExitCode.USAGE)
    try:
        ml = MlConfig.of(settings).model_copy(update={"retrain_every": parse_duration(every),
                                                      "training_window": parse_duration(since)})
    except ValueError as e:
        fail(f"--every/--since: {e}", ExitCode.USAGE)
    store = open_event_store(settings.events_url)
    try:
        results = retrain_due(store, ModelRegistry(settings.data_dir / "models"), tenants, ml,
                              now=datetime.now(UTC), timezone=settings.timezone, force=force)
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
    finally:
        store.close()
    _print_retraining(results, as_json)


def _print_retraining(results: Sequence[RetrainResult], as_json: bool) -> None:
    rows = [{"tenant": r.tenant, "retrained": r.retrained, "reason": r.reason, "models": r.models,
             "kinds": {o.kind: o.status for o in r.outcomes}} for r in results]
    if as_json:
        typer.echo(orjson.dumps({"tenants": rows}).decode())
        return
    table = Table("tenant", "retrained", "why", "models", "kinds")
    for result in results:
        table.add_row(result.tenant, "yes" if result.retrained else "no", result.reason, str(result.models),
                      "; ".join(f"{o.kind}: {o.status}" for o in result.outcomes))
    out_console.print(table)


@ml_app.command("status")
def status(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    drift_since: Annotated[str | None, typer.Option(
        "--drift", help="Also measure drift per feature over the stored events of this recent span: 1d.")] = None,
    config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False,
) -> None:
    """Per tenant and kind: the model, a refused file, or cold start (no model: no ML alerts).

    With the model: trained when, on how much, its threshold; with --drift, the features that moved
    most from the baseline over the recent stored events.
    """
    settings = settings_from(config, data_dir)
    tenants = [t.id for t in settings.tenants if tenant is None or t.id == tenant]
    if not tenants:
        fail(f"--tenant: unknown tenant {tenant!r}", ExitCode.USAGE)
    try:
        span = parse_duration(drift_since) if drift_since else None
    except ValueError as e:
        fail(f"--drift: {e}", ExitCode.USAGE)
    registry = ModelRegistry(settings.data_dir / "models")
    rows = [_model_status(registry, t, kind) for t in tenants for kind in EntityKind]
    if span is not None:
        _add_drift(settings, registry, rows, span)
    if as_json:
        typer.echo(orjson.dumps({"models": rows}).decode())
        return
    table = Table("tenant", "kind", "status", "detector", "windows", "trained at", "threshold", "drift")
    for row in rows:
        table.add_row(*(str(row.get(k, "")) for k in ("tenant", "kind", "status", "detector", "rows", "trained_at",
                                                       "threshold", "drift")))
    out_console.print(table)
    if any(row["status"] == COLD_START for row in rows):
        out_console.print(f"{COLD_START}: train with `govsoc ml train --tenant T`, or wait for scheduled "
                          f"retraining once the tenant has {MlConfig.of(settings).min_rows} windows of a kind")


def _model_status(registry: ModelRegistry, tenant: str, kind: EntityKind) -> dict[str, Any]:
    row: dict[str, Any] = {"tenant": tenant, "kind": kind.value}
    try:
        model = registry.load(tenant, kind)
    except ModelError as e:
        return {**row, "status": f"refused: {e.reason}"}
    if model is None:
        return {**row, "status": COLD_START}
    return {**row, "status": "ok", "detector": model.spec.detector, "threshold": round(model.baseline.threshold, 4),
            **{k: v for k, v in model.info.items() if k in ("rows", "trained_at", "data_sha256", "since", "source",
                                                               "events", "first_event", "last_event")}}


def _add_drift(settings: Settings, registry: ModelRegistry, rows: list[dict[str, Any]], span: timedelta) -> None:
    """Fill `drift` (the three features that moved most, in baseline spreads) for rows with a model."""
    end = datetime.now(UTC)
    store = open_event_store(settings.events_url)
    try:
        for tenant in sorted({r["tenant"] for r in rows if r["status"] == "ok"}):
            scope = TenantScope(root=tenant, tenant_ids=frozenset({tenant}))
            found = collect(tenant, stored_pages(store, scope, end - span, end), MlConfig.of(settings),
                            settings.timezone)
            for row in (r for r in rows if r["tenant"] == tenant and r["status"] == "ok"):
                kind = EntityKind(row["kind"])
                model = registry.load(tenant, kind)
                values = found.matrix(kind)
                if model is None or len(values) == 0:
                    row["drift"] = "no recent windows"
                    continue
                shifts = drift(np.array(values, dtype=np.float64), FEATURE_NAMES[kind], model.baseline)
                row["drift"] = ", ".join(f"{d.feature} {d.shift:.1f}" for d in shifts[:3])
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
    finally:
        store.close()
