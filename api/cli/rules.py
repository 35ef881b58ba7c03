"""`govsoc rules check DIR...` and `govsoc rules import PATH [--into DIR]`: Sigma rule files.

`check` loads the files and directories with `detections.sigma.load_rules` (the engine's own
loader, so what this accepts is exactly what runs) and prints every `RuleError` as `file:line:column
key: reason`, then the counts. stdout carries the result (`--json` for machines); exit 1 when any
rule was refused, 0 when all loaded, 2 for a path that does not exist.

`import` brings a SigmaHQ rule folder or release archive (.zip, .tar.gz / .tgz: what an operator on
an isolated network carries in on media) into the configured rule set: the rule files are staged
in a private directory (archives read member by member: only regular `.yml`/`.yaml` files with
relative names and at most 1 MiB each, `MAX_ARCHIVE_FILES` of them; links, devices and `..` names
are skipped), loaded as the engine loads them, and each file whose every rule loads is copied to
`--into` (default: the first of `detections.rule_dirs`, else `<data_dir>/rules`) under the
source's name; every other file is listed with its reason. Exit 0 all imported, 1 some refused,
2 usage errors.
"""

from __future__ import annotations

import re
import shutil
import tarfile
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Annotated, Any

import orjson
import typer

from api.cli.common import (
    ConfigOption,
    DataDirOption,
    ExitCode,
    JsonOption,
    fail,
    out_console,
    require_paths,
    settings_from,
)
from config.settings import Settings
from detections.sigma import RuleError, RuleSet, load_rules
from detections.sigma.load import MAX_RULE_FILE_BYTES, RULE_SUFFIXES

rules_app = typer.Typer(help="Sigma rules: check what loads, import rule sets.", no_args_is_help=True)
MAX_ARCHIVE_FILES = 20_000  # SigmaHQ's release holds ~3,500 rule files

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


# --- import ---------------------------------------------------------------------------------------

@dataclass
class ImportReport:
    """Files copied (relative to the target directory) and files refused (one line each)."""

    target: Path
    copied: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def import_rules(source: Path, into: Path) -> ImportReport:
    """Validate the rule files of `source` (a folder or a .zip/.tar.gz archive) and copy each file
    whose every rule loads to `into/<source name>/...`. Raises `ValueError` for a source of no
    known kind."""
    name = _source_name(source)
    report = ImportReport(into / name)
    with tempfile.TemporaryDirectory(prefix="govsoc-import-") as tmp:
        staging = Path(tmp)
        report.refused.extend(_stage(source, staging))
        _ruleset, errors = load_rules([staging])
        bad: dict[str, str] = {}
        for error in errors:
            where = str(error.location.path) if error.location and error.location.path else ""
            relative = Path(where).relative_to(staging).as_posix() if where.startswith(tmp) else where
            bad.setdefault(relative, str(error).replace(tmp + "/", ""))
        for path in sorted(staging.rglob("*")):
            relative = path.relative_to(staging).as_posix()
            if not path.is_file() or relative in bad:
                continue
            target = report.target / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            report.copied.append(relative)
        report.refused.extend(f"{relative}: {reason}" for relative, reason in sorted(bad.items()))
    return report


def _source_name(source: Path) -> str:
    name = source.name
    for suffix in (".tar.gz", ".tgz", ".zip"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or "rules"
    return name or "rules"


def _stage(source: Path, staging: Path) -> list[str]:
    """Rule files of `source` copied under `staging`; returns the members skipped, with why."""
    if source.is_dir():
        for path in sorted(source.rglob("*")):
            if path.is_file() and not path.is_symlink() and path.name.endswith(RULE_SUFFIXES):
                target = staging / path.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
        return []
    lower = source.name.lower()
    if lower.endswith(".zip"):
        return _stage_members(_zip_members(source), staging)
    if lower.endswith((".tar.gz", ".tgz")):
        return _stage_members(_tar_members(source), staging)
    raise ValueError(f"{source}: not a folder, .zip, .tar.gz or .tgz")


Member = tuple[str, int, bool, "IO[bytes] | None"]  # name, size, is a regular file, its content


def _zip_members(path: Path) -> Iterator[Member]:
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            regular = not info.is_dir() and (info.external_attr >> 28) != 0o12  # not a symlink
            opened = archive.open(info) if regular and info.file_size <= MAX_RULE_FILE_BYTES else None
            yield info.filename, info.file_size, regular, opened


def _tar_members(path: Path) -> Iterator[Member]:
    with tarfile.open(path, "r:*") as archive:
        for info in archive:
            opened = archive.extractfile(info) if info.isreg() and info.size <= MAX_RULE_FILE_BYTES else None
            yield info.name, info.size, info.isreg(), opened


def _stage_members(members: Iterator[Member], staging: Path) -> list[str]:
    skipped: list[str] = []
    count = 0
    for name, size, regular, content in members:
        if not name.endswith(RULE_SUFFIXES) or not regular:
            continue
        parts = PurePosixPath(name).parts
        if name.startswith("/") or ".." in parts or not parts:
            skipped.append(f"{name}: refused: an absolute name or one with '..'")
            continue
        if content is None or size > MAX_RULE_FILE_BYTES:
            skipped.append(f"{name}: larger than {MAX_RULE_FILE_BYTES} bytes (1 MiB)")
            continue
        count += 1
        if count > MAX_ARCHIVE_FILES:
            skipped.append(f"more than {MAX_ARCHIVE_FILES} rule files: the rest is not imported")
            break
        data = content.read(MAX_RULE_FILE_BYTES + 1)
        target = staging.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return skipped


def default_rules_dir(settings: Settings) -> Path:
    """Where imported rules go: the first configured rule directory, else `<data_dir>/rules`."""
    dirs = settings.detections.rule_dirs
    return dirs[0] if dirs else settings.data_dir / "rules"


@rules_app.command("import")
def import_command(
    path: Annotated[Path, typer.Argument(help="A SigmaHQ rule folder or release archive (.zip, .tar.gz).")],
    into: Annotated[Path | None, typer.Option("--into", help="Target rule directory (default: the first "
                                               "detections.rule_dirs, else <data_dir>/rules).")] = None,
    config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False,
) -> None:
    """Validate and copy rule files into the rule set. Exit codes: 0 all imported, 1 some refused, 2 usage."""
    require_paths([path])
    target = into if into is not None else default_rules_dir(settings_from(config, data_dir))
    try:
        report = import_rules(path, target)
    except (ValueError, OSError, zipfile.BadZipFile, tarfile.TarError) as e:
        fail(f"{path}: cannot import: {e}", ExitCode.USAGE)
    if as_json:
        typer.echo(orjson.dumps({"target": str(report.target), "copied": report.copied,
                                 "refused": report.refused}).decode())
    else:
        for line in report.refused:
            out_console.print(line, markup=False, soft_wrap=True)
        out_console.print(f"{len(report.copied)} files imported into {report.target}, {len(report.refused)} refused",
                          markup=False)
    if report.refused:
        raise typer.Exit(int(ExitCode.FINDINGS))
