"""`govsoc ml train` and `govsoc ml score`, run in-process on files and a real data directory.

(Mounted on its own typer app here; the lead registers `ml_app` in api/cli/main.py.)
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli.common import configure_logging
from api.cli.ml import ml_app, parse_duration
from pipeline.records import Event
from tests.detections.ml.factory import DAY1, DAY2, normal_day, scan

runner = CliRunner()


@pytest.fixture(autouse=True)
def _logs_on_stderr() -> None:
    """As `govsoc`'s own callback does (api/cli/main.py): logs to stderr, stdout for results."""
    configure_logging(verbose=False)


def write(path: Path, events: list[Event]) -> Path:
    path.write_bytes(b"".join(e.to_json() + b"\n" for e in events) + b"not json\n")
    return path


@pytest.fixture(scope="module")
def baseline_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("ml") / "baseline.ndjson", normal_day(DAY1, seed=1))


def test_train_from_files_saves_one_model_per_kind_then_score_finds_the_scan(baseline_file: Path,
                                                                              tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = runner.invoke(ml_app, ["train", "--tenant", "hanoi", "--from-file", str(baseline_file),
                                    "--data-dir", str(data), "--json"])
    assert result.exit_code == 0, result.output
    models = json.loads(result.stdout)["models"]
    assert {m["kind"] for m in models if m["status"] == "trained"} == {"auth_source", "auth_user", "flow_source",
                                                                        "dns_client"}
    assert (data / "models" / "hanoi" / "flow_source.skops").is_file()
    attack = write(tmp_path / "attack.ndjson", scan(DAY2 + timedelta(hours=10)))
    result = runner.invoke(ml_app, ["score", str(attack), "--data-dir", str(data), "--json"])
    assert result.exit_code == 1, result.output  # findings
    report = json.loads(result.stdout)
    assert report["skipped_lines"] == 1
    assert [a["entity"] for a in report["alerts"]] == [{"source.ip": "10.0.0.5"}]
    assert "flow_distinct_destinations" in report["alerts"][0]["description"]
    model_file = data / "models" / "hanoi" / "dns_client.skops"
    altered = bytearray(model_file.read_bytes())
    altered[-1] ^= 0x01
    model_file.write_bytes(bytes(altered))
    result = runner.invoke(ml_app, ["score", str(attack), "--data-dir", str(data)])
    assert result.exit_code == 3
    assert "dns_client.skops: checksum mismatch" in result.output
    result = runner.invoke(ml_app, ["status", "--tenant", "hanoi", "--data-dir", str(data), "--json"])
    assert result.exit_code == 0, result.output
    by_kind = {m["kind"]: m for m in json.loads(result.stdout)["models"]}
    assert by_kind["flow_source"]["status"] == "ok" and by_kind["flow_source"]["rows"] > 0
    assert by_kind["dns_client"]["status"].startswith("refused: checksum mismatch")
    result = runner.invoke(ml_app, ["status", "--tenant", "danang", "--data-dir", str(data), "--json"])
    assert {m["status"] for m in json.loads(result.stdout)["models"]} == {"cold start (no model: no ML alerts)"}


def test_train_with_too_little_history_says_so(tmp_path: Path) -> None:
    few = write(tmp_path / "few.ndjson", scan(DAY1)[:3])
    result = runner.invoke(ml_app, ["train", "--tenant", "hanoi", "--from-file", str(few),
                                    "--data-dir", str(tmp_path / "data"), "--json"])
    assert result.exit_code == 3
    assert "cold start" in result.stdout and "no model trained for 'hanoi'" in result.output


def test_train_from_an_empty_store_is_a_cold_start(tmp_path: Path) -> None:
    result = runner.invoke(ml_app, ["train", "--tenant", "hanoi", "--since", "14d", "--data-dir", str(tmp_path)])
    assert result.exit_code == 3, result.output


def test_bad_flags_are_usage_errors(tmp_path: Path) -> None:
    result = runner.invoke(ml_app, ["train", "--tenant", "hanoi", "--since", "two weeks", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "--since" in result.output
    result = runner.invoke(ml_app, ["train", "--tenant", "nowhere", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "unknown tenant 'nowhere'" in result.output
    result = runner.invoke(ml_app, ["score", str(tmp_path / "missing.ndjson"), "--data-dir", str(tmp_path)])
    assert result.exit_code == 2


def test_parse_duration() -> None:
    assert parse_duration("14d") == timedelta(days=14)
    assert parse_duration("30m") == timedelta(minutes=30)
    with pytest.raises(ValueError):
        parse_duration("0d")


def test_train_reads_the_tenants_window_from_the_store(tmp_path: Path) -> None:
    from pipeline.store.registry import open_event_store

    data = tmp_path / "data"
    data.mkdir()
    store = open_event_store(f"sqlite:///{data / 'govsoc.db'}")
    store.write(normal_day(DAY1, seed=1))
    store.close()
    result = runner.invoke(ml_app, ["train", "--tenant", "hanoi", "--since", "3650d", "--data-dir", str(data),
                                    "--json"])
    assert result.exit_code == 0, result.output
    assert all(m["status"] == "trained" for m in json.loads(result.stdout)["models"])
    result = runner.invoke(ml_app, ["train", "--tenant", "danang", "--since", "3650d", "--data-dir", str(data)])
    assert result.exit_code == 3  # another tenant's events are not danang's history


def test_retrain_trains_missing_models_once_and_status_shows_drift(tmp_path: Path) -> None:
    from pipeline.store.registry import open_event_store

    data = tmp_path / "data"
    data.mkdir()
    store = open_event_store(f"sqlite:///{data / 'govsoc.db'}")
    store.write(normal_day(DAY1, seed=1))
    store.close()
    args = ["retrain", "--tenant", "hanoi", "--tenant", "danang", "--since", "3650d", "--data-dir", str(data),
            "--json"]
    result = runner.invoke(ml_app, args)
    assert result.exit_code == 0, result.output
    first = {t["tenant"]: t for t in json.loads(result.stdout)["tenants"]}
    assert first["hanoi"]["retrained"] and first["hanoi"]["models"] == 4 and first["hanoi"]["reason"] == "no model yet"
    assert first["danang"]["models"] == 0 and all(v.startswith("cold start") for v in first["danang"]["kinds"].values())
    result = runner.invoke(ml_app, args[:3] + args[5:])
    assert [t["retrained"] for t in json.loads(result.stdout)["tenants"]] == [False]  # fresh: left alone
    result = runner.invoke(ml_app, ["status", "--tenant", "hanoi", "--drift", "3650d", "--data-dir", str(data),
                                    "--json"])
    assert result.exit_code == 0, result.output
    flows = next(m for m in json.loads(result.stdout)["models"] if m["kind"] == "flow_source")
    assert flows["status"] == "ok" and flows["drift"].startswith("flow_")
    assert float(flows["drift"].split(",")[0].split()[1]) < 1.0  # its own training day: no drift
