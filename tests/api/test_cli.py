"""The `govsoc` command line, run in-process on a real data directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from api.cli.main import app
from api.demo.authlog import ICT, Attack, AuthLogSpec, generate_auth_log
from tests.factories import T0

runner = CliRunner()
ATTACK = Attack(source="203.0.113.77", at=T0.astimezone(ICT).replace(hour=14))
GARBAGE = [b"\xff\xfe\x00binary junk", b"this is not a log line", b"<<<>>>", "Tháng 13 32 99:99:99 x".encode()]


def run(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    spec = AuthLogSpec(host="portal", start=T0.astimezone(ICT).replace(hour=0), lines=600, attacks=(ATTACK,))
    lines = [line.encode() for line in generate_auth_log(spec)]
    for i, junk in enumerate(GARBAGE):  # garbage among the good lines, not only at the end
        lines.insert(50 + 100 * i, junk)
    path = tmp_path / "auth.log"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def replay(path: Path, data_dir: Path) -> dict[str, Any]:
    result = run("replay", str(path), "--tenant", "hanoi", "--sensor", "hanoi-s1", "--data-dir", str(data_dir),
                 "--json", "--quiet")
    return dict(json.loads(result.stdout))


def test_replay_stores_good_lines_and_dead_letters_bad_ones(log_file: Path, tmp_path: Path) -> None:
    summary = replay(log_file, tmp_path / "data")
    good = sum(1 for line in log_file.read_bytes().splitlines() if line) - len(GARBAGE)
    assert summary["ingested"] == good
    assert summary["dead_lettered"] == len(GARBAGE)
    assert summary["alerts"] >= 1


def test_replaying_twice_keeps_the_same_counts(log_file: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    replay(log_file, data)
    first = (json.loads(run("alerts", "list", "--json", "--data-dir", str(data)).stdout),
             json.loads(run("incidents", "list", "--json", "--data-dir", str(data)).stdout))
    replay(log_file, data)
    second = (json.loads(run("alerts", "list", "--json", "--data-dir", str(data)).stdout),
              json.loads(run("incidents", "list", "--json", "--data-dir", str(data)).stdout))
    assert [a["id"] for a in first[0]["alerts"]] == [a["id"] for a in second[0]["alerts"]]
    assert [(i["id"], i["alert_count"]) for i in first[1]["incidents"]] == \
        [(i["id"], i["alert_count"]) for i in second[1]["incidents"]]
    from config.tenants import TenantScope
    from pipeline.store.base import EventQuery
    from pipeline.store.registry import open_event_store

    store = open_event_store(f"sqlite:///{data / 'govsoc.db'}")
    assert store.count(TenantScope.everything(), EventQuery()) == replay(log_file, data)["ingested"]
    assert store.count_dead_letters(TenantScope.everything()) == len(GARBAGE)
    store.close()


def test_the_brute_force_becomes_an_incident_of_the_tenant(log_file: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    replay(log_file, data)
    incidents = json.loads(run("incidents", "list", "--json", "--data-dir", str(data)).stdout)["incidents"]
    brute = [i for i in incidents if i["entity"].get("source.address") == "203.0.113.77"]
    assert brute and all(i["tenant"] == "hanoi" for i in brute)


def test_a_bad_config_fails_at_start_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "govsoc.yaml"
    bad.write_text("tenants:\n  - id: national\n    name: N\n    colour: blue\n", encoding="utf-8")
    result = runner.invoke(app, ["incidents", "list", "--config", str(bad), "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "colour" in result.output and "govsoc.yaml:4" in result.output


def test_replay_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["replay", str(tmp_path / "nope.log"), "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "nope.log: no such file" in result.output


def test_a_failing_step_commits_nothing_and_the_batch_comes_again(tmp_path: Path) -> None:
    from api.wiring import Worker
    from pipeline.bus.memory import MemoryBus
    from pipeline.errors import StoreError

    bus, seen, fail_once = MemoryBus(), [], [True]

    def step(messages: object) -> None:
        if fail_once.pop() if fail_once else False:
            raise StoreError("store unavailable")
        seen.extend(m.value for m in messages)  # type: ignore[attr-defined]

    worker = Worker("ingest", bus, ["t"], step, 10)
    bus.publish("t", [(None, b"1"), (None, b"2")])
    with pytest.raises(StoreError):
        worker.run_once()
    assert worker.run_once() == 2
    assert seen == [b"1", b"2"]
    assert bus.lag("ingest") == 0
