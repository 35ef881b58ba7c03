"""`govsoc incidents list` and `govsoc alerts list`: what the configured store holds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import orjson
import typer
from rich.table import Table

from api.cli.common import ConfigOption, DataDirOption, ExitCode, JsonOption, fail, out_console, settings_from
from api.schemas import AlertPublic, IncidentPublic
from config.errors import GovsocError
from config.tenants import TenantScope, TenantTree
from pipeline.store.base import AlertQuery, IncidentQuery, IncidentStore
from pipeline.store.registry import open_incident_store

incidents_app = typer.Typer(help="Incidents in the store.", no_args_is_help=True)
alerts_app = typer.Typer(help="Alerts in the store.", no_args_is_help=True)

T = TypeVar("T")
TenantOption = Annotated[str | None, typer.Option("--tenant", help="Only this tenant and those below it.")]
IncidentOption = Annotated[str | None, typer.Option("--incident", help="Only the alerts of this incident.")]
LimitOption = Annotated[int, typer.Option("--limit", min=1, max=10_000, help="At most this many rows.")]


def _scope(tree: TenantTree, tenant: str | None) -> TenantScope:
    if tenant is None:
        return TenantScope.everything()
    if tenant not in tree:
        fail(f"--tenant: unknown tenant {tenant!r}", ExitCode.USAGE)
    return tree.scope(tenant)


def _read(config: Path | None, data_dir: Path | None, tenant: str | None,
          read: Callable[[IncidentStore, TenantScope], list[T]]) -> list[T]:
    """Open the configured incident store, read within `--tenant`'s scope, close; errors exit."""
    settings = settings_from(config, data_dir)
    scope = _scope(TenantTree.from_config(settings.tenants), tenant)
    try:
        store = open_incident_store(settings.incidents_url)
        try:
            return read(store, scope)
        finally:
            store.close()
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)


@incidents_app.command("list")
def list_incidents(config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False,
                   tenant: TenantOption = None, limit: LimitOption = 100) -> None:
    """List incidents, most recently active first."""
    rows = _read(config, data_dir, tenant, lambda store, scope: store.incidents(scope, IncidentQuery(limit=limit)))
    public = [IncidentPublic.of(i) for i in rows]
    if as_json:
        typer.echo(orjson.dumps({"incidents": [p.model_dump(mode="json") for p in public]}).decode())
        return
    table = Table("id", "tenant", "severity", "state", "alerts", "last seen (UTC)", "title")
    for p in public:
        table.add_row(p.id[:12], p.tenant, p.severity, p.state, str(p.alert_count),
                      p.last_seen.strftime("%Y-%m-%d %H:%M:%S"), p.title)
    out_console.print(table)


@alerts_app.command("list")
def list_alerts(config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False,
                tenant: TenantOption = None, limit: LimitOption = 100, incident: IncidentOption = None) -> None:
    """List alerts, newest first."""
    query = AlertQuery(limit=limit, incident_id=incident)
    rows = _read(config, data_dir, tenant, lambda store, scope: store.alerts(scope, query))
    public = [AlertPublic.of(a) for a in rows]
    if as_json:
        typer.echo(orjson.dumps({"alerts": [p.model_dump(mode="json") for p in public]}).decode())
        return
    table = Table("id", "tenant", "severity", "time (UTC)", "events", "rule")
    for p in public:
        table.add_row(p.id[:12], p.tenant, p.severity, p.timestamp.strftime("%Y-%m-%d %H:%M:%S"),
                      str(len(p.event_ids)), p.rule_title)
    out_console.print(table)
