"""Connectors a deployment configures reach every process that builds a playbook runner.

The playbook worker is built as `govsoc worker playbooks` builds it (`build_stage`, in process),
from a configuration file whose `http` connector points at a real HTTP server on loopback and whose
`mail` connector at an SMTP server (aiosmtpd): a triggered run mails at once, stops at its approval,
and the contain request reaches the server, with the token from its file, once the run is approved
through the worker's runner. A connector its class refuses, or a secret file that is missing, stops
the worker, `govsoc setup` and the demo's runner at start, naming the key."""

from __future__ import annotations

import os
import textwrap
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from api.demo.playbooks import DEMO_CONNECTORS
from api.wiring import PlaybookStep, Stage, build_stage, setup_backends
from api.wiring.runtime import build_connectors, playbook_paths
from config.errors import ConfigError
from config.load import load_settings
from config.settings import Settings
from detections.incidents import IncidentService
from pipeline.bus import Message, topics
from playbooks import LIBRARY, HttpConnector, RunState
from playbooks.smtp import SmtpConnector
from tests.factories import T0, make_alert
from tests.playbooks.conftest import Mailbox, Receiver, http_receiver, smtp_server

NOW = T0 + timedelta(minutes=5)
PLAYBOOK = """\
id: mail-then-block
name: Mail the SOC, block after approval
trigger:
  tags: [attack.t1110]
steps:
  - id: facts
    type: enrich
  - id: heads-up
    type: notify_email
    connector: mail
    automatic: true
    to: [soc@hanoi.gov.example]
    subject: "Incident ${incident.id}"
    body: "${steps.facts.alert_count} alert(s) from ${entity.source.address}; a block awaits approval."
  - id: approve
    type: approval
    roles: [analyst]
  - id: block
    type: contain
    connector: http
    action: block_address
    target: "${entity.source.address}"
"""


@pytest.fixture(autouse=True)
def _no_govsoc_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("GOVSOC_"):
            monkeypatch.delenv(name)


def configure(tmp_path: Path, receiver_url: str, smtp_port: int) -> Settings:
    """A deployment's file: two tenants and a `playbooks` section."""
    (tmp_path / "playbooks").mkdir(exist_ok=True)
    (tmp_path / "playbooks" / "mail_then_block.yml").write_text(PLAYBOOK, encoding="utf-8")
    (tmp_path / "soar-token").write_text("t0ken-from-file\n", encoding="utf-8")
    text = textwrap.dedent(f"""\
        data_dir: {tmp_path / "data"}
        tenants:
          - {{id: national, name: Trung tâm quốc gia, kind: national}}
          - {{id: hanoi, name: Hà Nội, kind: province, parent: national}}
        playbooks:
          include_builtin_playbooks: false
          playbook_dirs: [{tmp_path / "playbooks"}]
          connectors:
            http: {{kind: http, url: "{receiver_url}", token_file: {tmp_path / "soar-token"}, retries: 0}}
            mail: {{kind: smtp, host: 127.0.0.1, port: {smtp_port}, from: soc@gov.example, security: none,
                    retries: 0}}
        """)
    path = tmp_path / "govsoc.yaml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path)


def test_the_playbook_worker_mails_and_contains_through_the_configured_connectors(tmp_path: Path) -> None:
    with http_receiver() as receiver, smtp_server() as mailbox:
        worker_run(tmp_path, receiver, mailbox)


def worker_run(tmp_path: Path, receiver: Receiver, mailbox: Mailbox) -> None:
    settings = configure(tmp_path, receiver.url, mailbox.port)
    process = build_stage(settings, Stage.PLAYBOOKS)
    try:
        [worker] = process.workers
        step = worker.step
        assert isinstance(step, PlaybookStep)
        runtime = process.runtime
        [incident] = IncidentService(runtime.incidents, runtime.tree, settings.incidents).ingest([make_alert()])
        ref = orjson.dumps({"id": incident.id, "tenant": incident.tenant})
        assert step([Message(topics.INCIDENTS, 0, 0, incident.tenant, ref)]) == 1
        [run] = step.runner.runs.runs(limit=10)
        assert (run.playbook_id, run.state, run.cursor) == ("mail-then-block", RunState.WAITING_APPROVAL, "approve")
        [mail] = mailbox.messages
        assert mail["To"] == "soc@hanoi.gov.example" and mail["Subject"] == f"Incident {incident.id}"
        assert receiver.requests == []  # nothing is contained before a person approves

        done = step.runner.approve(run.id, "approve", "analyst-hanoi", "analyst", NOW)
        assert done.state is RunState.DONE
        [sent] = receiver.requests
        assert sent["json"] == {"action": "block_address", "target": "203.0.113.77",
                                "payload": sent["json"]["payload"], "idempotency_key": f"{run.id}:block"}
        assert sent["headers"]["Authorization"] == "Bearer t0ken-from-file"
        assert sent["headers"]["Idempotency-Key"] == f"{run.id}:block"
        assert len(mailbox.messages) == 1  # the mail was not sent again
    finally:
        process.close()


def test_playbooks_load_from_the_library_and_the_configured_directories(tmp_path: Path) -> None:
    settings = load_settings(None, overrides={"playbooks": {"playbook_dirs": [tmp_path]}})
    assert playbook_paths(settings) == [LIBRARY, tmp_path]
    off = settings.model_copy(update={"playbooks": settings.playbooks.model_copy(
        update={"include_builtin_playbooks": False})})
    assert playbook_paths(off) == [tmp_path]


def test_the_demo_connector_replaces_a_configured_one_of_its_name_and_keeps_the_others(tmp_path: Path) -> None:
    with http_receiver() as receiver, smtp_server() as mailbox:
        settings = configure(tmp_path, receiver.url, mailbox.port)
    registry = build_connectors(settings, DEMO_CONNECTORS)
    http, mail = registry.get("http"), registry.get("mail")
    assert isinstance(http, HttpConnector) and http.url == DEMO_CONNECTORS["http"]["url"]
    assert isinstance(mail, SmtpConnector) and mail.options.host == "127.0.0.1"


@pytest.mark.parametrize(("connector", "reason"), [
    ({"kind": "http", "url": "http://127.0.0.1:9/", "timout_s": 3}, "unexpected keyword argument 'timout_s'"),
    ({"kind": "smtp", "host": "127.0.0.1", "from": "soc@gov.example", "port": 0},
     "port: Input should be greater than or equal to 1"),
])
def test_an_option_the_connector_class_refuses_stops_the_worker_at_start(
        tmp_path: Path, connector: dict[str, object], reason: str) -> None:
    settings = load_settings(None, overrides={"data_dir": tmp_path, "playbooks": {"connectors": {"edge": connector}}})
    with pytest.raises(ConfigError) as raised:
        build_stage(settings, Stage.PLAYBOOKS)
    assert str(raised.value).startswith("playbooks.connectors.edge: ") and reason in str(raised.value)


def test_a_missing_secret_file_stops_setup_naming_the_key(tmp_path: Path) -> None:
    settings = load_settings(None, overrides={"data_dir": tmp_path, "playbooks": {"connectors": {"mail": {
        "kind": "smtp", "host": "smtp.gov.example", "from": "soc@gov.example",
        "credentials_file": str(tmp_path / "absent")}}}})
    with pytest.raises(ConfigError) as raised:
        setup_backends(settings, None, on_progress=lambda n: None)
    assert str(raised.value) == (f"playbooks.connectors.mail.credentials_file: {tmp_path / 'absent'}: "
                                 "not a readable file")

