"""`govsoc hunt [--intel] [--rule FILE]... [--since 7d] [--tenant T] [--send]`: stored history, hunted.

`--rule` compiles Sigma rules with pySigma's backend for the configured event store and checks
each candidate with the streaming engine (api/cli/hunt_rules.py, detections/sigma/hunt.py), so
the alerts are the ones the stream would have raised. `--intel` works as follows.

Reads the events of `--tenant`'s scope (all tenants by default) from the configured event store,
oldest first, `MAX_LIMIT` at a time, over the last `--since`, and runs an `IntelMatcher` loaded
with what those tenants may match (TLP and the tree, as on the stream). Each alert is printed
(a table, or one JSON line per alert with `--json`); with `--send` the alerts also go through the
incident service (grouped into incidents like the stream's) and are recorded as sightings.
Alert ids are deterministic, so hunting the same window again sends nothing new.

Exit codes: 0 no match, 1 matches found, 2 usage or configuration errors, 3 a store error.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from api.cli.common import (
    ConfigOption,
    DataDirOption,
    ExitCode,
    JsonOption,
    err_console,
    fail,
    out_console,
    settings_from,
)
from api.cli.ml import parse_duration
from api.wiring import open_intel_store
from config.errors import GovsocError
from config.settings import Settings
from config.tenants import TenantScope, TenantTree
from detections.incidents import IncidentService
from detections.intel import IntelMatcher, sightings_of
from pipeline.records import Alert, to_iso
from pipeline.store.base import MAX_LIMIT, EventQuery, EventStore
from pipeline.store.registry import open_event_store, open_incident_store


def hunt_events(events: EventStore, scope: TenantScope, matcher: IntelMatcher, start: datetime,
                on_page: Callable[[int], None] = lambda n: None) -> list[Alert]:
    """The matcher's alerts over the scope's events since `start`, oldest first."""
    alerts: list[Alert] = []
    offset = 0
    while True:
        page = events.search(scope, EventQuery(start=start, limit=MAX_LIMIT, offset=offset, oldest_first=True))
        alerts.extend(matcher.process(page))
        on_page(len(page))
        if len(page) < MAX_LIMIT:
            return alerts
        offset += len(page)


def _print(alerts: list[Alert], as_json: bool) -> None:
    if as_json:
        for alert in alerts:
            out_console.print(alert.to_json().decode(), markup=False, highlight=False, soft_wrap=True)
        return
    table = Table("time", "tenant", "matched", "indicator", "severity")
    for alert in alerts:
        matched = ", ".join(f"{k}={v}" for k, v in alert.entity.items())
        table.add_row(*(Text(c) for c in (to_iso(alert.timestamp), alert.tenant, matched, alert.rule_title,
                                          alert.severity.label)))
    out_console.print(table)


def hunt(
    intel: Annotated[bool, typer.Option("--intel", help="Hunt with the loaded intel indicators.")] = False,
    rule: Annotated[list[Path] | None, typer.Option(
        "--rule", help="A Sigma rule file or directory to hunt with (repeatable).")] = None,
    since: Annotated[str, typer.Option("--since", help="How far back: 30m, 12h, 7d.")] = "7d",
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant and those below it.")] = None,
    send: Annotated[bool, typer.Option("--send", help="Group the alerts into incidents and record sightings.")] = False,
    config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False,
) -> None:
    """Hunt over stored events with indicators or Sigma rules, raising the alerts the stream would have.

    Exit codes: 0 nothing found, 1 matches, 2 usage error, 3 store error.
    """
    if not intel and not rule:
        fail("nothing to hunt with: pass --intel or --rule FILE", ExitCode.USAGE)
    try:
        window = parse_duration(since)
    except ValueError as e:
        fail(f"--since: {e}", ExitCode.USAGE)
    settings = settings_from(config, data_dir)
    tree = TenantTree.from_config(settings.tenants)
    if tenant is not None and tenant not in tree:
        fail(f"--tenant: unknown tenant {tenant!r}", ExitCode.USAGE)
    scope = TenantScope.everything() if tenant is None else tree.scope(tenant)
    alerts: list[Alert] = []
    try:
        if intel:
            alerts += _run(settings, tree, scope, datetime.now(UTC) - window, send)
        if rule:
            alerts += _hunt_rules(settings, rule, since, tenant, send)
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
    _print(alerts, as_json)
    raise typer.Exit(int(ExitCode.FINDINGS if alerts else ExitCode.OK))


def _hunt_rules(settings: Settings, rules: list[Path], since: str, tenant: str | None, send: bool) -> list[Alert]:
    from api.cli.hunt_rules import RuleHuntUsageError, run_rule_hunt  # pySigma's backends load only when asked

    try:
        found = run_rule_hunt(settings, rules, since, tenant, send=send)
    except RuleHuntUsageError as e:
        fail(str(e), ExitCode.USAGE)
    for line in found.refused:
        err_console.print(line, markup=False, soft_wrap=True)
    return found.alerts


def _run(settings: Settings, tree: TenantTree, scope: TenantScope, start: datetime, send: bool) -> list[Alert]:
    """Open the stores, hunt, send when asked, close; store errors propagate as `GovsocError`."""
    intel_store = open_intel_store(settings, tree)
    events = open_event_store(settings.events_url)
    try:
        alerts = hunt_events(events, scope, IntelMatcher(intel_store.matchable(scope), tree), start)
        if send and alerts:
            incidents = open_incident_store(settings.incidents_url)
            try:
                IncidentService(incidents, tree, settings.incidents).ingest(alerts)
            finally:
                incidents.close()
            intel_store.record_sightings(sightings_of(alerts))
        return alerts
    finally:
        events.close()
        intel_store.close()
