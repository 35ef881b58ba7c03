"""The `govsoc` command: one typer app, one module per command group.

Exit codes: 0 ok, 1 findings, 2 usage or configuration error, 3 runtime error.
"""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli.api_serve import api_serve
from api.cli.audit import audit_app
from api.cli.bundle import bundle
from api.cli.common import configure_logging
from api.cli.detect import detect
from api.cli.hunt import hunt
from api.cli.intel import intel_app
from api.cli.ml import ml_app
from api.cli.parse import parse
from api.cli.playbooks import playbooks_app
from api.cli.records import alerts_app, incidents_app
from api.cli.replay import replay
from api.cli.report import report_app
from api.cli.rules import rules_app
from api.cli.sensor import sensor_app
from api.cli.setup import setup
from api.cli.up import up
from api.cli.watch import watch_app
from api.cli.worker import worker_app

app = typer.Typer(
    name="govsoc",
    help="govsoc: security operations for a national government network.\n\n"
         "Exit codes: 0 ok, 1 findings, 2 usage or configuration error, 3 runtime error.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress (stderr).")] = False) -> None:
    configure_logging(verbose)


app.command()(up)
app.command()(replay)
app.command()(detect)
app.command()(parse)
app.command()(hunt)
app.add_typer(incidents_app, name="incidents")
app.add_typer(alerts_app, name="alerts")
app.add_typer(audit_app, name="audit")
app.add_typer(rules_app, name="rules")
app.add_typer(sensor_app, name="sensor")
app.add_typer(ml_app, name="ml")
app.add_typer(playbooks_app, name="playbooks")
app.add_typer(report_app, name="report")
app.add_typer(intel_app, name="intel")
app.add_typer(watch_app, name="watch")
app.command(name="api")(api_serve)
app.command()(setup)
app.command()(bundle)
app.add_typer(worker_app, name="worker")
