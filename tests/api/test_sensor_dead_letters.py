"""`GET /api/v1/sensors/{sensor}/dead-letters`: a sensor's dead letters, scoped and paginated.

The data arrives the real way: two log sensors (`sensors.agent.Agent`), one per sibling tenant,
tail files holding good and malformed lines and ship to a MemoryBus; the ingest step stores what
the bus holds (dead letters included) in the door's event store, and their heartbeats go to its
sensor store. Then each tenant's keys read the route through the whole API door.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.settings import Role
from pipeline.bus import topics
from pipeline.bus.memory import MemoryBus
from pipeline.enrich import Enricher
from pipeline.ingest import IngestStep
from pipeline.store.base import EventStore, SensorStore
from sensors.agent import Agent, AgentConfig
from tests.api.door import TREE, Door, open_door

GOOD = "Nov 23 10:00:{second:02d} portal sshd[4242]: Failed password for root from 203.0.113.{n} port 22 ssh2"
BAD = "garbage line {n} from {tenant}"
# (tenant, sensor, bad lines); the sensor named `edge` exists in both siblings
SENSORS = (("danang", "danang-s1", 3), ("hanoi", "hanoi-s1", 2), ("danang", "edge", 1), ("hanoi", "edge", 1))


def run_sensor(tmp: Path, tenant: str, sensor: str, bad: int, events: EventStore, sensors: SensorStore) -> None:
    """One agent reads its file to the end; the ingest step stores what it shipped."""
    log = (tmp / f"{tenant}-{sensor}" / "auth.log").resolve()
    log.parent.mkdir()
    lines = [GOOD.format(second=n, n=n) for n in range(5)] + [BAD.format(n=n, tenant=tenant) for n in range(bad)]
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    bus = MemoryBus()
    consumer = bus.consumer([topics.RAW, topics.DEAD_LETTERS], "ingest")
    agent = Agent(AgentConfig.model_validate({
        "tenant": tenant, "sensor": sensor, "spool": {"dir": str(log.parent / "spool")},
        "files": [{"paths": [str(log.parent / "auth.log*")], "format": "auth"}]}), bus)
    assert agent.tail_once() == len(lines)
    assert agent.shipper.ship_once().shipped == len(lines)
    result = IngestStep(Enricher(TREE), events, MemoryBus())(consumer.poll(1000))
    assert (result.events, result.dead_letters) == (5, bad)
    sensors.record_heartbeats([agent.heartbeat()])
    agent.spool.close()


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Door]:
    tmp = tmp_path_factory.mktemp("dead-letters")
    with open_door(tmp) as door:
        events, _incidents, sensors = door.stores[:3]
        for tenant, sensor, bad in SENSORS:
            run_sensor(tmp, tenant, sensor, bad, events, sensors)  # type: ignore[arg-type]
        yield door


def get(door: Door, url: str, tenant: str | None, role: Role = Role.ANALYST) -> Any:
    return door.client.get(url, headers=door.headers(tenant, role) if tenant else {})


def test_a_sensor_s_dead_letters_carry_reason_raw_line_source_and_time(door: Door) -> None:
    answer = get(door, "/api/v1/sensors/danang-s1/dead-letters", "danang")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["tenant"], body["sensor"], body["total"], body["reported"]) == ("danang", "danang-s1", 3, 3)
    assert not body["is_scan_truncated"]
    assert sorted(d["raw"] for d in body["dead_letters"]) == [f"garbage line {n} from danang" for n in range(3)]
    for letter in body["dead_letters"]:
        assert letter["source"].endswith("danang-danang-s1/auth.log")
        assert letter["reason"].startswith("line ") and "not syslog" in letter["reason"]
        assert letter["received"]


def test_a_sibling_never_sees_the_other_s_sensor(door: Door) -> None:
    for role in (Role.ANALYST, Role.ADMIN, Role.AUDITOR):
        assert get(door, "/api/v1/sensors/danang-s1/dead-letters", "hanoi", role).status_code == 404
        assert get(door, "/api/v1/sensors/danang-s1/dead-letters?tenant=danang", "hanoi", role).status_code == 404
    hanoi = get(door, "/api/v1/sensors/hanoi-s1/dead-letters", "hanoi").json()
    assert hanoi["total"] == 2
    assert all("danang" not in d["raw"] and "danang" not in d["source"] for d in hanoi["dead_letters"])


def test_the_national_centre_sees_both_and_names_the_tenant_of_a_shared_name(door: Door) -> None:
    assert get(door, "/api/v1/sensors/danang-s1/dead-letters", "national").json()["total"] == 3
    assert get(door, "/api/v1/sensors/edge/dead-letters", "national").status_code == 409
    edge = get(door, "/api/v1/sensors/edge/dead-letters?tenant=hanoi", "national").json()
    assert [d["raw"] for d in edge["dead_letters"]] == ["garbage line 0 from hanoi"]
    # within one tenant the name is unique: each sibling sees its own `edge`, only its own letters
    own = get(door, "/api/v1/sensors/edge/dead-letters", "danang").json()
    assert (own["tenant"], [d["raw"] for d in own["dead_letters"]]) == ("danang", ["garbage line 0 from danang"])


def test_pages_are_newest_first_without_repeats(door: Door) -> None:
    url = "/api/v1/sensors/danang-s1/dead-letters"
    whole = get(door, url, "danang").json()["dead_letters"]
    first = get(door, f"{url}?limit=2", "danang").json()
    second = get(door, f"{url}?limit=2&offset=2", "danang").json()
    assert (first["total"], first["limit"], second["offset"]) == (3, 2, 2)
    assert first["dead_letters"] + second["dead_letters"] == whole
    assert [d["received"] for d in whole] == sorted((d["received"] for d in whole), reverse=True)
    assert get(door, f"{url}?limit=0", "danang").status_code == 422
    assert get(door, f"{url}?offset=-1", "danang").status_code == 422


def test_credentials_and_roles(door: Door) -> None:
    url = "/api/v1/sensors/danang-s1/dead-letters"
    assert get(door, url, None).status_code == 401
    assert get(door, url, "danang", Role.SENSOR).status_code == 403
    assert get(door, "/api/v1/sensors/nowhere/dead-letters", "danang").status_code == 404
