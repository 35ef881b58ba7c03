"""The incident queue's filters through the API: tenant subtree, owner, time window, sort."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.settings import Role
from tests.api.door import Door, open_door


@pytest.fixture
def door(tmp_path: Path) -> Iterator[Door]:
    with open_door(tmp_path) as door:
        yield door


def queue(door: Door, caller: str, **params: Any) -> list[dict[str, Any]]:
    answer = door.client.get("/api/v1/incidents", params=params, headers=door.headers(caller, Role.ANALYST))
    assert answer.status_code == 200, answer.text
    incidents: list[dict[str, Any]] = answer.json()["incidents"]
    assert answer.json()["total"] >= len(incidents)
    return incidents


def test_the_national_centre_narrows_to_one_tenant_and_a_province_cannot_widen(door: Door) -> None:
    assert {i["tenant"] for i in queue(door, "national", tenant="danang")} == {"danang"}
    assert queue(door, "hanoi", tenant="danang") == []
    assert queue(door, "hanoi", tenant="no-such-tenant") == []


def test_owner_filter_and_sort(door: Door) -> None:
    incident = door.incidents["hanoi"]
    door.client.post(f"/api/v1/incidents/{incident}/assign", json={"assignee": "lan"},
                     headers=door.headers("hanoi", Role.ANALYST))
    assert [i["id"] for i in queue(door, "national", assignee="lan")] == [incident]
    assert incident not in [i["id"] for i in queue(door, "national", assignee="")]
    by_severity = queue(door, "national", sort="severity")
    ranks = ["informational", "low", "medium", "high", "critical"]
    assert [ranks.index(i["severity"]) for i in by_severity] == sorted(
        (ranks.index(i["severity"]) for i in by_severity), reverse=True)
    assert door.client.get("/api/v1/incidents", params={"sort": "title; drop table"},
                           headers=door.headers("national", Role.ANALYST)).status_code == 422


def test_a_time_window_needs_a_zone(door: Door) -> None:
    assert queue(door, "national", since="2000-01-01T00:00:00Z", until="2100-01-01T00:00:00Z")
    assert queue(door, "national", until="2000-01-01T00:00:00Z") == []
    answer = door.client.get("/api/v1/incidents", params={"since": "2026-01-01T00:00:00"},
                             headers=door.headers("national", Role.ANALYST))
    assert answer.status_code == 422
