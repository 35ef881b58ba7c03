"""Sensors through the API: enroll once, heartbeat, ship batches (gzip, retries, refusals, back-pressure)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.wiring import Worker
from config.settings import ApiSettings, Role
from config.tenants import TenantScope
from pipeline.bus import topics
from pipeline.enrich import Enricher
from pipeline.ingest import IngestStep
from pipeline.store.base import EventQuery
from pipeline.store.sqlite_events import SqliteEventStore
from pipeline.store.sqlite_sensors import SqliteSensorStore
from tests.api.door import API, TREE, Door, open_door
from tests.factories import make_event


@pytest.fixture
def door(tmp_path: Path) -> Iterator[Door]:
    with open_door(tmp_path) as door:
        yield door


def enroll(door: Door, sensor: str = "hanoi-s7", tenant: str = "hanoi") -> dict[str, str]:
    ticket = door.client.post("/api/v1/sensors/enrollments", json={"sensor": sensor, "tenant": tenant},
                              headers=door.headers("national", Role.ADMIN))
    assert ticket.status_code == 201, ticket.text
    enrollment = ticket.json()["token"]
    enrolled = door.client.post("/api/v1/sensors/enroll", headers={"Authorization": f"Bearer {enrollment}"})
    assert enrolled.status_code == 201, enrolled.text
    again = door.client.post("/api/v1/sensors/enroll", headers={"Authorization": f"Bearer {enrollment}"})
    assert again.status_code == 401  # one-time
    assert enrolled.json()["key"]["role"] == "sensor"
    return {"Authorization": f"Bearer {enrolled.json()['token']}"}


def events_store(door: Door) -> SqliteEventStore:
    store = door.stores[0]
    assert isinstance(store, SqliteEventStore)
    return store


def drain(door: Door) -> None:
    worker = Worker("ingest", door.bus, [topics.RAW, topics.DEAD_LETTERS],
                    IngestStep(Enricher(TREE), events_store(door), door.bus), 2000)
    while worker.run_once():
        pass
    worker.consumer.close()


def test_a_sensor_enrolls_and_ships_10000_events_twice_and_the_store_holds_10000(door: Door) -> None:
    headers = enroll(door)
    body = b"\n".join(make_event("hanoi", n, message=f"line {n}").to_json() for n in range(10_000))
    packed = gzip.compress(body)
    for _ in range(2):  # the second is a retry of the first, as after a lost answer
        answer = door.client.post("/api/v1/ingest", content=packed,
                                  headers={**headers, "Content-Encoding": "gzip",
                                           "Content-Type": "application/x-ndjson"})
        assert answer.status_code == 202, answer.text
        assert answer.json()["accepted"] == 10_000
        drain(door)
    scope = TREE.scope("hanoi")
    assert events_store(door).count(scope, EventQuery(text="line")) == 10_000


def test_lines_of_another_tenant_or_no_event_are_refused_by_line_and_the_rest_go_through(door: Door) -> None:
    headers = enroll(door)
    lines = [make_event("hanoi", 1).to_json(), b"{not json", make_event("danang", 2).to_json(),
             make_event("hanoi", 3).to_json()]
    answer = door.client.post("/api/v1/ingest", content=b"\n".join(lines), headers=headers)
    assert answer.status_code == 202
    result = answer.json()
    assert (result["accepted"], result["refused"]) == (2, 2)
    assert [r["line"] for r in result["refusals"]] == [2, 3]
    assert "organization.id" in result["refusals"][1]["reason"]
    drain(door)
    assert events_store(door).count(TenantScope.everything(), EventQuery(text="hello")) == 2


def test_the_heartbeat_is_the_keys_sensor_whatever_the_body_says(door: Door) -> None:
    headers = enroll(door, "hanoi-s8")
    answer = door.client.post("/api/v1/sensors/heartbeat", json={"version": "0.2.0", "spool_pending": 3},
                              headers=headers)
    assert answer.status_code == 204, answer.text
    store = door.stores[2]
    assert isinstance(store, SqliteSensorStore)
    [beat] = store.latest_heartbeats(TREE.scope("hanoi"))
    assert (beat.tenant, beat.sensor, beat.spool_pending) == ("hanoi", "hanoi-s8", 3)
    assert door.client.post("/api/v1/sensors/heartbeat", json={"version": "1", "tenant": "danang"},
                            headers=headers).status_code == 422


def test_a_gzip_bomb_and_a_bad_encoding_are_refused(door: Door) -> None:
    headers = enroll(door)
    bomb = gzip.compress(b"\n" * (API.max_body_bytes + 10))
    assert door.client.post("/api/v1/ingest", content=bomb,
                            headers={**headers, "Content-Encoding": "gzip"}).status_code == 413
    assert door.client.post("/api/v1/ingest", content=b"not gzip",
                            headers={**headers, "Content-Encoding": "gzip"}).status_code == 400
    assert door.client.post("/api/v1/ingest", content=b"x",
                            headers={**headers, "Content-Encoding": "br"}).status_code == 415


def test_back_pressure_answers_503_with_retry_after(tmp_path: Path) -> None:
    with open_door(tmp_path, ApiSettings(cookie_secure=False, ingest_max_pending=5, rate_per_s=1000,
                                         rate_burst=1000)) as door:
        headers = enroll(door)
        batch = b"\n".join(make_event("hanoi", n).to_json() for n in range(10))
        assert door.client.post("/api/v1/ingest", content=batch, headers=headers).status_code == 202
        held = door.client.post("/api/v1/ingest", content=batch, headers=headers)
        assert held.status_code == 503 and held.headers["Retry-After"]
        drain(door)
        assert door.client.post("/api/v1/ingest", content=batch, headers=headers).status_code == 202


def test_too_many_events_in_one_request_is_413(tmp_path: Path) -> None:
    with open_door(tmp_path, ApiSettings(cookie_secure=False, ingest_max_events=3, rate_per_s=1000,
                                         rate_burst=1000)) as door:
        headers = enroll(door)
        batch = b"\n".join(make_event("hanoi", n).to_json() for n in range(4))
        assert door.client.post("/api/v1/ingest", content=batch, headers=headers).status_code == 413


def test_an_analyst_key_cannot_ship(door: Door) -> None:
    answer = door.client.post("/api/v1/ingest", content=make_event("hanoi").to_json(),
                              headers=door.headers("hanoi", Role.ANALYST))
    assert answer.status_code == 403
