"""A transient rich progress bar on stderr for long work, or a no-op under --quiet."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from api.cli.common import err_console


@contextmanager
def byte_progress(description: str, total: int, quiet: bool) -> Iterator[Callable[[int], None]]:
    """Yields `advance(n_bytes)`."""
    if quiet:
        yield lambda n: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)
