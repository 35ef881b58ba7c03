"""`govsoc rules import PATH`: a rule folder or release archive validated and copied into the rule
set; refused files listed with their reason; hostile archive members never written outside."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from api.cli.rules import import_rules, rules_app
from detections.sigma import load_rules

GOOD = """title: Whoami {n}
id: 00000000-0000-4000-8000-00000000000{n}
logsource: {{category: process_creation, product: windows}}
detection:
  sel: {{Image|endswith: '\\\\whoami{n}.exe'}}
  condition: sel
level: low
"""
BAD = "title: bad\nlogsource: {product: windows}\ndetection: {sel: {a|endwith: b}, condition: sel}\n"


def _files() -> dict[str, str]:
    return {"rules/windows/a.yml": GOOD.format(n=1), "rules/windows/b.yml": GOOD.format(n=2),
            "rules/windows/bad.yml": BAD, "README.md": "not a rule"}


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "sigma-main"
    for name, text in _files().items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def _check(report_copied: list[str], report_refused: list[str], target: Path) -> None:
    assert report_copied == ["rules/windows/a.yml", "rules/windows/b.yml"]
    assert len([line for line in report_refused if "bad.yml" in line and "endwith" in line]) == 1
    ruleset, errors = load_rules([target])
    assert errors == [] and len(ruleset.rule_ids) == 2


def test_a_folder_is_validated_and_copied(tmp_path: Path) -> None:
    report = import_rules(_folder(tmp_path), tmp_path / "configured")
    assert report.target == tmp_path / "configured" / "sigma-main"
    _check(report.copied, report.refused, report.target)


def test_zip_and_tar_archives_with_hostile_members(tmp_path: Path) -> None:
    hostile = {"../escape.yml": GOOD.format(n=3), "/abs.yml": GOOD.format(n=4)}
    zipped = tmp_path / "sigma_all_rules.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        for name, text in {**_files(), **hostile}.items():
            archive.writestr(name, text)
        archive.writestr("rules/huge.yml", "#" * (1024 * 1024 + 10))
    report = import_rules(zipped, tmp_path / "z")
    _check(report.copied, report.refused, report.target)
    assert any("huge.yml" in line and "larger" in line for line in report.refused)
    assert sum("'..'" in line for line in report.refused) == 2
    assert not (tmp_path / "escape.yml").exists() and not (tmp_path / "z" / "escape.yml").exists()

    tarred = tmp_path / "sigma_core.tar.gz"
    with tarfile.open(tarred, "w:gz") as archive:
        for name, text in {**_files(), **hostile}.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("rules/link.yml")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    report = import_rules(tarred, tmp_path / "t")
    assert report.target == tmp_path / "t" / "sigma_core"
    _check(report.copied, report.refused, report.target)
    assert not (report.target / "rules" / "link.yml").exists()


def test_the_command_reports_and_exits_1_when_some_file_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(rules_app, ["import", str(_folder(tmp_path)), "--into", str(tmp_path / "x"),
                                            "--json"])
    assert result.exit_code == 1, result.output
    report = orjson.loads(result.stdout.strip().splitlines()[-1])  # structlog is configured by main, not here
    assert report["copied"] == ["rules/windows/a.yml", "rules/windows/b.yml"] and len(report["refused"]) == 1
    bad_kind = tmp_path / "rules.rar"
    bad_kind.write_bytes(b"x")
    assert CliRunner().invoke(rules_app, ["import", str(bad_kind), "--into", str(tmp_path / "y")]).exit_code == 2
    assert CliRunner().invoke(rules_app, ["import", str(tmp_path / "absent")]).exit_code == 2


@pytest.mark.parametrize("name", ["sigma.zip"])
def test_a_broken_archive_is_a_usage_error(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"PK\x03\x04 not really")
    assert CliRunner().invoke(rules_app, ["import", str(tmp_path / name), "--into", str(tmp_path / "y")]).exit_code == 2
