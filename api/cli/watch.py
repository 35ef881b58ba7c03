"""`govsoc watch run` and `govsoc watch status`: the service watch from the command line.

`run` checks every configured target once from this machine (the settings' `service_watch`, or a
YAML file of the same shape given with `--targets`), judges each check with the detector (a one-shot
run has no learned page baseline, so no defacement verdicts; certificate and DNS findings, and an
outage when `outage.consecutive_failures` is 1), saves the events unless `--no-save`, and prints
one row per target. Saving follows the back end: on a shared bus (`kafka://`, the scale-out back
end) the events go to `topics.RAW` as a sensor's do, so the ingest workers store them and the
detect workers judge them with their learned state and raise the alerts; on the embedded back end
(no bus to share) they are written to the event store, enriched as ingest would. Exit 1 when a
target is down or a finding was raised.
`status` prints the newest stored check of every target and vantage point, from the event store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import yaml
from pydantic import ValidationError
from rich.table import Table

from api.cli.common import ConfigOption, DataDirOption, ExitCode, JsonOption, fail, out_console, settings_from
from config.errors import GovsocError
from config.settings import Settings
from config.tenants import TenantScope, TenantTree
from config.watch import ServiceWatchSettings
from detections.watch import WatchDetector, check_row
from pipeline.bus import open_bus, topics
from pipeline.bus.keys import entity_key
from pipeline.enrich import Enricher
from pipeline.records import Alert, Event
from pipeline.store.base import MAX_LIMIT, EventQuery
from pipeline.store.registry import open_event_store
from sensors.watch import DATASET, run_once

watch_app = typer.Typer(help="Service watch: availability, certificates, DNS and defacement of public services.",
                        no_args_is_help=True)

TargetsOption = Annotated[Path | None, typer.Option("--targets", help="YAML file shaped like `service_watch:` "
                                                                      "(else the settings' own).")]


def watch_settings(settings: Settings, targets_file: Path | None) -> ServiceWatchSettings:
    """The watch configuration: `--targets` when given, else `settings.service_watch` (when the settings
    model has it), else none. Exits with a usage error naming the file and field."""
    if targets_file is None:
        found = getattr(settings, "service_watch", None)
        return found if isinstance(found, ServiceWatchSettings) else ServiceWatchSettings()
    try:
        data = yaml.safe_load(targets_file.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        fail(f"{targets_file}: cannot read the targets: {e}", ExitCode.USAGE)
    if isinstance(data, dict) and "service_watch" in data:
        data = data["service_watch"]
    try:
        return ServiceWatchSettings.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        fail(f"{targets_file} {where}: {first['msg']}", ExitCode.USAGE)


@watch_app.command("run")
def run(
    targets: TargetsOption = None,
    vantage: Annotated[str | None, typer.Option("--vantage", help="Vantage point name (else the settings').")]
    = None,
    save: Annotated[bool, typer.Option("--save/--no-save", help="Store the check events.")] = True,
    config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False,
) -> None:
    """Check every target once; exit 1 when one is down or raised a finding."""
    settings = settings_from(config, data_dir)
    watch = watch_settings(settings, targets)
    if not watch.targets:
        fail("no service_watch targets configured (see --targets)", ExitCode.USAGE)
    events = asyncio.run(run_once(watch, vantage))
    alerts = WatchDetector(watch).process(events)
    if save:
        _save(settings, events)
    rows = [check_row(e, watch) for e in events]
    _print(rows, alerts, as_json)
    if alerts or any(r["state"] == "down" for r in rows):
        raise typer.Exit(int(ExitCode.FINDINGS))


def _save(settings: Settings, events: Sequence[Event]) -> None:
    tree = TenantTree.from_config(settings.tenants)
    unknown = sorted({e.tenant for e in events if e.tenant not in tree})
    if unknown:
        fail(f"service_watch.targets: unknown tenant {unknown[0]!r}", ExitCode.USAGE)
    if not settings.pipeline.bus_url.startswith("memory://"):
        _publish(settings.pipeline.bus_url, events)
        return
    enricher = Enricher(tree)
    store = open_event_store(settings.store_url)
    try:
        store.write([enricher.enrich(e) for e in events])
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
    finally:
        store.close()


def _publish(bus_url: str, events: Sequence[Event]) -> None:
    """The events on the shared bus's `topics.RAW`, keyed as a sensor keys them."""
    try:
        bus = open_bus(bus_url)
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
    try:
        bus.publish(topics.RAW, [(entity_key(e.tenant, e.doc), e.to_json()) for e in events])
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
    finally:
        bus.close()


def _print(rows: Sequence[dict[str, Any]], alerts: Sequence[Alert], as_json: bool) -> None:
    if as_json:
        typer.echo(orjson.dumps({"checks": rows, "alerts": [orjson.loads(a.to_json()) for a in alerts]}).decode())
        return
    table = Table("tenant", "target", "vantage", "state", "status", "ttfb ms", "TLS", "cert days", "DNS", "why")
    for row in rows:
        table.add_row(*(_cell(row[k]) for k in ("tenant", "target", "vantage", "state", "status", "ttfb_ms", "tls",
                                               "cert_days", "dns", "why")))
    out_console.print(table)
    for alert in alerts:
        out_console.print(f"{alert.severity.label}: {alert.rule_title}: {alert.description.splitlines()[0]}",
                          markup=False)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.1f}" if isinstance(value, float) else str(value)


@watch_app.command("status")
def status(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant and those below it.")] = None,
    targets: TargetsOption = None,
    config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False,
) -> None:
    """The newest stored check of each target and vantage point."""
    settings = settings_from(config, data_dir)
    watch = watch_settings(settings, targets)
    tree = TenantTree.from_config(settings.tenants)
    if tenant is not None and tenant not in tree:
        fail(f"--tenant: unknown tenant {tenant!r}", ExitCode.USAGE)
    scope = tree.scope(tenant) if tenant else TenantScope.everything()
    store = open_event_store(settings.store_url)
    try:
        events = store.search(scope, EventQuery(fields={"event.dataset": DATASET}, limit=MAX_LIMIT))
    finally:
        store.close()
    latest: dict[tuple[str, str, str], Event] = {}
    for event in events:  # newest first: the first seen per key is the latest
        key = (event.tenant, str(event.get("govsoc.watch.target")), str(event.get("observer.name")))
        latest.setdefault(key, event)
    rows = [check_row(e, watch) for _, e in sorted(latest.items())]
    if as_json:
        typer.echo(orjson.dumps({"targets": rows}).decode())
        return
    table = Table("tenant", "target", "vantage", "last check (UTC)", "state", "status", "ttfb ms", "cert days",
                  "page")
    for row in rows:
        table.add_row(*(_cell(row[k]) for k in ("tenant", "target", "vantage", "time", "state", "status", "ttfb_ms",
                                               "cert_days", "page")))
    out_console.print(table)
