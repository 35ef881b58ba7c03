"""`govsoc up`: everything in one process on the configured back end, the API in front."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated

import typer
import uvicorn

from api.app import create_app
from api.cli.common import (
    ConfigOption,
    DataDirOption,
    ExitCode,
    QuietOption,
    err_console,
    fail,
    settings_from,
)
from api.cli.progress import byte_progress
from api.demo.playbooks import DEMO_CONNECTORS
from api.identity.service import IdentityService
from api.reports import ReportService, open_report_store
from api.wiring import (
    Runtime,
    attach_playbooks,
    build_identity,
    build_playbook_runner,
    build_rule_service,
    build_runtime,
    freeze_heap,
)
from api.wiring.service_watch import start_service_watch
from config.errors import ConfigError, GovsocError
from config.tenants import TenantScope
from pipeline.bus import topics
from pipeline.bus.memory import MemoryBus
from pipeline.records import utc_now
from pipeline.store.base import IncidentQuery

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def up(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    demo: Annotated[bool, typer.Option("--demo", help="Load the demo's generated data and users first.")] = False,
    port: Annotated[int | None, typer.Option("--port", min=0, max=65535, help="API port (default 8000).")] = None,
    quiet: QuietOption = False,
) -> None:
    """Run sensors' pipeline, detections and the API in one process until interrupted."""
    overrides = {"api": {"port": port}} if port is not None else {}
    settings = settings_from(config, data_dir, **overrides)
    if demo and settings.api.host in LOOPBACK:
        # the demo is served over plain HTTP on loopback, where a Secure cookie would not come back
        # from every client; a deployment keeps Secure cookies behind its TLS terminator
        settings = settings.model_copy(update={"api": settings.api.model_copy(update={"cookie_secure": False})})
    try:
        runtime = build_runtime(settings)
        identity = build_identity(settings, runtime.incidents)
        # the configured connectors, checked before any work; the demo's loopback one replaces a
        # configured connector of its name, so nothing the demo approves leaves the machine
        runner = build_playbook_runner(runtime, DEMO_CONNECTORS if demo else None)
        attach_playbooks(runtime, runner)  # new incidents start the playbooks they trigger
        if demo:
            _load_demo(runtime, identity, quiet)
        # this process is the only one that runs playbooks: a run left RUNNING was cut off by the
        # last stop; it continues now, never repeating a side effect it had finished
        runner.resume_interrupted(utc_now(), idle_for=timedelta(0))
        freeze_heap()  # what lives as long as the process, out of the collector's full runs
    except ConfigError as e:
        fail(e, ExitCode.USAGE)
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
    report_store = open_report_store(settings.incidents_url, settings.data_dir)
    rule_service = build_rule_service(runtime)
    app = create_app(tree=runtime.tree, tokens=settings.api.tokens, events_store=runtime.events,
                     incidents_store=runtime.incidents, sensors_store=runtime.sensors,
                     incident_settings=settings.incidents, sensor_watch=settings.sensor_watch,
                     playbook_runner=runner,
                     identity_service=identity, bus=runtime.bus, ingest_pending=_pending_raw(runtime),
                     api_settings=settings.api,
                     reports_service=ReportService(report_store, runtime.incidents, runtime.tree, settings.reports),
                     intel_store=runtime.intel, rules=runtime.engine.ruleset, rule_service=rule_service)
    app.state.service_watch = settings.service_watch  # the console's services panel judges checks with it
    stop = threading.Event()
    worker = threading.Thread(target=runtime.pipeline.run, args=(stop,), name="pipeline", daemon=True)
    worker.start()
    watching = start_service_watch(runtime, stop)  # the configured targets, on their intervals
    api = settings.api
    err_console.print(f"govsoc API on http://{api.host}:{api.port} (OpenAPI: /docs); data in {settings.data_dir}",
                      markup=False, highlight=False, soft_wrap=True)
    try:
        uvicorn.run(app, host=api.host, port=api.port, log_level="warning")
    finally:
        stop.set()
        worker.join(timeout=5)
        if watching is not None:
            watching.join(timeout=5)
        report_store.close()
        rule_service.store.close()
        runtime.close()


def _pending_raw(runtime: Runtime) -> Callable[[], int] | None:
    """How many raw events wait for the ingest worker, where the bus can say (the embedded one)."""
    bus = runtime.bus
    return (lambda: bus.lag("ingest", [topics.RAW])) if isinstance(bus, MemoryBus) else None


def _load_demo(runtime: Runtime, identity: IdentityService, quiet: bool) -> None:
    from api.demo.setup import demo_users, load_demo, write_credentials

    now = utc_now()
    with byte_progress("demo data", 0, quiet) as advance:
        stats = load_demo(runtime, now, on_progress=advance)
    users = demo_users(runtime, identity, now)
    credentials = runtime.settings.data_dir / "demo-credentials.json"
    write_credentials(credentials, users)
    incidents = runtime.incidents.count_incidents(TenantScope.everything(), IncidentQuery())
    err_console.print(
        f"demo: {stats.events} events, {stats.dead_letters} dead letters, {stats.alerts} alerts, "
        f"{incidents} incidents, {stats.playbook_runs - stats.playbook_runs_done} playbook runs waiting "
        f"and {stats.playbook_runs_done} finished, "
        f"Bộ Y tế's report acknowledged as {stats.report}\n"
        f"demo users, tokens and passwords: {credentials}\n"
        f"sign in at http://{runtime.settings.api.host}:{runtime.settings.api.port}/ or try: "
        f"curl -H 'Authorization: Bearer <token>' http://{runtime.settings.api.host}:"
        f"{runtime.settings.api.port}/api/v1/incidents",
        markup=False, highlight=False, soft_wrap=True,
    )
