"""`govsoc report incident` and `govsoc report period`: the national report documents, to a file.

- `report incident ID --format pdf|html --out FILE [--lang vi|en] [--kind initial|final]`: the
  incident's initial report (form 03; prefilled from the incident when no agency reported it),
  or its final report. ID may be the unique start of an id, as `govsoc incidents list` shows it.
- `report period --from DATE --to DATE [--tenant T] --format pdf|html --out FILE [--lang vi|en]`:
  the statistics of T's subtree (the whole tree by default) for whole days [from, to], `to`
  included, in the deployment's zone.

Reads the configured stores with an all-tenant scope (local administration). The reports
configuration is `Settings.reports` when the settings have it, else the defaults. stdout carries
only the path written. Exit codes: 0 written, 2 usage or configuration error (an unknown incident
or tenant, `--to` before `--from`), 3 runtime error (a store or the PDF writer failed).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import typer

from api.cli.common import ConfigOption, DataDirOption, ExitCode, fail, settings_from
from api.reports import open_report_store
from api.reports.render import ReportRenderer, current_initial, period_stats, to_pdf
from config.errors import GovsocError
from config.reports import ReportSettings
from config.settings import Settings
from config.tenants import TenantScope, TenantTree
from pipeline.records import Incident
from pipeline.store.base import MAX_LIMIT, IncidentQuery, IncidentStore
from pipeline.store.registry import open_incident_store, open_sensor_store

report_app = typer.Typer(help="National report documents (báo cáo sự cố) as PDF or HTML.", no_args_is_help=True)

FormatOption = Annotated[Literal["pdf", "html"], typer.Option("--format", help="pdf or html.")]
OutOption = Annotated[Path, typer.Option("--out", "-o", help="The file to write.", dir_okay=False)]
LangOption = Annotated[Literal["vi", "en"], typer.Option("--lang", help="vi (default) or en.")]


def _report_settings(settings: Settings) -> ReportSettings:
    found = getattr(settings, "reports", None)
    return found if isinstance(found, ReportSettings) else ReportSettings()


def _write(html: str, fmt: str, out: Path) -> None:
    try:
        data = to_pdf(html) if fmt == "pdf" else html.encode("utf-8")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    except OSError as e:
        fail(f"{out}: {e.strerror or e}", ExitCode.RUNTIME)
    typer.echo(str(out))


def _find_incident(store: IncidentStore, incident_id: str) -> Incident:
    """The incident of that id, or the only one whose id starts with it (usage error otherwise)."""
    scope = TenantScope.everything()
    found = store.incident(scope, incident_id)
    if found is not None:
        return found
    matches = [i for i in store.incidents(scope, IncidentQuery(limit=MAX_LIMIT)) if i.id.startswith(incident_id)]
    if len(matches) != 1:
        reason = "no incident" if not matches else f"{len(matches)} incidents"
        fail(f"ID: {reason} with id {incident_id!r}", ExitCode.USAGE)
    return matches[0]


def _incident_html(settings: Settings, incident_id: str, lang: Literal["vi", "en"],
                   kind: Literal["initial", "final"]) -> tuple[str, str]:
    """(HTML, a name for the document) of the incident's report."""
    tree = TenantTree.from_config(settings.tenants)
    renderer = ReportRenderer(_report_settings(settings), tree)
    incidents = open_incident_store(settings.incidents_url)
    reports = open_report_store(settings.incidents_url, settings.data_dir)
    try:
        incident = _find_incident(incidents, incident_id)
        record = reports.report_of_incident(TenantScope.everything(), incident.id)
    finally:
        reports.close()
        incidents.close()
    if kind == "final":
        if record is None or record.final is None:
            fail(f"--kind final: incident {incident.id} has no final report", ExitCode.USAGE)
        return renderer.final_html(record, lang), record.summary.reference
    if record is None:
        form = renderer.prefilled_initial(incident, datetime.now(UTC))
        return renderer.initial_html(form, lang, reference=None, tenant=incident.tenant, filed_at=None,
                                     incident_id=incident.id), incident.id
    return renderer.initial_html(current_initial(record), lang, reference=record.summary.reference,
                                 tenant=incident.tenant, filed_at=record.initial.filed_at,
                                 incident_id=incident.id), record.summary.reference


@report_app.command("incident")
def incident(
    incident_id: Annotated[str, typer.Argument(metavar="ID", help="Incident id (or its unique start).")],
    fmt: FormatOption, out: OutOption, lang: LangOption = "vi",
    kind: Annotated[Literal["initial", "final"], typer.Option("--kind", help="initial or final.")] = "initial",
    config: ConfigOption = None, data_dir: DataDirOption = None,
) -> None:
    """Write an incident's initial (or final) report."""
    settings = settings_from(config, data_dir)
    try:
        html, _ = _incident_html(settings, incident_id, lang, kind)
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
    _write(html, fmt, out)


@report_app.command("period")
def period(
    start: Annotated[datetime, typer.Option("--from", formats=["%Y-%m-%d"], help="First day, YYYY-MM-DD.")],
    end: Annotated[datetime, typer.Option("--to", formats=["%Y-%m-%d"], help="Last day (included), YYYY-MM-DD.")],
    fmt: FormatOption, out: OutOption, lang: LangOption = "vi",
    tenant: Annotated[str | None, typer.Option("--tenant", help="This tenant and those below it.")] = None,
    config: ConfigOption = None, data_dir: DataDirOption = None,
) -> None:
    """Write the six-monthly or annual statistics of a tenant's subtree."""
    settings = settings_from(config, data_dir)
    tree = TenantTree.from_config(settings.tenants)
    tenant = tenant or tree.root
    if tenant not in tree:
        fail(f"--tenant: unknown tenant {tenant!r}", ExitCode.USAGE)
    if end < start:
        fail("--to: the last day is before --from", ExitCode.USAGE)
    report_settings = _report_settings(settings)
    zone = ZoneInfo(report_settings.timezone)
    since = datetime.combine(start.date(), time(), zone)
    until = datetime.combine(end.date() + timedelta(days=1), time(), zone)
    try:
        incidents, sensors = open_incident_store(settings.incidents_url), open_sensor_store(settings.sensors_url)
        try:
            stats = period_stats(incidents, tree, tenant, since, until, sensors=sensors, now=datetime.now(UTC))
        finally:
            incidents.close()
            sensors.close()
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
    _write(ReportRenderer(report_settings, tree).period_html(stats, lang), fmt, out)
