"""`govsoc parse PATH...`: what the sensors make of log files, one ECS JSON document per line.

A capture (pcap/pcapng, found by its magic number) is read by the packet sensor instead: its
flow, DNS, HTTP and TLS records are printed the same way.

stdout (or `--out FILE`) carries the events only, in file order, as the pipeline would receive
them (tenant, sensor, `event.id`, `event.original`, `log.file.path`, `log.offset` included).
stderr carries the summary: events and dead letters counted, and the dead letters' reasons with
their counts (the line/byte prefix stripped, so the same reason groups). Every non-empty input
line is one event or one dead letter (`sensors.files`); empty lines count nowhere. Nothing is
stored and no pipeline is built: only the tenant tree is read from the configuration.

Exit codes: 0 ok (dead letters included: they are reported, not failures), 2 usage or
configuration error (no such file, unknown format, tenant or time zone), 3 a file could not be read.
"""

from __future__ import annotations

import re
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Annotated

import typer

from api.cli.common import ConfigOption, ExitCode, QuietOption, err_console, fail, settings_from
from api.cli.progress import byte_progress
from config.errors import GovsocError
from config.tenants import TenantTree
from sensors.files import FileSource
from sensors.formats import read_file
from sensors.parsers import PARSERS

_WHERE = re.compile(r"line [0-9]+, byte [0-9]+: ")  # the prefix sensors.files puts on each reason


def parse(
    paths: Annotated[list[Path], typer.Argument(help="Log files to parse (.gz read transparently).")],
    fmt: Annotated[str, typer.Option("--format", help="Log format: " + ", ".join(sorted(PARSERS)))] = "auth",
    tenant: Annotated[str | None, typer.Option(help="Tenant the files belong to (default: the tree's root).")] = None,
    sensor: Annotated[str, typer.Option(help="Sensor id recorded as observer.name.")] = "parse",
    timezone: Annotated[str, typer.Option(help="IANA zone for times that carry none.")] = "Asia/Ho_Chi_Minh",
    out: Annotated[Path | None, typer.Option("--out", help="Write the documents here instead of stdout.")] = None,
    config: ConfigOption = None,
    quiet: QuietOption = False,
) -> None:
    """Print the ECS events parsed from log files; dead letters are counted on stderr."""
    for path in paths:
        if not path.is_file():
            fail(f"{path}: no such file", ExitCode.USAGE)
    if fmt not in PARSERS:
        fail(f"--format: unknown format {fmt!r}; known: {', '.join(sorted(PARSERS))}", ExitCode.USAGE)
    settings = settings_from(config, None)
    try:
        tree = TenantTree.from_config(settings.tenants)
        owner = tenant or tree.root
        if owner not in tree:
            fail(f"--tenant: unknown tenant {owner!r}", ExitCode.USAGE)
        source = FileSource(tenant=owner, sensor=sensor, format=fmt, timezone=timezone)
    except GovsocError as e:
        fail(e, ExitCode.USAGE)
    events, reasons = _write_events(paths, source, out, quiet)
    _report(events, reasons)


def _write_events(paths: list[Path], source: FileSource, out: Path | None,
                  quiet: bool) -> tuple[int, Counter[str]]:
    """Write each file's events as JSON lines; returns (events written, dead-letter reasons)."""
    events, reasons = 0, Counter[str]()
    total = sum(p.stat().st_size for p in paths)
    with ExitStack() as stack:
        stream: IO[bytes] | None = stack.enter_context(out.open("wb")) if out is not None else None
        advance = stack.enter_context(byte_progress("parse", total, quiet))
        for path in paths:
            try:
                for batch in read_file(path, source, on_progress=advance):
                    chunk = b"".join(event.to_json() + b"\n" for event in batch.events)
                    if stream is None:
                        typer.echo(chunk, nl=False)  # bytes go to the binary stdout
                    else:
                        stream.write(chunk)
                    events += len(batch.events)
                    reasons.update(_WHERE.sub("", letter.reason, count=1) for letter in batch.dead_letters)
            except OSError as e:
                fail(f"{path}: cannot read: {e}", ExitCode.RUNTIME)
    return events, reasons


def _report(events: int, reasons: Counter[str]) -> None:
    dead = sum(reasons.values())
    err_console.print(f"{events} events, {dead} dead letters", markup=False, highlight=False)
    for reason, count in reasons.most_common():
        err_console.print(f"{count:>8}  {reason}", markup=False, highlight=False, soft_wrap=True)
