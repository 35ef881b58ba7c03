"""`govsoc audit verify` on a real store: ok on an intact chain, the first altered seq after tampering."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from api.cli.audit import audit_app
from api.cli.common import configure_logging
from pipeline.store.registry import open_incident_store

runner = CliRunner()
app = typer.Typer()
app.add_typer(audit_app, name="audit")


@app.callback()
def main() -> None:
    configure_logging(False)  # as `govsoc` does: logs on stderr, stdout for results only


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory whose store holds five audit entries."""
    store = open_incident_store(f"sqlite:///{tmp_path / 'govsoc.db'}")
    for n in range(1, 6):
        store.append_audit(actor=f"analyst-{n}", tenant="hanoi", action="incident.transition",
                           object_type="incident", object_id="inc-1", details={"to": "triage", "n": n})
    store.close()
    return tmp_path


def verify(data_dir: Path, *extra: str) -> tuple[int, str]:
    result = runner.invoke(app, ["audit", "verify", "--data-dir", str(data_dir), *extra])
    return result.exit_code, result.stdout


def tamper(path: Path, seq: int) -> None:
    """What an attacker with the file would do: drop the guard trigger, then rewrite one entry."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER audit_no_update")
        conn.execute("UPDATE audit SET details = ? WHERE seq = ?", ('{"to":"closed"}', seq))
    finally:
        conn.close()


def test_an_intact_chain_passes(data_dir: Path) -> None:
    assert verify(data_dir) == (0, "ok, 5 entries\n")


def test_an_empty_store_passes(tmp_path: Path) -> None:
    assert verify(tmp_path) == (0, "ok, 0 entries\n")


def test_an_altered_entry_is_named(data_dir: Path) -> None:
    tamper(data_dir / "govsoc.db", 3)
    code, out = verify(data_dir)
    assert code == 1
    assert out.startswith("altered: entry seq 3 of 5:")
    code, out = verify(data_dir, "--json")
    assert code == 1
    assert json.loads(out) == {"ok": False, "entries": 5, "first_bad_seq": 3,
                               "reason": "hash does not match the entry's contents"}
