"""`govsoc setup`: create Kafka topics, search index templates and SQL tables, idempotently.

Run it once before starting the workers of a scale-out deployment, and again after an upgrade;
a second run changes nothing. `--retention-days N` also deletes event indices older than N days
on a search store (the daily timer in deploy/ runs exactly that). Partitions come from the bus
URL (`GOVSOC_BUS=kafka://host:9092?partitions=12`); an existing topic keeps its count.

stdout: what exists now (a table, or `--json`). Exit 0 ok, 2 configuration, 3 a back end failed.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import orjson
import typer
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from api.cli.common import (
    ConfigOption,
    DataDirOption,
    ExitCode,
    JsonOption,
    QuietOption,
    err_console,
    fail,
    out_console,
    settings_from,
)
from api.wiring.setup import SETUP_STEPS, SetupReport, setup_backends
from config.errors import GovsocError


def setup(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    retention_days: Annotated[int | None, typer.Option(
        "--retention-days", min=1, help="Also delete search-store event indices older than this many days.")] = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Create topics, index templates and tables for the configured back ends (idempotent)."""
    settings = settings_from(config, data_dir)
    try:
        if quiet:
            report = setup_backends(settings, retention_days, on_progress=lambda n: None)
        else:
            columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
            with Progress(*columns, console=err_console, transient=True) as progress:
                task = progress.add_task("setup", total=SETUP_STEPS)
                report = setup_backends(settings, retention_days, on_progress=lambda n: progress.advance(task, n))
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
    _render(report, as_json)


def _render(report: SetupReport, as_json: bool) -> None:
    if as_json:
        typer.echo(orjson.dumps(asdict(report)).decode())
        return
    table = Table("back end", "what exists now")
    table.add_row("bus", report.bus)
    for topic, partitions in sorted(report.topics.items()):
        table.add_row("  topic", f"{topic} ({partitions} partitions)")
    for url in report.stores:
        table.add_row("store", url)
    for template in report.templates:
        table.add_row("  index template", template)
    if report.expired_indices:
        table.add_row("  deleted (expired)", ", ".join(report.expired_indices))
    out_console.print(table)
