"""`govsoc setup` (topics, templates, tables; idempotent), and the `worker`/`api` commands' doors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import typer
from typer.testing import CliRunner

from api.cli.api_serve import api_serve
from api.cli.common import configure_logging
from api.cli.setup import setup
from api.cli.worker import worker_app
from api.wiring import PlaybookStep, build_playbook_runner, build_runtime, setup_backends
from config.load import load_settings
from config.tenants import TenantScope
from pipeline.bus import Message, topics
from pipeline.store.base import IncidentQuery
from tests.servers import search
from tests.servers.scale import TENANT, auth_log, source

if TYPE_CHECKING:
    from tests.servers.kafka import KafkaServer

pytest_plugins = ["tests.servers.kafka"]
search_server = search.search_server


def test_setup_on_the_embedded_back_end_creates_the_tables_and_is_idempotent(tmp_path: Path) -> None:
    settings = load_settings(None, overrides={"data_dir": tmp_path})
    steps: list[int] = []
    first = setup_backends(settings, None, on_progress=steps.append)
    second = setup_backends(settings, None, on_progress=steps.append)
    assert first == second and first.topics == {} and first.templates == []
    assert (tmp_path / "govsoc.db").is_file() and (tmp_path / "identity.db").is_file()
    assert steps == [1, 1, 1, 1, 1, 1]


def test_setup_creates_topics_with_the_urls_partitions_and_index_templates(
        own_noida_kafka: KafkaServer, search_server: search.SearchServer, tmp_path: Path) -> None:
    settings = load_settings(None, overrides={"data_dir": tmp_path, "pipeline": {
        "bus_url": own_noida_kafka.url(partitions=3),
        "events_url": search_server.store_url(prefix="setup")}})
    try:
        report = setup_backends(settings, 30, on_progress=lambda n: None)
        assert report.topics == dict.fromkeys(topics.ALL, 3)
        assert report.templates == ["setup-events", "setup-deadletters"]
        assert search_server.request("GET", "/_index_template/setup-events")["index_templates"]
        again = setup_backends(settings, 30, on_progress=lambda n: None)  # existing topics are kept
        assert again.topics == report.topics and again.expired_indices == []
    finally:
        search_server.drop("setup")


def test_setup_command_prints_json(tmp_path: Path) -> None:
    configure_logging(False)  # as `govsoc`'s callback does: logs to stderr, results on stdout
    app = typer.Typer()
    app.command()(setup)
    result = CliRunner().invoke(app, ["--data-dir", str(tmp_path), "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["bus"] == "memory://"


def test_api_refuses_the_in_process_bus(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(api_serve)
    result = CliRunner().invoke(app, ["--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "memory://" in result.output


def test_worker_lists_its_stages() -> None:
    result = CliRunner().invoke(worker_app, ["--help"])
    assert result.exit_code == 0
    for stage in ("ingest", "detect", "incidents", "playbooks"):
        assert stage in result.stdout


def test_playbook_step_starts_each_triggered_run_once(tmp_path: Path) -> None:
    """The playbooks worker's step: an incident reference -> its triggered runs; a redelivery
    finds the same runs (ids from the incident's first sighting) instead of starting more."""
    settings = load_settings(None, overrides={"data_dir": tmp_path / "data"})
    runtime = build_runtime(settings)
    try:
        runtime.pipeline.replay([auth_log(tmp_path / "auth.log", lines=3000, attacks=2)], source(TENANT))
        incidents = runtime.incidents.incidents(TenantScope.everything(), IncidentQuery(limit=100))
        assert incidents
        messages = [Message(topics.INCIDENTS, 0, n, i.tenant, orjson.dumps({"id": i.id, "tenant": i.tenant}))
                    for n, i in enumerate(incidents)]
        step = PlaybookStep(runtime)
        started = step(messages)
        runs = build_playbook_runner(runtime, {}).runs.runs(limit=1000)
        assert started >= 1 and len(runs) == started
        step(messages)  # delivered again
        assert len(build_playbook_runner(runtime, {}).runs.runs(limit=1000)) == len(runs)
    finally:
        runtime.close()


def test_a_worker_refuses_the_in_process_bus(tmp_path: Path) -> None:
    result = CliRunner().invoke(worker_app, ["detect", "--data-dir", str(tmp_path), "--quiet"])
    assert result.exit_code == 2
    assert "memory://" in result.output
