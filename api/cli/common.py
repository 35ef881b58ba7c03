"""What every `govsoc` command shares: exit codes, options, settings, logging, error output."""

from __future__ import annotations

import sys
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import structlog
import typer
from rich.console import Console

from config.errors import GovsocError
from config.load import load_settings
from config.settings import Settings


class ExitCode(IntEnum):
    """0 ok, 1 findings, 2 usage or configuration error, 3 runtime error."""

    OK = 0
    FINDINGS = 1
    USAGE = 2
    RUNTIME = 3


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML configuration file (else GOVSOC_CONFIG, else the built-in default)."),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Where the embedded back end keeps its files "
                 "(environment GOVSOC_DATA_DIR, default ./govsoc-data)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of a table.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]

err_console = Console(stderr=True)
out_console = Console(highlight=False)


def fail(error: GovsocError | str, code: ExitCode) -> NoReturn:
    """One line on stderr naming the location and reason, then exit with `code`."""
    err_console.print(f"govsoc: {error}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(int(code))


def require_paths(paths: list[Path]) -> None:
    """Exit with a usage error naming the first path that does not exist."""
    for path in paths:
        if not path.exists():
            fail(f"{path}: no such file or directory", ExitCode.USAGE)


def settings_from(config: Path | None, data_dir: Path | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(overrides)
    if data_dir is not None:
        values["data_dir"] = data_dir
    try:
        return load_settings(config, overrides=values)
    except GovsocError as e:
        fail(e, ExitCode.USAGE)


def configure_logging(verbose: bool) -> None:
    """Console logging on stderr (the CLI is the only place logging is configured)."""
    import logging

    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO if verbose else logging.WARNING),
        logger_factory=lambda *args: structlog.PrintLogger(sys.stderr),  # the stream current at each call
        cache_logger_on_first_use=False,  # loggers follow sys.stderr when a test runner swaps it
    )
