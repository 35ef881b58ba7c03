"""`govsoc worker ingest|detect|incidents|playbooks`: one pipeline stage as a long-running process.

Each command opens the configured bus and stores (`GOVSOC_BUS`, `GOVSOC_EVENTS`,
`GOVSOC_INCIDENTS`, ...), joins the stage's consumer group(s) and runs the at-least-once loop of
`api.wiring.processes` until SIGTERM or SIGINT: offsets are committed only after the stage's
writes are durable; the batch in hand when the signal comes is finished and committed first.
Run as many copies of a stage as its topic has partitions; the group shares them out.

stdout: nothing while running; on exit one line (or `--json`) with what the process did.
stderr: a live status line (messages, lag, failures) unless `--quiet`, and logs.
`--metrics-port` serves Prometheus metrics (`govsoc_worker_messages_total`, `govsoc_worker_lag`,
`govsoc_worker_step_failures_total`) on `--metrics-host` (loopback by default).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import orjson
import typer
from prometheus_client import start_http_server
from rich.progress import Progress, SpinnerColumn, TextColumn

from api.cli.common import (
    ConfigOption,
    DataDirOption,
    ExitCode,
    JsonOption,
    QuietOption,
    err_console,
    fail,
    out_console,
    settings_from,
)
from api.wiring import Stage, StageProcess, StageStats, build_stage, freeze_heap
from config.errors import GovsocError

worker_app = typer.Typer(
    help="Run one pipeline stage as its own process on the configured bus and stores, until "
         "SIGTERM/SIGINT.\n\nExit codes: 0 ok, 2 usage or configuration error, 3 runtime error.",
    no_args_is_help=True,
)

MetricsPortOption = Annotated[
    int | None, typer.Option("--metrics-port", min=0, max=65535, help="Serve Prometheus metrics on this port."),
]
MetricsHostOption = Annotated[str, typer.Option("--metrics-host", help="Address for --metrics-port.")]
PollOption = Annotated[float, typer.Option("--poll-timeout", min=0.01, help="Seconds one idle poll waits.")]


def run_stage(stage: Stage, config: ConfigOption, data_dir: DataDirOption, metrics_port: int | None,
              metrics_host: str, poll_timeout: float, as_json: bool, quiet: bool) -> None:
    """Build the stage, run it until a signal, print what it did."""
    settings = settings_from(config, data_dir)
    if settings.pipeline.bus_url.startswith("memory://"):
        fail("pipeline.bus_url is memory://: a worker process would share no bus with anyone; "
             "set GOVSOC_BUS=kafka://... or run `govsoc up`", ExitCode.USAGE)
    try:
        process = build_stage(settings, stage)
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
    freeze_heap()  # what lives as long as the process, out of the collector's full runs
    stop = threading.Event()
    _stop_on_signals(stop)
    try:
        if metrics_port is not None:
            start_http_server(metrics_port, addr=metrics_host, registry=process.metrics.registry)
        with _status(stage, quiet) as show:
            stats = process.run(stop, on_progress=show, poll_timeout_s=poll_timeout)
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
    finally:
        _close(process)
    _print(stats, as_json)


def _stop_on_signals(stop: threading.Event) -> None:
    def handle(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def _close(process: StageProcess) -> None:
    try:
        process.close()
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)


@contextmanager
def _status(stage: Stage, quiet: bool) -> Iterator[Callable[[StageStats], None]]:
    """A transient status line on stderr (`on_progress`), or a no-op under --quiet."""
    if quiet:
        yield lambda stats: None
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=err_console,
                  transient=True) as progress:
        task = progress.add_task(f"worker {stage.value}: starting")

        def show(stats: StageStats) -> None:
            lag = "?" if stats.lag is None else str(stats.lag)
            progress.update(task, description=f"worker {stage.value}: {stats.messages} messages, lag {lag}, "
                                              f"{stats.failures} failed batches")

        yield show


def _print(stats: StageStats, as_json: bool) -> None:
    summary = {"stage": stats.stage.value, "messages": stats.messages, "batches": stats.batches,
               "failures": stats.failures, "lag": stats.lag}
    if as_json:
        typer.echo(orjson.dumps(summary).decode())
    else:
        out_console.print(f"worker {stats.stage.value}: {stats.messages} messages in {stats.batches} batches, "
                          f"{stats.failures} failed batches retried", markup=False, highlight=False)


def _command(stage: Stage) -> Callable[..., None]:
    def command(config: ConfigOption = None, data_dir: DataDirOption = None, metrics_port: MetricsPortOption = None,
                metrics_host: MetricsHostOption = "127.0.0.1", poll_timeout: PollOption = 0.5,
                as_json: JsonOption = False, quiet: QuietOption = False) -> None:
        run_stage(stage, config, data_dir, metrics_port, metrics_host, poll_timeout, as_json, quiet)

    command.__doc__ = {
        Stage.INGEST: "Raw events and dead letters -> event store -> events topic (and sensor heartbeats).",
        Stage.DETECT: "Events -> Sigma rules and correlations -> alerts topic.",
        Stage.INCIDENTS: "Alerts -> incidents (grouping, noise control) -> incidents topic; silent-sensor watch.",
        Stage.PLAYBOOKS: "Incidents -> the playbooks they trigger.",
    }[stage]
    return command


for _stage in Stage:
    worker_app.command(name=_stage.value)(_command(_stage))


if __name__ == "__main__":  # `python -m api.cli.worker STAGE`: the same as `govsoc worker STAGE`
    from api.cli.common import configure_logging

    configure_logging(False)
    worker_app()
