"""`govsoc incidents list` and `govsoc alerts list`: what the configured store holds."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer
from rich.table import Table

from api.cli.common import ConfigOption, DataDirOption, ExitCode, JsonOption, fail, out_console, settings_from
from api.schemas import AlertPublic, IncidentPublic
from config.errors import GovsocError
from config.tenants import TenantScope, TenantTree
from pipeline.store.base import AlertQuery, IncidentQuery
from pipeline.store.registry import open_incident_store

incidents_app = typer.Typer(help="Incidents in the store.", no_args_is_help=True)
alerts_app = typer.Typer(help="Alerts in the store.", no_args_is_help=True)

TenantOption = Annotated[str | None, typer.Option("--tenant", help="Only this tenant and those below it.")]
LimitOption = Annotated[int, typer.Option("--limit", min=1, max=10_000, help="At most this many rows.")]


def _scope(tree: TenantTree, tenant: str | None) -> TenantScope:
    if tenant is None:
        return TenantScope.everything()
    if tenant not in tree:
        fail(f"--tenant: unknown tenant {tenant!r}", ExitCode.USAGE)
    return tree.scope(tenant)


@incidents_app.command("list")
def list_incidents(config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False,
                   tenant: TenantOption = None, limit: LimitOption = 100) -> None:
    """List incidents, most recently active first."""
    settings = settings_from(config, data_dir)
    try:
        store = open_incident_store(settings.store_url)
        rows = store.incidents(_scope(TenantTree.from_config(settings.tenants), tenant), IncidentQuery(limit=limit))
        store.close()
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
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
                tenant: TenantOption = None, limit: LimitOption = 100) -> None:
    """List alerts, newest first."""
    settings = settings_from(config, data_dir)
    try:
        store = open_incident_store(settings.store_url)
        rows = store.alerts(_scope(TenantTree.from_config(settings.tenants), tenant), AlertQuery(limit=limit))
        store.close()
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
    public = [AlertPublic.of(a) for a in rows]
    if as_json:
        typer.echo(orjson.dumps({"alerts": [p.model_dump(mode="json") for p in public]}).decode())
        return
    table = Table("id", "tenant", "severity", "time (UTC)", "events", "rule")
    for p in public:
        table.add_row(p.id[:12], p.tenant, p.severity, p.timestamp.strftime("%Y-%m-%d %H:%M:%S"),
                      str(len(p.event_ids)), p.rule_title)
    out_console.print(table)
