"""GOVSOC_BUS, GOVSOC_EVENTS, GOVSOC_INCIDENTS and GOVSOC_SENSORS: short names for the back-end URLs."""

from __future__ import annotations

import os

import pytest

from config.errors import ConfigErrors
from config.load import ENV_ALIASES, load_settings


@pytest.fixture(autouse=True)
def _no_govsoc_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("GOVSOC_"):
            monkeypatch.delenv(name)


def test_each_alias_sets_its_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSOC_BUS", "kafka://10.0.0.1:9092,10.0.0.2:9092")
    monkeypatch.setenv("GOVSOC_EVENTS", "opensearch://search:9200")
    monkeypatch.setenv("GOVSOC_INCIDENTS", "postgresql://govsoc@db:5432/govsoc")
    monkeypatch.setenv("GOVSOC_SENSORS", "sqlite:////srv/govsoc/sensors.db")
    settings = load_settings()
    assert settings.pipeline.bus_url == "kafka://10.0.0.1:9092,10.0.0.2:9092"
    assert settings.events_url == "opensearch://search:9200"
    assert settings.incidents_url == "postgresql://govsoc@db:5432/govsoc"
    assert settings.sensors_url == "sqlite:////srv/govsoc/sensors.db"


def test_aliases_cover_every_back_end_url() -> None:
    assert sorted(loc[1] for loc in ENV_ALIASES.values()) == ["bus_url", "events_url", "incidents_url",
                                                              "sensors_url"]


def test_alias_keeps_other_pipeline_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSOC_PIPELINE__BATCH_SIZE", "250")
    monkeypatch.setenv("GOVSOC_BUS", "kafka://broker:9092")
    settings = load_settings()
    assert (settings.pipeline.batch_size, settings.pipeline.bus_url) == (250, "kafka://broker:9092")


def test_alias_equal_to_long_form_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSOC_BUS", "kafka://broker:9092")
    monkeypatch.setenv("GOVSOC_PIPELINE__BUS_URL", "kafka://broker:9092")
    assert load_settings().pipeline.bus_url == "kafka://broker:9092"


def test_alias_disagreeing_with_long_form_names_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSOC_BUS", "kafka://a:9092")
    monkeypatch.setenv("GOVSOC_PIPELINE__BUS_URL", "kafka://b:9092")
    with pytest.raises(ConfigErrors) as caught:
        load_settings()
    assert "GOVSOC_BUS" in str(caught.value) and "GOVSOC_PIPELINE__BUS_URL" in str(caught.value)


def test_overrides_beat_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSOC_EVENTS", "opensearch://search:9200")
    settings = load_settings(overrides={"pipeline": {"events_url": "sqlite:///x.db"}})
    assert settings.events_url == "sqlite:///x.db"


def test_an_invalid_alias_value_names_the_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSOC_PIPELINE__BATCH_SIZE", "0")
    monkeypatch.setenv("GOVSOC_BUS", "kafka://a:9092")
    with pytest.raises(ConfigErrors) as caught:
        load_settings()
    assert "GOVSOC_PIPELINE__BATCH_SIZE" in str(caught.value)


def test_unknown_short_name_is_still_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSOC_BUSS", "kafka://a:9092")
    with pytest.raises(ConfigErrors) as caught:
        load_settings()
    assert "GOVSOC_BUSS" in str(caught.value)


def test_govsoc_incidents_json_still_sets_the_incidents_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSOC_INCIDENTS", '{"group_window_s": 60}')
    settings = load_settings()
    assert settings.incidents.group_window_s == 60
    assert settings.incidents_url.startswith("sqlite:///")
