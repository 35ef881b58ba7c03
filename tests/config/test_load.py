"""load_settings: sources and their order, and errors that name the file, line, key or variable."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from config.errors import ConfigError, ConfigErrors
from config.load import load_settings
from config.settings import Settings, TenantConfig
from config.tenants import TenantTree

MINIMAL = """\
tenants:
  - id: national
    name: National centre
    kind: national
  - id: hanoi
    name: Ha Noi
    kind: province
    parent: national
    assets:
      - id: hanoi-portal
        name: Portal
        security_level: 3
api:
  host: 127.0.0.1
  port: 8000
"""


@pytest.fixture(autouse=True)
def _no_govsoc_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the GOVSOC_* variables it wants; a developer's own never leak in."""
    for name in list(os.environ):
        if name.upper().startswith("GOVSOC_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str, name: str = "govsoc.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based line of the `occurrence`-th line of `text` containing `needle`."""
    lines = [n for n, line in enumerate(textwrap.dedent(text).splitlines(), 1) if needle in line]
    return lines[occurrence - 1]


def errors_of(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> list[ConfigError]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, overrides=overrides)
    error = caught.value
    return error.errors if isinstance(error, ConfigErrors) else [error]


def only_error(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> ConfigError:
    errors = errors_of(path, overrides)
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


# --- the default file and the sources --------------------------------------------------------


def test_default_file_loads_with_a_sound_tree() -> None:
    loaded = load_settings()
    tree = TenantTree.from_config(loaded.tenants)
    assert len(loaded.tenants) == 9
    assert tree.root == "national"
    assert set(tree.scope("hanoi").tenant_ids) == {"hanoi", "hanoi-hoankiem", "hanoi-bavi"}
    assert loaded.api.port == 8000


def test_a_given_file_loads(tmp_path: Path) -> None:
    loaded = load_settings(write(tmp_path, MINIMAL))
    assert [t.id for t in loaded.tenants] == ["national", "hanoi"]
    assert loaded.tenants[1].assets[0].security_level == 3


def test_govsoc_config_selects_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSOC_CONFIG", str(write(tmp_path, MINIMAL)))
    assert len(load_settings().tenants) == 2


def test_a_path_argument_beats_govsoc_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSOC_CONFIG", str(tmp_path / "absent.yaml"))
    assert len(load_settings(write(tmp_path, MINIMAL)).tenants) == 2


def test_environment_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSOC_API__PORT", "9001")
    monkeypatch.setenv("GOVSOC_DATA_DIR", "/srv/govsoc")
    loaded = load_settings(write(tmp_path, MINIMAL))
    assert loaded.api.port == 9001
    assert loaded.api.host == "127.0.0.1"  # the file's sibling key survives
    assert loaded.data_dir == Path("/srv/govsoc")


def test_overrides_beat_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSOC_API__PORT", "9001")
    monkeypatch.setenv("GOVSOC_DATA_DIR", "/srv/govsoc")
    overrides = {"api": {"port": 9000}, "data_dir": tmp_path}
    loaded = load_settings(write(tmp_path, MINIMAL), overrides=overrides)
    assert loaded.api.port == 9000
    assert loaded.api.host == "127.0.0.1"
    assert loaded.data_dir == tmp_path


def test_a_json_variable_fills_a_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSOC_TENANTS", '[{"id": "solo", "name": "Solo"}]')
    assert [t.id for t in load_settings(write(tmp_path, MINIMAL)).tenants] == ["solo"]


def test_only_load_settings_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSOC_API__PORT", "9001")
    direct = Settings(tenants=(TenantConfig(id="national", name="N"),))
    assert direct.api.port == 8000


# --- unknown keys, wrong types, missing keys ---------------------------------------------------


def test_unknown_top_level_key_names_key_and_line(tmp_path: Path) -> None:
    text = MINIMAL + "timezon: UTC\n"
    error = only_error(write(tmp_path, text))
    assert error.location is not None
    assert (error.location.line, error.location.column) == (line_of(text, "timezon"), 1)
    assert error.location.field == "timezon"
    assert "unknown key 'timezon' (did you mean 'timezone'?)" in error.reason


def test_unknown_nested_key_names_key_and_line(tmp_path: Path) -> None:
    text = MINIMAL.replace("security_level: 3", "securty_level: 3")
    path = write(tmp_path, text)
    error = only_error(path)
    line = line_of(text, "securty_level")
    assert str(error) == (
        f"{path}:{line}:9 tenants[1].assets[0].securty_level: "
        "unknown key 'securty_level' (did you mean 'security_level'?)"
    )


def test_unknown_key_with_another_case_is_not_accepted(tmp_path: Path) -> None:
    error = only_error(write(tmp_path, MINIMAL + "API: {}\n"))
    assert error.location is not None and error.location.field == "API"
    assert "did you mean 'api'?" in error.reason


def test_non_string_top_level_key(tmp_path: Path) -> None:
    text = MINIMAL + "1: one\n"
    error = only_error(write(tmp_path, text))
    assert error.location is not None and error.location.line == line_of(text, "1: one")
    assert "unknown key 1" in error.reason


def test_wrong_type_names_key_and_line(tmp_path: Path) -> None:
    text = MINIMAL.replace("port: 8000", 'port: "abc"')
    error = only_error(write(tmp_path, text))
    assert error.location is not None
    assert error.location.field == "api.port"
    assert error.location.line == line_of(text, "port:")
    assert "valid integer" in error.reason and "'abc'" in error.reason


def test_out_of_range_security_level(tmp_path: Path) -> None:
    text = MINIMAL.replace("security_level: 3", "security_level: 9")
    error = only_error(write(tmp_path, text))
    assert error.location is not None
    assert error.location.field == "tenants[1].assets[0].security_level"
    assert error.location.line == line_of(text, "security_level")
    assert error.reason == "Input should be less than or equal to 5 (got 9)"


def test_validator_message_without_pydantic_prefix(tmp_path: Path) -> None:
    text = MINIMAL.replace("security_level: 3", "addresses: [300.1.1.1]")
    error = only_error(write(tmp_path, text))
    assert error.location is not None and error.location.field == "tenants[1].assets[0].addresses"
    assert error.reason == "'300.1.1.1' does not appear to be an IPv4 or IPv6 network"


def test_missing_key_points_at_its_parent(tmp_path: Path) -> None:
    text = MINIMAL.replace("    name: Ha Noi\n", "")
    error = only_error(write(tmp_path, text))
    assert error.location is not None
    assert error.location.field == "tenants[1].name"
    assert error.location.line == line_of(text, "- id: hanoi")
    assert error.reason == "Field required"


def test_empty_file_lacks_tenants(tmp_path: Path) -> None:
    error = only_error(write(tmp_path, ""))
    assert error.location is not None and error.location.field == "tenants"
    assert error.reason == "Field required"


def test_all_problems_reported_at_once_in_line_order(tmp_path: Path) -> None:
    text = MINIMAL.replace("security_level: 3", "security_level: 9").replace("port: 8000", "port: x")
    text = "bogus: 1\n" + text
    errors = errors_of(write(tmp_path, text))
    assert [e.location.field for e in errors if e.location] == [
        "bogus",
        "tenants[1].assets[0].security_level",
        "api.port",
    ]


def test_a_failed_item_does_not_also_report_an_empty_list(tmp_path: Path) -> None:
    error = only_error(write(tmp_path, "tenants:\n  - id: national\n"))
    assert error.location is not None and error.location.field == "tenants[0].name"


def test_validation_error_is_chained(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as caught:
        load_settings(write(tmp_path, MINIMAL.replace("port: 8000", "port: x")))
    assert isinstance(caught.value.__cause__, ValidationError)


# --- the tenant tree -------------------------------------------------------------------------

CYCLE = """\
tenants:
  - id: national
    name: National centre
  - id: a
    name: A
    parent: b
  - id: b
    name: B
    parent: a
"""


def test_tenant_cycle_names_parent_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, CYCLE)
    error = only_error(path)
    line = line_of(CYCLE, "parent: b")
    assert str(error) == f"{path}:{line}:5 tenants[1].parent: tenant cycle: a -> b -> a"


def test_unknown_parent_names_parent_and_line(tmp_path: Path) -> None:
    text = MINIMAL.replace("parent: national", "parent: nowhere")
    error = only_error(write(tmp_path, text))
    assert error.location is not None
    assert (error.location.field, error.location.line) == ("tenants[1].parent", line_of(text, "parent:"))
    assert error.reason == "unknown parent 'nowhere'"


def test_duplicate_tenant_id_names_id_and_line(tmp_path: Path) -> None:
    text = MINIMAL.replace("id: hanoi\n", "id: national\n")
    error = only_error(write(tmp_path, text))
    assert error.location is not None
    assert (error.location.field, error.location.line) == (
        "tenants[1].id",
        line_of(text, "- id: national", 2),
    )
    assert error.reason == "duplicate tenant id 'national'"


def test_second_root_names_its_tenant(tmp_path: Path) -> None:
    text = MINIMAL.replace("    parent: national\n", "")
    error = only_error(write(tmp_path, text))
    assert error.location is not None
    assert (error.location.field, error.location.line) == ("tenants[1].parent", line_of(text, "- id: hanoi"))
    assert error.reason == "tenant 'hanoi' has no parent, but 'national' is already the root"


def test_token_for_unknown_tenant(tmp_path: Path) -> None:
    text = MINIMAL + f"  tokens:\n    - {{name: t, tenant: nobody, role: analyst, sha256: '{'0' * 64}'}}\n"
    error = only_error(write(tmp_path, text))
    assert error.location is not None
    assert (error.location.field, error.location.line) == ("api.tokens[0].tenant", line_of(text, "nobody"))


# --- YAML problems ---------------------------------------------------------------------------


def test_duplicate_keys_name_the_second_occurrence(tmp_path: Path) -> None:
    text = MINIMAL + "api:\n  port: 1\n"
    text = text.replace("    name: Ha Noi\n", "    name: Ha Noi\n    name: Hanoi again\n")
    errors = errors_of(write(tmp_path, text))
    assert [(e.location.field, e.location.line) for e in errors if e.location] == [
        ("tenants[1].name", line_of(text, "name: Hanoi again")),
        ("api", line_of(text, "api:", 2)),
    ]
    assert errors[1].reason == f"duplicate key 'api' (first at line {line_of(text, 'api:')})"


def test_yaml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "tenants:\n  - id: national\n    name: [unclosed\napi: {}\n")
    error = only_error(path)
    assert error.location is not None
    assert error.location.path == str(path) and error.location.line is not None
    assert error.location.line >= 3 and error.location.column is not None
    assert error.reason.startswith("invalid YAML")
    assert isinstance(error.__cause__, yaml.YAMLError)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    error = only_error(write(tmp_path, "- id: national\n"))
    assert error.location is not None and error.location.line == 1
    assert error.reason == "the top level must be a mapping of settings, not a list"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2024-02-30", "cannot read '2024-02-30' as timestamp"),
        ("!!int abc", "cannot read 'abc' as int"),
        ("!!bool maybe", "cannot read 'maybe' as bool"),
        ("!!python/object:os.system ls", "could not determine a constructor"),
    ],
)
def test_values_yaml_cannot_read_name_their_line(tmp_path: Path, value: str, reason: str) -> None:
    text = f"tenants: []\ndata_dir: {value}\n"
    error = only_error(write(tmp_path, text))
    assert error.location is not None and error.location.line == 2
    assert reason in error.reason


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "govsoc.yaml"
    path.write_bytes(b"tenants: \xff\n")
    error = only_error(path)
    assert error.location is not None and error.location.path == str(path)
    assert "not UTF-8" in error.reason


# --- files that cannot be read ---------------------------------------------------------------


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    error = only_error(path)
    assert error.location is not None and error.location.path == str(path)
    assert "cannot read the configuration file" in error.reason
    assert isinstance(error.__cause__, FileNotFoundError)


def test_missing_file_from_govsoc_config_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSOC_CONFIG", str(tmp_path / "absent.yaml"))
    assert "named by GOVSOC_CONFIG" in only_error().reason


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    assert "cannot read the configuration file" in only_error(tmp_path).reason


# --- errors in the environment and overrides -------------------------------------------------


def test_bad_environment_value_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSOC_API__PORT", "abc")
    error = only_error(write(tmp_path, MINIMAL))
    assert error.location is not None
    assert (error.location.path, error.location.field) == (None, "GOVSOC_API__PORT")
    assert str(error).startswith("GOVSOC_API__PORT: Input should be a valid integer")


def test_unknown_nested_variable_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSOC_API__PROT", "1")
    assert str(only_error(write(tmp_path, MINIMAL))) == ("GOVSOC_API__PROT: unknown key 'prot' (did you mean 'port'?)")


def test_unknown_variable_is_not_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSOC_DATADIR", "/srv")
    assert str(only_error(write(tmp_path, MINIMAL))) == (
        "GOVSOC_DATADIR: unknown setting (did you mean 'GOVSOC_DATA_DIR'?)"
    )


def test_bad_json_variable_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSOC_TENANTS", "[{")
    error = only_error(write(tmp_path, MINIMAL))
    assert error.location is not None and error.location.field == "GOVSOC_TENANTS"
    assert error.reason.startswith("not valid JSON")


def test_error_inside_json_variable_names_variable_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tenants = '[{"id": "n", "name": "N"}, {"id": "a", "name": "A", "parent": "a"}]'
    monkeypatch.setenv("GOVSOC_TENANTS", tenants)
    assert str(only_error(write(tmp_path, MINIMAL))) == ("GOVSOC_TENANTS: tenants[1].parent: tenant cycle: a -> a")


def test_bad_override_names_the_field(tmp_path: Path) -> None:
    error = only_error(write(tmp_path, MINIMAL), overrides={"api": {"port": -1}})
    assert error.location is not None
    assert (error.location.path, error.location.field) == (None, "api.port")
    assert error.reason.endswith("(from overrides)")


# --- never anything but Settings or ConfigError ----------------------------------------------


def load_text(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(raw)
    try:
        assert isinstance(load_settings(path), Settings)
    except ConfigError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text())
@example("[" * 5000)
@example("a: " + "{a: " * 3000)
@example("&a [*a]")
@example("tenants: &t [*t]")
@example("tenants: &t {a: *t}")
@example("1: 2")
@example("? [1, 2]\n: 3")
@example("tenants: [{id: n, name: n, <<: {parent: n}}]")
@example("\x00")
@example("\ud800")
@example("--- a\n--- b\n")
def test_any_text_gives_settings_or_config_error(tmp_path: Path, text: str) -> None:
    load_text(tmp_path, text.encode("utf-8", "surrogatepass"))


KEYS = st.sampled_from(
    ["tenants", "id", "name", "parent", "kind", "assets", "api", "port", "tokens", "tenant", "data_dir", "x"]
)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | KEYS
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(KEYS, VALUES, max_size=5))
def test_any_mapping_gives_settings_or_config_error(tmp_path: Path, data: dict[str, object]) -> None:
    load_text(tmp_path, yaml.safe_dump(data).encode())


def test_correlation_expiry_settings_load_and_are_checked(tmp_path: Path) -> None:
    good = write(tmp_path, MINIMAL + "detections:\n  correlation_lateness: PT3H\n  correlation_recent_hits: 50000\n")
    detections = load_settings(good).detections
    assert (detections.correlation_lateness, detections.correlation_recent_hits) == (timedelta(hours=3), 50_000)
    bad = write(tmp_path, MINIMAL + "detections:\n  correlation_recent_hits: 0\n")
    assert "correlation_recent_hits" in str(only_error(bad))
