"""`govsoc rules check DIR...`: which Sigma rules load, and why each of the others does not.

Loads the files and directories with `detections.sigma.load_rules` (the engine's own loader, so
what this accepts is exactly what runs) and prints every `RuleError` as `file:line:column key:
reason`, then the counts. stdout carries the result (`--json` for machines); exit 1 when any rule
was refused, 0 when all loaded, 2 for a path that does not exist.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from api.cli.common import ExitCode, JsonOption, out_console, require_paths
from detections.sigma import RuleError, RuleSet, load_rules

rules_app = typer.Typer(help="Sigma rules: check what loads.", no_args_is_help=True)

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"\b\d+\b")
_PLACEHOLDER = re.compile(r"%[^%\s]+%")


def reason_kind(reason: str) -> str:
    """A reason with its quoted values and numbers blanked, to count refusals by kind."""
    return _NUMBER.sub("N", _PLACEHOLDER.sub("%…%", _QUOTED.sub("'…'", reason)))


def check_report(ruleset: RuleSet, errors: list[RuleError]) -> dict[str, Any]:
    """The result of a check as data: counts, refusals by kind, and every error with its place."""
    kinds = Counter(reason_kind(error.reason) for error in errors)
    return {
        "loaded": len(ruleset.rule_ids),
        "rules": len({r.info.rule_id for r in ruleset.rules}),
        "correlations": len(ruleset.correlations),
        "refused": len(errors),
        "refused_by_reason": dict(kinds.most_common()),
        "errors": [{"location": str(error.location) if error.location else None, "reason": error.reason}
                   for error in errors],
    }


@rules_app.command("check")
def check(
    paths: Annotated[list[Path], typer.Argument(help="Rule files and directories (searched recursively).")],
    as_json: JsonOption = False,
) -> None:
    """Load the rules; print each refused one with file, line and reason, then the counts.

    Exit codes: 0 all loaded, 1 some refused, 2 usage error.
    """
    require_paths(paths)
    ruleset, errors = load_rules(paths)
    report = check_report(ruleset, errors)
    if as_json:
        typer.echo(orjson.dumps(report).decode())
    else:
        for error in errors:
            out_console.print(str(error) if error.location is None else f"{error.location}: {error.reason}",
                              markup=False, soft_wrap=True)
        out_console.print(f"{report['loaded']} loaded ({report['rules']} rules, {report['correlations']} "
                          f"correlations), {report['refused']} refused", markup=False)
    if errors:
        raise typer.Exit(int(ExitCode.FINDINGS))
