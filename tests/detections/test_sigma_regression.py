"""SigmaHQ's regression data: every rule of ../shared/data/sigma loaded, each folder of
../shared/data/sigma-regression fires the rule its info.yml names, from the .evtx and from the .json.

The events go the way `govsoc detect` takes them (`sensors.formats.read_any`, then
`api.cli.detect.detect_events` over one `SigmaEngine`). Folders that cannot pass are listed in
`EXPECTED_FAILURES`, one reason each, and run as strict xfails: one that starts passing fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from api.cli.detect import detect_events
from detections.sigma import RuleSet, SigmaEngine, load_rules
from sensors.formats import read_any

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
RULES = DATA / "sigma"
REGRESSION = DATA / "sigma-regression"
KINDS = ("evtx", "json")

# Folder (relative to sigma-regression/) -> why it cannot pass.
EXPECTED_FAILURES: dict[str, str] = {
    "rules/cisco/aaa/cisco_cli_dot1x_disabled":
        "holds a raw Cisco CLI log (.raw), no .evtx or .json; and product cisco/service aaa has no log "
        "source mapping, so the rule is refused",
}


def _folders() -> list[Path]:
    return sorted(info.parent for info in REGRESSION.rglob("info.yml"))


def _expected_rule(folder: Path) -> str:
    info = yaml.safe_load((folder / "info.yml").read_text(encoding="utf-8"))
    return str(info["rule_metadata"][0]["id"])


def _cases() -> list[object]:
    cases: list[object] = []
    for folder in _folders():
        name = folder.relative_to(REGRESSION).as_posix()
        for kind in KINDS:
            marks = ([pytest.mark.xfail(reason=EXPECTED_FAILURES[name], strict=True)]
                     if name in EXPECTED_FAILURES else [])
            cases.append(pytest.param(folder, kind, id=f"{name}:{kind}", marks=marks))
    return cases


pytestmark = pytest.mark.skipif(not REGRESSION.is_dir() or not RULES.is_dir(),
                                reason="../shared/data (SigmaHQ rules and regression data) is not present")


@pytest.fixture(scope="module")
def sigmahq() -> RuleSet:
    """Every rule folder of ../shared/data/sigma, loaded once (about 10 s)."""
    ruleset, _errors = load_rules([RULES])
    return ruleset


def test_the_regression_data_is_what_the_table_speaks_of() -> None:
    folders = {folder.relative_to(REGRESSION).as_posix() for folder in _folders()}
    assert len(folders) >= 140
    assert set(EXPECTED_FAILURES) <= folders


@pytest.mark.parametrize(("folder", "kind"), _cases())
def test_the_folder_fires_its_rule(sigmahq: RuleSet, folder: Path, kind: str) -> None:
    files = sorted(folder.glob(f"*.{kind}"))
    assert files, f"no .{kind} file in {folder}"
    batches = [batch.events for batch in read_any(files[0], "regression", "test")]
    assert sum(map(len, batches)) > 0, f"{files[0]}: no event parsed"
    fired = {alert.rule_id for alert, _events in detect_events(batches, SigmaEngine(sigmahq))}
    assert _expected_rule(folder) in fired


def test_evtx_and_json_renderings_give_the_same_alerts(sigmahq: RuleSet) -> None:
    """The same event from either file raises the same rules (ids are shared across renderings)."""
    engine = SigmaEngine(sigmahq)
    for folder in _folders()[:40]:
        fired = []
        for kind in KINDS:
            files = sorted(folder.glob(f"*.{kind}"))
            batches = [batch.events for batch in read_any(files[0], "regression", "test")] if files else []
            fired.append(sorted((a.rule_id, a.event_ids) for a, _ in detect_events(batches, engine)))
        assert fired[0] == fired[1], folder
