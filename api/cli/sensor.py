"""`govsoc sensor run --config FILE`: one edge sensor (files and syslog -> spool -> uplink) until SIGTERM.

The sensor's own YAML (`sensors.agent.AgentConfig`: tenant, sensor, uplink (a bus URL such as
`kafka://host:9092`, or the SOC's API `https://soc.example/` with `enrollment:`), spool, files,
syslog) is separate from the platform's settings: an edge appliance runs only this.
Run directly too: `python -m api.cli.sensor run --config FILE`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.cli.common import ExitCode, configure_logging, fail
from config.errors import GovsocError
from sensors.agent import Agent, load_agent_config

sensor_app = typer.Typer(help="Edge sensors: tail files, receive syslog, spool to disk, ship to the bus.",
                         no_args_is_help=True)


@sensor_app.callback()
def sensor() -> None:
    """Edge sensors: tail files, receive syslog, spool to disk, ship to the bus."""


@sensor_app.command("run")
def run(config: Annotated[Path, typer.Option("--config", "-c", help="The sensor's YAML configuration file.")]) -> None:
    """Run one sensor until SIGTERM or Ctrl-C; what is not shipped yet stays in the spool."""
    try:
        settings = load_agent_config(config)
    except GovsocError as e:
        fail(e, ExitCode.USAGE)
    try:
        agent = Agent(settings)
    except (GovsocError, OSError, ValueError) as e:
        fail(str(e), ExitCode.RUNTIME)
    try:
        agent.run()
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)


if __name__ == "__main__":
    configure_logging(False)
    sensor_app()
