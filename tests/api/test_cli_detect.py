"""`govsoc detect` and `govsoc rules check`, driven through typer on an app built here from the
command functions (the commands' registration in api/cli/main.py is separate).

Also the file-kind detection of `sensors.formats`, which `detect` stands on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from api.cli.common import configure_logging
from api.cli.detect import detect
from api.cli.rules import reason_kind, rules_app
from sensors.formats import FileKind, file_kind, read_any

REGRESSION = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sigma-regression"
SYSMON_16 = REGRESSION / "rules/windows/sysmon/sysmon_config_modification"
needs_data = pytest.mark.skipif(not SYSMON_16.is_dir(), reason="../shared/data/sigma-regression is not present")

RULE = """
title: Sysmon configuration changed
id: 33333333-3333-4333-8333-333333333333
status: test
logsource: {product: windows, service: sysmon}
detection:
  selection:
    EventID: 16
    Configuration|endswith: '.xml'
  condition: selection
level: high
tags: [attack.defense-evasion, attack.t1562.001]
"""
NO_MATCH_RULE = RULE.replace("'.xml'", "'.nothing'").replace("33333333-3333", "44444444-4444")
BROKEN_RULE = """
title: Broken
id: 55555555-5555-4555-8555-555555555555
logsource: {product: windows, service: sysmon}
detection:
  selection:
    Image|endwith: x.exe
  condition: selection
"""
WINLOGBEAT = {"@timestamp": "2026-11-23T07:00:00Z", "winlog": {
    "channel": "Microsoft-Windows-Sysmon/Operational", "event_id": 16, "provider_name": "Microsoft-Windows-Sysmon",
    "record_id": 7, "computer_name": "pc-02", "event_data": {"Configuration": r"C:\cfg\sysmon.xml"}}}

app = typer.Typer()


@app.callback()
def main() -> None:
    configure_logging(False)  # as api/cli/main.py does: logs on stderr, warnings and up


app.command()(detect)
app.add_typer(rules_app, name="rules")
runner = CliRunner()


def rules_dir(tmp_path: Path, **files: str) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    for name, text in files.items():
        (directory / f"{name}.yml").write_text(text, encoding="utf-8")
    return directory


def alerts_of(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


# --- detect ---------------------------------------------------------------------------------------

@needs_data
def test_detect_writes_one_json_line_per_alert_and_exits_1(tmp_path: Path) -> None:
    rules = rules_dir(tmp_path, r=RULE)
    result = runner.invoke(app, ["detect", str(SYSMON_16), "--rules", str(rules), "--tenant", "hanoi", "--quiet"])
    assert result.exit_code == 1, result.output
    alerts = alerts_of(result.stdout)
    assert len(alerts) == 2  # the .evtx and the .json render the same event; both files are read
    for alert in alerts:
        assert set(alert) == {"@timestamp", "rule", "tags", "organization", "events"}
        assert alert["rule"] == {"id": "33333333-3333-4333-8333-333333333333",
                                 "name": "Sysmon configuration changed", "level": "high"}
        assert alert["tags"] == ["attack.defense-evasion", "attack.t1562.001"]
        assert alert["organization"] == {"id": "hanoi"}
        [event] = alert["events"]
        assert event["winlog"]["event_data"]["Configuration"].endswith(".xml")
        assert event["log"]["file"]["path"].startswith(str(SYSMON_16.resolve()))
    assert {Path(a["events"][0]["log"]["file"]["path"]).suffix for a in alerts} == {".evtx", ".json"}


@needs_data
def test_detect_without_alerts_prints_nothing_and_exits_0(tmp_path: Path) -> None:
    rules = rules_dir(tmp_path, r=NO_MATCH_RULE)
    result = runner.invoke(app, ["detect", str(SYSMON_16), "--rules", str(rules)])
    assert result.exit_code == 0, result.output
    assert alerts_of(result.stdout) == []
    assert "0 alerts" in result.stderr
    assert "1 rules loaded, 0 refused" in result.stderr


def test_detect_reads_directories_recursively_whatever_the_format(tmp_path: Path) -> None:
    logs = tmp_path / "logs" / "deep"
    logs.mkdir(parents=True)
    (logs / "winlogbeat.ndjson").write_text(json.dumps(WINLOGBEAT) + "\n", encoding="utf-8")
    (logs / "auth.log").write_text("Nov 23 14:00:01 portal sshd[1]: Accepted password for bob from 10.0.0.1 "
                                   "port 22 ssh2\n", encoding="utf-8")
    out = tmp_path / "alerts.jsonl"
    rules = rules_dir(tmp_path, r=RULE, broken=BROKEN_RULE)
    result = runner.invoke(app, ["detect", str(tmp_path / "logs"), "--rules", str(rules), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    [alert] = alerts_of(out.read_text(encoding="utf-8"))
    assert alert["events"][0]["host"]["name"] == "pc-02"
    assert "2 files, 2 events" in result.stderr
    assert "1 rules loaded, 1 refused" in result.stderr


def test_detect_of_a_missing_path_or_rule_directory_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["detect", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "nope: no such file or directory" in result.stderr
    result = runner.invoke(app, ["detect", str(tmp_path), "--rules", str(tmp_path / "no-rules")])
    assert result.exit_code == 2
    assert "--rules" in result.stderr


def test_detect_with_no_loadable_rule_is_a_usage_error(tmp_path: Path) -> None:
    rules = rules_dir(tmp_path, broken=BROKEN_RULE)
    result = runner.invoke(app, ["detect", str(rules), "--rules", str(rules)])
    assert result.exit_code == 2
    assert "no rule could be loaded" in result.stderr


def test_detect_with_the_built_in_rules_runs(tmp_path: Path) -> None:
    (tmp_path / "empty.log").write_text("", encoding="utf-8")
    result = runner.invoke(app, ["detect", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output


# --- rules check ----------------------------------------------------------------------------------

def test_rules_check_names_each_refused_file_with_line_and_reason(tmp_path: Path) -> None:
    rules = rules_dir(tmp_path, good=RULE, broken=BROKEN_RULE)
    result = runner.invoke(app, ["rules", "check", str(rules)])
    assert result.exit_code == 1
    assert f"{rules / 'broken.yml'}:7:5 detection.selection.Image|endwith" in result.stdout
    assert "endwith" in result.stdout
    assert "1 loaded (1 rules, 0 correlations), 1 refused" in result.stdout


def test_rules_check_json_counts_and_exit_0_when_all_load(tmp_path: Path) -> None:
    rules = rules_dir(tmp_path, good=RULE, other=NO_MATCH_RULE)
    result = runner.invoke(app, ["rules", "check", str(rules), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.splitlines()[-1])
    assert (report["loaded"], report["refused"], report["errors"]) == (2, 0, [])


def test_refusals_are_counted_by_kind_without_their_values() -> None:
    assert reason_kind("no log source mapping for product=m365, service=audit") == \
        "no log source mapping for product=m365, service=audit"
    assert reason_kind("placeholder %Admins% (|expand) is not supported") == \
        "placeholder %…% (|expand) is not supported"
    assert reason_kind("unknown modifier 'endwith' at 12") == "unknown modifier '…' at N"


# --- sensors.formats ------------------------------------------------------------------------------

@needs_data
def test_file_kinds_come_from_the_name_and_the_first_bytes(tmp_path: Path) -> None:
    [evtx] = SYSMON_16.glob("*.evtx")
    [pretty] = SYSMON_16.glob("*.json")
    renamed = tmp_path / "export.bin"
    renamed.write_bytes(evtx.read_bytes())
    lines = tmp_path / "events.ndjson"
    lines.write_text(json.dumps(WINLOGBEAT) + "\n", encoding="utf-8")
    eve = tmp_path / "eve.json"
    eve.write_text('{"event_type": "dns", "src_ip": "10.0.0.1"}\n', encoding="utf-8")
    assert [file_kind(p) for p in (evtx, renamed, pretty, lines, eve, SYSMON_16 / "info.yml")] == [
        FileKind.EVTX, FileKind.EVTX, FileKind.WINDOWS_JSON, FileKind.WINDOWS_JSON, FileKind.TEXT, FileKind.TEXT]


def test_read_any_of_a_missing_path_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        list(read_any(tmp_path / "missing", "hanoi", "test"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".log", ".json", ".evtx", ""]))
@example(data=b"ElfFile\x00garbage", suffix=".bin")
@example(data=b'{"Event": {"System": {"EventID": 1}}}{"winlog": 5}[', suffix=".json")
def test_arbitrary_bytes_become_events_or_dead_letters_never_an_exception(
        tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"input{suffix}"
    path.write_bytes(data)
    for batch in read_any(path, "hanoi", "fuzz"):
        assert all(event.tenant == "hanoi" for event in batch.events)
