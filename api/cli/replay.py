"""`govsoc replay PATH...`: feed files through the sensors into the configured pipeline and store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.table import Table

from api.cli.common import (
    ConfigOption,
    DataDirOption,
    ExitCode,
    JsonOption,
    QuietOption,
    fail,
    out_console,
    settings_from,
)
from api.cli.progress import byte_progress
from api.wiring import build_runtime
from config.errors import GovsocError
from sensors.files import FileSource
from sensors.parsers import PARSERS


def replay(
    paths: Annotated[list[Path], typer.Argument(
        help="Log files to replay (.gz read transparently); pcap/pcapng captures go through the packet sensor.")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant the files belong to (default: the tree's root).")] = None,
    sensor: Annotated[str, typer.Option(help="Sensor id recorded as observer.name.")] = "replay",
    fmt: Annotated[str, typer.Option("--format", help="Log format: " + ", ".join(sorted(PARSERS)))] = "auth",
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Replay log files; prints how many events were ingested, dead-lettered and detected."""
    settings = settings_from(config, data_dir)
    for path in paths:
        if not path.is_file():
            fail(f"{path}: no such file", ExitCode.USAGE)
    if fmt not in PARSERS:
        fail(f"--format: unknown format {fmt!r}; known: {', '.join(sorted(PARSERS))}", ExitCode.USAGE)
    try:
        runtime = build_runtime(settings)
        owner = tenant or runtime.tree.root
        if owner not in runtime.tree:
            fail(f"--tenant: unknown tenant {owner!r}", ExitCode.USAGE)
        total = sum(p.stat().st_size for p in paths)
        with byte_progress("replay", total, quiet) as advance:
            stats = runtime.pipeline.replay(paths, FileSource(tenant=owner, sensor=sensor, format=fmt),
                                            on_progress=advance)
        runtime.close()
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
    summary = {"files": stats.files, "ingested": stats.events, "dead_lettered": stats.dead_letters,
               "alerts": stats.alerts, "incidents": stats.incidents}
    if as_json:
        typer.echo(orjson.dumps(summary).decode())
        return
    table = Table("files", "ingested", "dead-lettered", "alerts", "incidents")
    table.add_row(str(len(stats.files)), str(stats.events), str(stats.dead_letters), str(stats.alerts),
                  str(stats.incidents))
    out_console.print(table)
