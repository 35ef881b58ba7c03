"""The run store's behaviour, run against SqliteRunStore and PostgresRunStore alike.

`runs_backend` is parametrised over both; it opens stores on one location (a SQLite file next to
the incident database, or a PostgreSQL database of the test's own shared with the incident store),
so a second `open_runs()` is what a restarted worker sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest

from config.settings import IncidentSettings, TenantConfig, TenantKind
from config.tenants import TenantTree
from detections.incidents import IncidentLifecycle, IncidentService
from pipeline.store.registry import open_incident_store
from playbooks import (
    LIBRARY,
    ConnectorRegistry,
    HttpConnector,
    PlaybookError,
    PlaybookRunner,
    Run,
    RunMode,
    RunState,
    SqliteRunStore,
    StepState,
    load_playbooks,
    runs_db_path,
)
from playbooks.runs_postgres import PostgresRunStore
from tests.factories import T0, make_alert
from tests.playbooks.conftest import Receiver
from tests.servers import postgres

postgres_server = postgres.postgres_server  # one PostgreSQL per session (tests/servers/postgres.py)
postgres_database = postgres.postgres_database

RunStore = SqliteRunStore | PostgresRunStore
TREE = TenantTree.from_config([
    TenantConfig(id="national", name="N", kind=TenantKind.NATIONAL),
    TenantConfig(id="hanoi", name="HN", parent="national", kind=TenantKind.PROVINCE),
])


@dataclass
class RunsBackend:
    incident_url: str
    open: Callable[[], RunStore]
    opened: list[RunStore] = field(default_factory=list)

    def open_runs(self) -> RunStore:
        self.opened.append(self.open())
        return self.opened[-1]


@pytest.fixture(params=["sqlite", "postgres"])
def runs_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunsBackend]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'govsoc.db'}"
        backend = RunsBackend(url, lambda: SqliteRunStore(runs_db_path(url)))
    else:
        url = request.getfixturevalue("postgres_database")
        backend = RunsBackend(url, lambda: PostgresRunStore(url))  # the incident store's database
    yield backend
    for store in backend.opened:
        store.close()


def make_run(n: int, *, state: RunState = RunState.RUNNING) -> Run:
    at = T0 + timedelta(minutes=n)
    return Run(id=f"run-{n}", playbook_id="pb", incident_id="inc-1", tenant="hanoi", mode=RunMode.LIVE,
               state=state, cursor="a", created=at, updated=at)


def test_a_run_is_created_once_with_pending_steps(runs_backend: RunsBackend) -> None:
    runs = runs_backend.open_runs()
    run = make_run(1)
    assert runs.create_run(run, '{"id": "pb"}', ["a", "b"]) is True
    assert runs.create_run(run, '{"id": "other"}', ["x"]) is False
    stored = runs.run("run-1")
    assert stored is not None
    assert (stored.id, stored.state, stored.cursor, stored.created, stored.updated) == (
        "run-1", RunState.RUNNING, "a", run.created, run.created)
    assert [(s.step_id, s.position, s.state, s.output, s.started) for s in stored.steps] == [
        ("a", 0, StepState.PENDING, {}, None), ("b", 1, StepState.PENDING, {}, None)]
    assert runs.playbook_json("run-1") == '{"id": "pb"}'
    assert runs.run("run-none") is None
    with pytest.raises(PlaybookError, match="run-none"):
        runs.playbook_json("run-none")


def test_steps_record_their_first_start_and_keep_output(runs_backend: RunsBackend) -> None:
    runs = runs_backend.open_runs()
    runs.create_run(make_run(1), "{}", ["a"])
    started, later = T0 + timedelta(minutes=2), T0 + timedelta(minutes=3)
    runs.update_step("run-1", "a", StepState.RUNNING, started)
    runs.update_step("run-1", "a", StepState.RUNNING, later, output={"n": 1, "ip": "203.0.113.7"})
    runs.update_step("run-1", "a", StepState.FAILED, later + timedelta(minutes=1), error="timeout")
    stored = runs.run("run-1")
    assert stored is not None
    step = stored.step("a")
    assert (step.state, step.started, step.output, step.error, step.updated) == (
        StepState.FAILED, started, {"n": 1, "ip": "203.0.113.7"}, "timeout", later + timedelta(minutes=1))
    runs.update_run("run-1", RunState.FAILED, None, later)
    stored = runs.run("run-1")
    assert stored is not None and (stored.state, stored.cursor, stored.updated) == (RunState.FAILED, None, later)


def test_runs_are_listed_newest_first_by_state(runs_backend: RunsBackend) -> None:
    runs = runs_backend.open_runs()
    for n, state in enumerate([RunState.DONE, RunState.WAITING_APPROVAL, RunState.DONE]):
        runs.create_run(make_run(n, state=state), "{}", [])
    assert [r.id for r in runs.runs()] == ["run-2", "run-1", "run-0"]
    assert [r.id for r in runs.runs(RunState.DONE)] == ["run-2", "run-0"]
    assert [r.id for r in runs.runs(limit=1)] == ["run-2"]


def test_approvals_in_order_and_a_second_decision_replaces_the_first(runs_backend: RunsBackend) -> None:
    runs = runs_backend.open_runs()
    runs.record_approval("run-1", "a", "lan", "analyst", "approved", T0 + timedelta(minutes=2))
    runs.record_approval("run-1", "a", "binh", "admin", "approved", T0 + timedelta(minutes=1))
    runs.record_approval("run-1", "b", "lan", "analyst", "approved", T0)
    assert runs.approvals("run-1", "a") == [("binh", "admin", "approved"), ("lan", "analyst", "approved")]
    runs.record_approval("run-1", "a", "binh", "admin", "rejected", T0 + timedelta(minutes=3))
    assert runs.approvals("run-1", "a") == [("lan", "analyst", "approved"), ("binh", "admin", "rejected")]


def test_side_effects_begin_once_and_finish(runs_backend: RunsBackend) -> None:
    runs = runs_backend.open_runs()
    assert runs.side_effect("run-1:block") is None
    runs.begin_side_effect("run-1:block", "run-1", "block", {"target": "203.0.113.7"}, T0)
    runs.begin_side_effect("run-1:block", "run-1", "block", {"target": "changed"}, T0 + timedelta(minutes=1))
    begun = runs.side_effect("run-1:block")
    assert begun is not None and (begun.state, begun.request, begun.result) == (
        "started", {"target": "203.0.113.7"}, None)
    runs.finish_side_effect("run-1:block", {"status": 200}, T0 + timedelta(minutes=2))
    done = runs.side_effect("run-1:block")
    assert done is not None and (done.state, done.result) == ("done", {"status": 200})


def test_a_reopened_store_has_everything(runs_backend: RunsBackend) -> None:
    first = runs_backend.open_runs()
    first.create_run(make_run(1), "{}", ["a"])
    first.begin_side_effect("run-1:a", "run-1", "a", {}, T0)
    first.close()
    again = runs_backend.open_runs()
    assert again.run("run-1") is not None and again.side_effect("run-1:a") is not None


def test_a_playbook_run_survives_a_restart_without_repeating_its_side_effect(
        runs_backend: RunsBackend, receiver: Receiver) -> None:
    """The shipped brute-force playbook, approved, then run again by a restarted worker."""
    store = open_incident_store(runs_backend.incident_url)
    try:
        [incident] = IncidentService(store, TREE, IncidentSettings()).ingest(
            [make_alert("hanoi", 0), make_alert("hanoi", 1)])
        playbooks, errors = load_playbooks([LIBRARY])
        assert errors == []
        playbook = next(p for p in playbooks if p.id == "brute-force-login")

        def runner(runs: RunStore) -> PlaybookRunner:
            connectors = ConnectorRegistry({"http": HttpConnector(name="http", url=receiver.url, retries=0,
                                                                  timeout_s=2.0)})
            # PlaybookRunner is typed with SqliteRunStore; PostgresRunStore has the same methods.
            return PlaybookRunner(store, IncidentLifecycle(store, IncidentSettings()), connectors, TREE,
                                  cast(SqliteRunStore, runs))

        now = T0 + timedelta(minutes=5)
        run = runner(runs_backend.open_runs()).start(incident, playbook, now)
        assert run.state is RunState.WAITING_APPROVAL
        done = runner(runs_backend.open_runs()).approve(run.id, "approve-block", "lan", "analyst",
                                                        now + timedelta(minutes=1))
        assert done.state is RunState.DONE and len(receiver.requests) == 1
        again = runner(runs_backend.open_runs()).resume(run.id, now + timedelta(minutes=2))
        assert again.state is RunState.DONE and len(receiver.requests) == 1
    finally:
        store.close()


def test_postgres_runs_at_a_bad_url_name_it_without_the_password() -> None:
    with pytest.raises(PlaybookError) as caught:
        PostgresRunStore("postgresql://govsoc:s3cret@127.0.0.1:1/govsoc")
    assert "s3cret" not in str(caught.value) and "postgresql://govsoc:***@127.0.0.1:1/govsoc" in str(caught.value)
