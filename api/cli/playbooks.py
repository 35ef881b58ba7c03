"""`govsoc playbooks check [DIR...]`: which playbooks load, and why each of the others does not.

Without paths it checks what the deployment would load (`playbook_paths`: the shipped library
unless `playbooks.include_builtin_playbooks` is off, then every `playbooks.playbook_dirs`), so an
operator checks exactly what the `playbooks` worker will run. Loads with `playbooks.load_playbooks`
(the runner's own loader) and prints every `PlaybookError` as `file:line:column field: reason`,
then the counts. stdout carries the result (`--json` for machines); exit 1 when any playbook was
refused, 0 when all loaded, 2 for a path that does not exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer

from api.cli.common import ConfigOption, ExitCode, JsonOption, out_console, require_paths, settings_from
from api.wiring.runtime import playbook_paths
from playbooks import load_playbooks

playbooks_app = typer.Typer(help="Response playbooks: check what loads.", no_args_is_help=True)


@playbooks_app.command("check")
def check(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Playbook files and directories (searched recursively); default: the configured ones.")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Load the playbooks; print each error with file, line, field and reason, then the counts.

    Exit codes: 0 all loaded, 1 some refused, 2 usage error.
    """
    if not paths:
        paths = playbook_paths(settings_from(config, None))
    require_paths(paths)
    playbooks, errors = load_playbooks(paths)
    if as_json:
        typer.echo(orjson.dumps({
            "loaded": len(playbooks), "ids": [p.id for p in playbooks],
            "errors": [{"location": str(e.location) if e.location else None, "reason": e.reason} for e in errors],
        }).decode())
    else:
        for error in errors:
            out_console.print(str(error), markup=False, soft_wrap=True)
        out_console.print(f"{len(playbooks)} loaded, {len(errors)} error(s)", markup=False)
    if errors:
        raise typer.Exit(int(ExitCode.FINDINGS))
