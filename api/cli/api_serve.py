"""`govsoc api`: serve the API and console only; the pipeline runs in `govsoc worker` processes.

The API opens the configured stores (`GOVSOC_EVENTS`, `GOVSOC_INCIDENTS`, ...) to read and to
work incidents, and the configured bus to publish what agencies and sensors send to the ingest
endpoint (`topics.RAW`): a publish returns once the bus acknowledged it, and the ingest workers
store it. Nothing is consumed here, so several `govsoc api` processes can serve behind a proxy.
On the in-process bus (`memory://`) nothing would consume what the API publishes: use
`govsoc up` there, which this command says and refuses.
"""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from api.app import create_app
from api.cli.common import ConfigOption, DataDirOption, ExitCode, err_console, fail, settings_from
from api.reports import ReportService, open_report_store
from api.wiring import build_identity, build_playbook_runner, build_runtime, freeze_heap
from config.errors import ConfigError, GovsocError


def api_serve(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    host: Annotated[str | None, typer.Option("--host", help="Listen address (default from settings).")] = None,
    port: Annotated[int | None, typer.Option("--port", min=0, max=65535, help="API port (default 8000).")] = None,
) -> None:
    """Serve the API without running the pipeline in this process (scale-out)."""
    api_overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = settings_from(config, data_dir, **({"api": api_overrides} if api_overrides else {}))
    if settings.pipeline.bus_url.startswith("memory://"):
        fail("pipeline.bus_url is memory://: nothing would consume what the API publishes; "
             "set GOVSOC_BUS=kafka://... or run `govsoc up`", ExitCode.USAGE)
    try:
        runtime = build_runtime(settings)
        identity = build_identity(settings, runtime.incidents)
        runner = build_playbook_runner(runtime)  # the configured connectors, checked before serving
        freeze_heap()  # what lives as long as the process, out of the collector's full runs
    except ConfigError as e:
        fail(e, ExitCode.USAGE)
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
    report_store = open_report_store(settings.incidents_url, settings.data_dir)
    app = create_app(tree=runtime.tree, tokens=settings.api.tokens, events_store=runtime.events,
                     incidents_store=runtime.incidents, sensors_store=runtime.sensors,
                     incident_settings=settings.incidents, sensor_watch=settings.sensor_watch,
                     playbook_runner=runner, identity_service=identity,
                     bus=runtime.bus, ingest_pending=None, api_settings=settings.api,
                     reports_service=ReportService(report_store, runtime.incidents, runtime.tree, settings.reports),
                     intel_store=runtime.intel)
    err_console.print(f"govsoc API on http://{settings.api.host}:{settings.api.port} (OpenAPI: /docs); "
                      "pipeline in the worker processes", markup=False, highlight=False, soft_wrap=True)
    try:
        uvicorn.run(app, host=settings.api.host, port=settings.api.port, log_level="warning")
    finally:
        report_store.close()
        runtime.close()
