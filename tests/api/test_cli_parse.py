"""`govsoc parse`: every input line is one event on stdout (or in --out) or one counted dead letter.

Driven through a typer app built here from the command function, so the test needs nothing of
`api.cli.main`. Data: loghub's Apache_2k.log (../shared/data/loghub, research use with
attribution, see loghub/LICENSE) and small files written here.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from api.cli.common import ExitCode, configure_logging
from api.cli.parse import parse
from sensors.parsers import PARSERS
from tests.sensors.test_syslog import SAMPLE_LINES

APACHE = Path(__file__).resolve().parents[3] / "shared" / "data" / "loghub" / "Apache" / "Apache_2k.log"
CEF_LINES = ["CEF:0|Vendor|Product|1.0|100|blocked|5|rt=1795402800000 src=203.0.113.7 act=blocked",
             "this is not CEF", "", "CEF:0|Vendor|Product|1.0|101|allowed|3|rt=1795402800000 src=10.0.0.1",
             "CEF:0|broken", "also not CEF"]

app = typer.Typer()
app.command()(parse)


@app.callback()
def main() -> None:
    configure_logging(False)  # as api.cli.main does: logs on stderr, never in the results


runner = CliRunner()


def run(*args: str, code: int = 0) -> Any:
    result = runner.invoke(app, ["parse", *args, "--quiet"])
    assert result.exit_code == code, result.output
    return result


def documents(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def cef_file(tmp_path: Path) -> Path:
    path = tmp_path / "cef.log"
    path.write_text("\n".join(CEF_LINES) + "\n", encoding="utf-8")
    return path


def test_every_apache_line_becomes_an_event(tmp_path: Path) -> None:
    result = run(str(APACHE), "--format", "apache_error", "--tenant", "national", "--sensor", "hn-1")
    docs = documents(result.stdout)
    assert len(docs) == 2000
    assert {d["event"]["dataset"] for d in docs} == {"apache.error"}
    assert all(d["organization"]["id"] == "national" and d["observer"]["name"] == "hn-1" for d in docs)
    assert docs[0]["event"]["original"] == APACHE.read_text(encoding="utf-8").split("\n")[0]
    assert len({d["event"]["id"] for d in docs}) == 2000
    assert "2000 events, 0 dead letters" in result.stderr


def test_dead_letters_are_counted_by_reason_on_stderr(cef_file: Path) -> None:
    result = run(str(cef_file), "--format", "cef")
    docs = documents(result.stdout)
    assert [d["event"]["code"] for d in docs] == ["100", "101"]
    assert docs[0]["@timestamp"] == "2026-11-23T03:00:00.000000Z" and docs[0]["source"]["ip"] == "203.0.113.7"
    stderr = result.stderr
    assert "2 events, 3 dead letters" in stderr
    assert "       2  not CEF: expected CEF:Version" in stderr
    assert "       1  CEF header: 7 fields" in stderr
    non_empty = sum(1 for line in CEF_LINES if line)
    assert len(docs) + 3 == non_empty  # none vanish


def test_out_file_and_gzip_input(cef_file: Path, tmp_path: Path) -> None:
    packed = tmp_path / "cef.log.gz"
    packed.write_bytes(gzip.compress(cef_file.read_bytes()))
    out = tmp_path / "events.jsonl"
    result = run(str(cef_file), str(packed), "--format", "cef", "--out", str(out))
    assert result.stdout == ""
    docs = documents(out.read_text(encoding="utf-8"))
    assert len(docs) == 4 and "4 events, 6 dead letters" in result.stderr
    assert docs[0]["log"]["file"]["path"] != docs[2]["log"]["file"]["path"]


@pytest.mark.parametrize("fmt", sorted(PARSERS))
def test_every_format_through_the_file_reader(fmt: str, tmp_path: Path) -> None:
    """The registry's sample line of each format becomes one complete event, garbage a dead letter."""
    path = tmp_path / "in.log"
    path.write_text(f"{SAMPLE_LINES[fmt]}\nnot a log line\n", encoding="utf-8")
    result = run(str(path), "--format", fmt, "--sensor", "s1")
    (doc,) = documents(result.stdout)
    assert doc["@timestamp"] == "2026-11-23T03:00:00.000000Z"
    assert doc["event"]["original"] == SAMPLE_LINES[fmt] and doc["observer"]["name"] == "s1"
    assert doc["log"]["file"]["path"] == str(path.resolve()) and doc["organization"]["id"]
    assert "1 events, 1 dead letters" in result.stderr


def test_default_format_is_auth(tmp_path: Path) -> None:
    path = tmp_path / "auth.log"
    path.write_text("Nov 23 10:00:00 web1 sshd[1]: Failed password for root from 203.0.113.7 port 22 ssh2\n",
                    encoding="utf-8")
    docs = documents(run(str(path)).stdout)
    assert docs[0]["event"]["dataset"] == "system.auth" and docs[0]["event"]["outcome"] == "failure"


@pytest.mark.parametrize("args, reason", [
    (["--format", "nope"], "unknown format 'nope'"),
    (["--tenant", "atlantis"], "unknown tenant 'atlantis'"),
    (["--timezone", "Mars/Olympus"], "unknown time zone"),
])
def test_usage_errors(cef_file: Path, args: list[str], reason: str) -> None:
    result = run(str(cef_file), *args, code=ExitCode.USAGE)
    assert reason in result.stderr and result.stdout == ""


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run(str(tmp_path / "absent.log"), code=ExitCode.USAGE)
    assert "no such file" in result.stderr


SURICATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "suricata-verify"


def test_a_capture_goes_through_the_packet_sensor() -> None:
    capture = SURICATA / "alert-distance-within-1" / "input.pcap"  # OISF suricata-verify, MIT-style licence
    result = run(str(capture))
    datasets = {doc["event"]["dataset"] for doc in documents(result.stdout)}
    assert {"flow", "http"} <= datasets
