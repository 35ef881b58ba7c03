"""The scheduler: every target on time, spread by a stable jitter, never more than `concurrency` at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError

from api.demo.watch import PortalServer
from config.watch import ServiceWatchSettings, WatchTarget
from pipeline.records import Event
from sensors.spool import Spool
from sensors.watch import WatchScheduler, run_once, spool_sink
from sensors.watch.schedule import jitter_fraction, targets_for
from tests.sensors.watch.loopback import serving


def settings_for(port: int, count: int, **extra: object) -> ServiceWatchSettings:
    targets = tuple(WatchTarget(id=f"t{n}", tenant="hanoi", url=f"http://site{n}.hanoi.example:{port}/",
                                connect_to="127.0.0.1", interval_s=60) for n in range(count))
    return ServiceWatchSettings.model_validate({"targets": targets, **extra})


def test_each_target_checked_once_per_interval_with_bounded_concurrency() -> None:
    pages = {f"site{n}.hanoi.example": b"<p>ok</p>" for n in range(20)}
    with serving(PortalServer(pages=pages).start()) as (server,):
        settings = settings_for(server.port, 20, jitter_s=0.3, concurrency=4)
        seen: list[Event] = []
        scheduler = WatchScheduler(settings, seen.append)

        async def run_briefly() -> None:
            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(1.0, stop.set)
            await scheduler.run(stop)

        asyncio.run(run_briefly())
    assert sorted(e.get("govsoc.watch.target") for e in seen) == sorted(f"t{n}" for n in range(20))
    assert all(e.get("event.outcome") == "success" for e in seen)
    assert scheduler.stats.checks == 20 and scheduler.stats.skipped == 0
    assert scheduler.stats.lag_percentile(0.99) < 0.5


def test_jitter_is_stable_and_spread() -> None:
    settings = settings_for(80, 200, jitter_s=30)
    scheduler = WatchScheduler(settings, lambda e: None)
    firsts = [scheduler.first_due(t, 0.0) for t in settings.targets]
    assert firsts == [WatchScheduler(settings, lambda e: None).first_due(t, 0.0) for t in settings.targets]
    assert min(firsts) >= 0 and max(firsts) < 30 and len({round(f) for f in firsts}) > 20
    assert 0 <= jitter_fraction("hanoi", "t1") < 1


def test_targets_only_check_from_their_vantage_points() -> None:
    settings = ServiceWatchSettings(targets=(
        WatchTarget(id="a", tenant="hanoi", domain="a.example", vantage_points=("hanoi-s1",)),
        WatchTarget(id="b", tenant="hanoi", domain="b.example")))
    assert [t.id for t in targets_for(settings, "hanoi-s1")] == ["a", "b"]
    assert [t.id for t in targets_for(settings, "central")] == ["b"]


def test_spool_sink_puts_each_check_on_the_sensor_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    with serving(PortalServer(pages={"site0.hanoi.example": b"<p>ok</p>"}).start()) as (server,):
        events = asyncio.run(run_once(settings_for(server.port, 1)))
    sink = spool_sink(spool)
    for event in events:
        sink(event)
    records = spool.peek(10)
    spool.close()
    assert [Event.from_json(r.value).id for r in records] == [events[0].id]


@pytest.mark.parametrize(("data", "message"), [
    ({"targets": [{"id": "a", "tenant": "hanoi"}]}, "target 'a': give exactly one of url, address, domain"),
    ({"targets": [{"id": "a", "tenant": "hanoi", "url": "ftp://x.example/"}]}, "url must be http(s)://host/"),
    ({"targets": [{"id": "a", "tenant": "hanoi", "address": "mail.example"}]}, "address: expected host:port"),
    ({"targets": [{"id": "a", "tenant": "hanoi", "domain": "x.example", "connect_to": "x.example"}]},
     "connect_to: expected an IP address"),
    ({"targets": [{"id": "a", "tenant": "hanoi", "domain": "x.example"},
                  {"id": "a", "tenant": "hanoi", "domain": "y.example"}]}, "targets[1]: tenant 'hanoi' already has"),
    ({"resolver": "dns.example"}, "resolver: expected an IP address"),
    ({"targets": [{"id": "a", "tenant": "hanoi", "domain": "x.example", "intervall_s": 5}]}, "intervall_s"),
])
def test_target_configuration_errors_name_the_target_and_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        ServiceWatchSettings.model_validate(data)
    assert message in str(info.value)
