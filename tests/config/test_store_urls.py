"""PipelineSettings: one store URL per interface, each falling back to `store_url`, then the default file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from config.load import load_settings
from config.settings import PipelineSettings


@pytest.fixture(autouse=True)
def _no_govsoc_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the GOVSOC_* variables it wants; a developer's own never leak in."""
    for name in list(os.environ):
        if name.upper().startswith("GOVSOC_"):
            monkeypatch.delenv(name)


def test_every_interface_defaults_to_the_one_sqlite_file() -> None:
    pipeline = PipelineSettings()
    for interface in ("events", "incidents", "sensors"):
        assert pipeline.url_for(interface, Path("/srv/govsoc")) == "sqlite:////srv/govsoc/govsoc.db"


def test_store_url_is_every_interface_s_fallback() -> None:
    pipeline = PipelineSettings(store_url="sqlite:///data/one.db", events_url="opensearch://127.0.0.1:9200")
    assert pipeline.url_for("events", Path("x")) == "opensearch://127.0.0.1:9200"
    assert pipeline.url_for("incidents", Path("x")) == "sqlite:///data/one.db"
    assert pipeline.url_for("sensors", Path("x")) == "sqlite:///data/one.db"


def test_environment_chooses_postgresql_for_incidents_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GOVSOC_PIPELINE__INCIDENTS_URL", "postgresql://govsoc@127.0.0.1:5432/govsoc")
    monkeypatch.setenv("GOVSOC_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.pipeline.url_for("incidents", settings.data_dir) == "postgresql://govsoc@127.0.0.1:5432/govsoc"
    assert settings.pipeline.url_for("events", settings.data_dir) == f"sqlite:///{tmp_path / 'govsoc.db'}"
    assert settings.pipeline.url_for("sensors", settings.data_dir) == f"sqlite:///{tmp_path / 'govsoc.db'}"
