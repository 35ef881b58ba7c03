"""`govsoc intel import PATH...`, `govsoc intel taxii URL`, `govsoc intel list`: the intelligence store.

`import` recognises each file's format from its content (STIX 2.1 bundle, MISP event, MISP feed
manifest), publishes what it read at `--tenant` (default: the national centre, the root of the
tree) and reports each object it skipped on stderr as one line naming the file and the object.
`taxii` does the same for a TAXII 2.1 collection. `list` prints what a tenant may see (`--tenant`;
without it, everything but TLP:RED not addressed to the root).

The store is the configured SQLite file (`store_url`); with a scale-out store URL the indicators
live in `DATA_DIR/intel.db`. Exit codes: 0 ok (issues are printed, the rest is published), 2 usage
or configuration errors (an unknown tenant, a missing path, nothing importable), 3 a store error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from api.cli.common import (
    ConfigOption,
    DataDirOption,
    ExitCode,
    JsonOption,
    QuietOption,
    err_console,
    fail,
    out_console,
    require_paths,
    settings_from,
)
from api.wiring import open_intel_store
from config.errors import GovsocError
from config.settings import Settings
from config.tenants import TenantScope, TenantTree
from detections.intel import ImportOptions, ImportResult, IndicatorQuery, IndicatorType, Tlp, import_paths
from detections.intel.taxii import TaxiiSource, fetch_collection

intel_app = typer.Typer(help="Threat intelligence: import STIX/MISP/TAXII, list indicators.", no_args_is_help=True)

TenantOption = Annotated[str | None, typer.Option("--tenant", help="Publishing (or reading) tenant; "
                                                  "default: the root of the tree.")]
TlpOption = Annotated[Tlp, typer.Option("--tlp", help="TLP for objects that carry no marking.")]
SourceOption = Annotated[str, typer.Option("--source", help="Source name (default: from the file or feed).")]




@contextmanager
def file_progress(total: int, quiet: bool) -> Iterator[Callable[[int], None]]:
    """Yields `advance(n_files)`: a transient bar on stderr, or a no-op under --quiet."""
    if quiet:
        yield lambda n: None
        return
    columns = (TextColumn("intel import"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task("intel import", total=total)
        yield lambda n: progress.advance(task, n)


def _tenant(tree: TenantTree, tenant: str | None) -> str:
    chosen = tenant or tree.root
    if chosen not in tree:
        fail(f"--tenant: unknown tenant {chosen!r}", ExitCode.USAGE)
    return chosen


def _publish(settings: Settings, tree: TenantTree, result: ImportResult, as_json: bool) -> None:
    """Report the issues on stderr, publish what was read, print the counts; exit 2 if nothing was read."""
    for problem in result.issues:
        err_console.print(f"govsoc: {problem}", markup=False, highlight=False, soft_wrap=True)
    if not result.indicators and result.issues:
        fail(f"nothing imported ({len(result.issues)} issues above)", ExitCode.USAGE)
    try:
        store = open_intel_store(settings, tree)
        try:
            published = store.publish(result.indicators)
        finally:
            store.close()
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
    counts = {"published": published, "context_objects": result.context_objects, "issues": len(result.issues)}
    if as_json:
        out_console.print(orjson.dumps(counts).decode(), markup=False, highlight=False, soft_wrap=True)
    else:
        out_console.print(f"{published} indicators published, {result.context_objects} context objects, "
                          f"{len(result.issues)} objects skipped", markup=False)


@intel_app.command("import")
def import_command(
    paths: Annotated[list[Path], typer.Argument(help="STIX 2.1 bundles, MISP event exports, MISP feed manifests.")],
    tenant: TenantOption = None, tlp: TlpOption = Tlp.GREEN, source: SourceOption = "",
    config: ConfigOption = None, data_dir: DataDirOption = None, quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Import intelligence files and publish their indicators at a tenant."""
    require_paths(paths)
    settings = settings_from(config, data_dir)
    tree = TenantTree.from_config(settings.tenants)
    options = ImportOptions(publisher=_tenant(tree, tenant), source=source, default_tlp=tlp)
    try:
        with file_progress(len(paths), quiet) as advance:
            result = import_paths(paths, options, on_progress=advance)
    except OSError as e:
        fail(f"{e.filename}: {e.strerror}", ExitCode.USAGE)
    _publish(settings, tree, result, as_json)


@intel_app.command("taxii")
def taxii_command(
    url: Annotated[str, typer.Argument(help="A TAXII 2.1 collection URL (…/collections/<id>/).")],
    user: Annotated[str | None, typer.Option("--user", help="Basic-auth user.")] = None,
    password: Annotated[str | None, typer.Option("--password", envvar="GOVSOC_TAXII_PASSWORD",
                                                 help="Basic-auth password (or GOVSOC_TAXII_PASSWORD).")] = None,
    added_after: Annotated[datetime | None, typer.Option("--added-after", help="Only objects added after.")] = None,
    tenant: TenantOption = None, tlp: TlpOption = Tlp.GREEN, source: SourceOption = "",
    config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False,
) -> None:
    """Import a TAXII 2.1 collection and publish its indicators at a tenant."""
    settings = settings_from(config, data_dir)
    tree = TenantTree.from_config(settings.tenants)
    options = ImportOptions(publisher=_tenant(tree, tenant), source=source, default_tlp=tlp)
    try:
        result = fetch_collection(TaxiiSource(url, user=user, password=password, added_after=added_after), options)
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
    _publish(settings, tree, result, as_json)


@intel_app.command("list")
def list_command(
    tenant: Annotated[str | None, typer.Option("--tenant", help="What this tenant may see (default: all).")] = None,
    kind: Annotated[IndicatorType | None, typer.Option("--type", help="Only this indicator type.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="At most this many rows.")] = 100,
    config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False,
) -> None:
    """List the indicators a tenant may see."""
    settings = settings_from(config, data_dir)
    tree = TenantTree.from_config(settings.tenants)
    scope = TenantScope.everything() if tenant is None else tree.scope(_tenant(tree, tenant))
    try:
        store = open_intel_store(settings, tree)
        try:
            found = store.indicators(scope, IndicatorQuery(type=kind, limit=limit))
        finally:
            store.close()
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
    if as_json:
        for ind in found:
            out_console.print(orjson.dumps(ind.to_dict()).decode(), markup=False, highlight=False, soft_wrap=True)
        return
    table = Table("type", "value", "publisher", "TLP", "confidence", "valid until", "source")
    for ind in found:
        cells = (ind.type.value, ind.value, ind.publisher, ind.tlp.value, str(ind.confidence),
                 ind.valid_until.isoformat() if ind.valid_until else "", ind.source)
        table.add_row(*(Text(cell) for cell in cells))  # Text: values are data, never rich markup
    out_console.print(table)
