"""The `playbooks` settings: connectors by kind, secrets only by file, playbook directories, and
errors that name the file, line and key (or the variable) of a bad connector, at load."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from config.errors import ConfigErrors
from config.load import load_settings
from config.settings import HttpConnectorSettings, SmtpConnectorSettings

TENANTS = """\
tenants:
  - id: national
    name: National centre
    kind: national
"""
CONNECTORS = TENANTS + """\
playbooks:
  playbook_dirs: [/srv/govsoc/playbooks]
  connectors:
    http:
      kind: http
      url: https://soar.gov.example/govsoc/actions
      token_file: /run/credentials/govsoc/soar-token
      retries: 2
    mail:
      kind: smtp
      host: smtp.gov.example
      from: soc@gov.example
      credentials_file: /run/credentials/govsoc/smtp
      recipients: {national: [soc@gov.example]}
"""


@pytest.fixture(autouse=True)
def _no_govsoc_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("GOVSOC_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "govsoc.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def only_error(path: Path | None) -> str:
    with pytest.raises(ConfigErrors) as raised:
        load_settings(path)
    [error] = raised.value.errors
    return str(error)


def test_an_http_and_an_smtp_connector_load_with_their_options_as_written(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, CONNECTORS))
    http, mail = settings.playbooks.connectors["http"], settings.playbooks.connectors["mail"]
    assert isinstance(http, HttpConnectorSettings) and isinstance(mail, SmtpConnectorSettings)
    assert http.options() == {"kind": "http", "url": "https://soar.gov.example/govsoc/actions",
                              "token_file": Path("/run/credentials/govsoc/soar-token"), "retries": 2}
    assert mail.options() == {"kind": "smtp", "host": "smtp.gov.example", "from": "soc@gov.example",
                              "credentials_file": Path("/run/credentials/govsoc/smtp"),
                              "recipients": {"national": ["soc@gov.example"]}}
    assert settings.playbooks.include_builtin_playbooks
    assert settings.playbooks.playbook_dirs == (Path("/srv/govsoc/playbooks"),)


def test_the_default_file_configures_no_connector_and_the_shipped_library() -> None:
    playbooks = load_settings(None).playbooks
    assert playbooks.connectors == {} and playbooks.include_builtin_playbooks and playbooks.playbook_dirs == ()


@pytest.mark.parametrize(("option", "value"), [("password", "hunter2"), ("Password", "hunter2"),
                                               ("token", "abc"), ("api_key", "abc")])
def test_an_inline_secret_is_refused_at_its_key(tmp_path: Path, option: str, value: str) -> None:
    text = CONNECTORS.replace("      credentials_file: /run/credentials/govsoc/smtp\n", f"      {option}: {value}\n")
    path = write(tmp_path, text)
    line = text.splitlines().index(f"      {option}: {value}") + 1
    assert only_error(path) == (f"{path}:{line}:7 playbooks.connectors.mail.{option}: "
                                "no inline secret: name a credentials_file instead")


def test_a_secret_header_is_refused_and_a_token_file_named(tmp_path: Path) -> None:
    text = CONNECTORS.replace("      retries: 2\n", "      headers: {X-Tenant: national, Authorization: Bearer abc}\n")
    path = write(tmp_path, text)
    assert only_error(path).endswith("playbooks.connectors.http.headers.Authorization: no secret in a header: "
                                     "name a token_file instead")


def test_an_unknown_kind_is_refused_at_its_key(tmp_path: Path) -> None:
    text = CONNECTORS.replace("kind: smtp", "kind: ldap")
    path = write(tmp_path, text)
    line = text.splitlines().index("      kind: ldap") + 1
    assert only_error(path) == (f"{path}:{line}:7 playbooks.connectors.mail.kind: "
                                "unknown kind 'ldap' (known: http, smtp)")


def test_a_missing_kind_is_refused_at_the_connector(tmp_path: Path) -> None:
    text = CONNECTORS.replace("      kind: http\n", "")
    path = write(tmp_path, text)
    line = text.splitlines().index("    http:") + 1
    assert only_error(path) == f"{path}:{line}:5 playbooks.connectors.http.kind: required: http or smtp"


def test_a_missing_host_is_refused_naming_the_key_without_the_union_tag(tmp_path: Path) -> None:
    text = CONNECTORS.replace("      host: smtp.gov.example\n", "")
    path = write(tmp_path, text)
    line = text.splitlines().index("    mail:") + 1
    assert only_error(path) == f"{path}:{line}:5 playbooks.connectors.mail.host: Field required"


def test_a_url_that_is_not_http_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, CONNECTORS.replace("https://soar.gov.example/govsoc/actions", "ftp://soar.gov.example/"))
    assert "playbooks.connectors.http.url: String should match pattern" in only_error(path)


def test_a_connector_name_a_step_could_not_write_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, CONNECTORS.replace("    mail:", "    Mail Relay:"))
    assert "playbooks.connectors.Mail Relay.[key]: String should match pattern" in only_error(path)


def test_a_variable_overrides_one_option_of_a_file_connector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSOC_PLAYBOOKS__CONNECTORS__HTTP__URL", "https://soar-2.gov.example/actions")
    settings = load_settings(write(tmp_path, CONNECTORS))
    http = settings.playbooks.connectors["http"]
    assert isinstance(http, HttpConnectorSettings)
    assert http.url == "https://soar-2.gov.example/actions" and http.options()["retries"] == 2


def test_a_variable_can_add_a_connector_and_its_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSOC_PLAYBOOKS__CONNECTORS", '{"firewall": {"kind": "http", "url": "https://fw.example/"}}')
    assert set(load_settings(None).playbooks.connectors) == {"firewall"}
    monkeypatch.setenv("GOVSOC_PLAYBOOKS__CONNECTORS", '{"mail": {"kind": "smtp", "from": "soc@gov.example", '
                                                       '"password": "x", "host": "smtp.gov.example"}}')
    assert only_error(None) == ("GOVSOC_PLAYBOOKS__CONNECTORS: playbooks.connectors.mail.password: "
                                "no inline secret: name a credentials_file instead")
