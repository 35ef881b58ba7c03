"""HttpConnector against a real loopback server: the JSON it posts, retries with backoff, refusals."""

from __future__ import annotations

import socket

import pytest

from playbooks import CONNECTOR_KINDS, ConnectorError, ConnectorRegistry, ConnectorRequest, HttpConnector, PlaybookError
from playbooks.connectors import connector_class
from playbooks.smtp import SmtpConnector
from tests.playbooks.conftest import Receiver

REQUEST = ConnectorRequest("block_address", "203.0.113.77", {"incident_id": "inc-1"}, "run-1:block")


def connector(url: str, sleeps: list[float], retries: int = 3) -> HttpConnector:
    return HttpConnector(name="http", url=url, retries=retries, backoff_s=0.5, timeout_s=2.0, sleep=sleeps.append)


def test_posts_the_request_as_json_with_the_idempotency_key(receiver: Receiver) -> None:
    result = connector(receiver.url, []).send(REQUEST)
    assert (result.status, result.body, result.attempts) == (200, {"ok": True}, 1)
    [sent] = receiver.requests
    assert sent["path"] == "/hook"
    assert sent["headers"]["Idempotency-Key"] == "run-1:block"
    assert sent["json"] == {"action": "block_address", "target": "203.0.113.77",
                            "payload": {"incident_id": "inc-1"}, "idempotency_key": "run-1:block"}


def test_server_errors_are_retried_with_exponential_backoff(receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    sleeps: list[float] = []
    result = connector(receiver.url, sleeps).send(REQUEST)
    assert result.attempts == 3 and len(receiver.requests) == 3
    assert sleeps == [0.5, 1.0]


def test_gives_up_after_its_retries(receiver: Receiver) -> None:
    receiver.statuses = [500, 500, 500]
    sleeps: list[float] = []
    with pytest.raises(ConnectorError, match="failed after 3 attempts: HTTP 500"):
        connector(receiver.url, sleeps, retries=2).send(REQUEST)
    assert len(receiver.requests) == 3


def test_a_refusal_is_not_retried(receiver: Receiver) -> None:
    receiver.statuses = [403]
    with pytest.raises(ConnectorError, match="refused the request"):
        connector(receiver.url, []).send(REQUEST)
    assert len(receiver.requests) == 1


def test_an_unreachable_receiver_is_retried_then_raised() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps: list[float] = []
    with pytest.raises(ConnectorError, match="ConnectError"):
        connector(f"http://127.0.0.1:{port}/hook", sleeps, retries=1).send(REQUEST)
    assert sleeps == [0.5]


def test_registry_by_name_and_kind(receiver: Receiver) -> None:
    registry = ConnectorRegistry.from_config({"firewall": {"kind": "http", "url": receiver.url, "retries": 0}})
    assert "firewall" in registry
    assert registry.get("firewall").send(REQUEST).status == 200
    with pytest.raises(PlaybookError, match="no connector named 'edr'"):
        registry.get("edr")
    with pytest.raises(PlaybookError, match="unknown kind 'pager'"):
        ConnectorRegistry.from_config({"pager": {"kind": "pager"}})
    with pytest.raises(PlaybookError, match="connector 'firewall': .*unexpected keyword argument 'uri'"):
        ConnectorRegistry.from_config({"firewall": {"kind": "http", "uri": receiver.url}})


def test_a_step_overrides_the_connectors_retries_and_timeout(receiver: Receiver) -> None:
    receiver.statuses = [500, 500, 500]
    sleeps: list[float] = []
    request = ConnectorRequest("notify", "inc-1", {}, "run-1:tell", retries=1, timeout_s=1.0)
    with pytest.raises(ConnectorError, match="failed after 2 attempts"):
        connector(receiver.url, sleeps, retries=5).send(request)
    assert len(receiver.requests) == 2 and sleeps == [0.5]


def test_every_connector_class_is_registered() -> None:
    import playbooks.connectors
    import playbooks.smtp

    registered = {connector_class(kind) for kind in CONNECTOR_KINDS}
    assert registered == {HttpConnector, SmtpConnector}
    concrete = {cls for module in (playbooks.connectors, playbooks.smtp) for cls in vars(module).values()
                if isinstance(cls, type) and cls.__name__.endswith("Connector") and hasattr(cls, "send")
                and not getattr(cls, "_is_protocol", False)}
    assert concrete == registered
