"""The detect step's in-process shortcut: events handed over on the memory bus raise exactly the
alerts (and incidents) that decoding every message's bytes raises.

The embedded pipeline (`build_runtime`) runs twice over the demo's events (auth logs of a portal
with brute forces, and the Windows events of Bộ Tài chính's phishing chain): once as it is, its
detect step taking each message's `Message.event`, and once with that field stripped from every
message before the detect step, so it parses and validates each event from its bytes as it does
on Kafka.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from api.demo.authlog import ICT, Attack, AuthLogSpec, generate_auth_log
from api.demo.windows import WindowsSpec, generate_windows_events
from api.wiring import build_runtime
from config.load import load_settings
from config.tenants import TenantScope
from pipeline.bus import Message, topics
from pipeline.bus.keys import entity_key
from pipeline.records import Alert, Event
from pipeline.store.base import IncidentQuery
from sensors.files import FileSource, read_log_file

START = datetime(2026, 11, 22, tzinfo=ICT)


def demo_events(work: Path) -> list[Event]:
    attacks = tuple(Attack(source=f"203.0.113.{i + 1}", at=START + timedelta(hours=3 + 6 * i)) for i in range(3))
    auth = work / "hanoi-auth.log"
    auth.write_text("\n".join(generate_auth_log(AuthLogSpec(host="portal", start=START, lines=3000, seed=11,
                                                            attacks=attacks))) + "\n", encoding="utf-8")
    windows = work / "btc-windows.jsonl"
    windows.write_text("\n".join(generate_windows_events(WindowsSpec(start=START))) + "\n", encoding="utf-8")
    events: list[Event] = []
    for path, source in ((auth, FileSource(tenant="hanoi", sensor="hanoi-s1", format="auth")),
                         (windows, FileSource(tenant="btc", sensor="btc-s1", format="windows_json"))):
        for batch in read_log_file(path, source):
            events.extend(batch.events)
    return sorted(events, key=lambda e: e.timestamp)


@dataclasses.dataclass
class Run:
    alerts: list[bytes]
    incidents: int
    handed_over: int  # messages that reached the detect step with their event
    decoded_equal: bool  # every handed-over event is what its bytes decode to


def run_pipeline(work: Path, events: Sequence[Event], *, strip: bool) -> Run:
    runtime = build_runtime(load_settings(None, overrides={"data_dir": work}))
    alerts_seen = runtime.bus.consumer([topics.ALERTS], "test-alerts")  # joins before anything is published
    detect = next(w for w in runtime.pipeline.workers if w.name == "detect")
    step = detect.step
    run = Run(alerts=[], incidents=0, handed_over=0, decoded_equal=True)

    def observed(messages: Sequence[Message]) -> object:
        handed = [m for m in messages if m.event is not None]
        run.handed_over += len(handed)
        run.decoded_equal &= all(Event.from_json(m.value) == m.event for m in handed)
        return step([dataclasses.replace(m, event=None) for m in messages] if strip else messages)

    detect.step = observed
    try:
        for i in range(0, len(events), 50):  # in chunks, as a sensor's shipper publishes
            chunk = events[i:i + 50]
            runtime.bus.publish(topics.RAW, [(entity_key(e.tenant, e.doc), e.to_json()) for e in chunk])
            runtime.pipeline.drain()
        run.alerts = [m.value for m in alerts_seen.poll(100_000)]
        run.incidents = runtime.incidents.count_incidents(TenantScope.everything(), IncidentQuery())
    finally:
        runtime.close()
    return run


def test_handed_over_events_raise_the_alerts_of_decoded_ones(tmp_path: Path) -> None:
    events = demo_events(tmp_path)
    shortcut = run_pipeline(tmp_path / "shortcut", events, strip=False)
    decoded = run_pipeline(tmp_path / "decoded", events, strip=True)
    assert shortcut.handed_over == len(events)  # the memory bus carried every event beside its bytes
    assert shortcut.decoded_equal
    assert len(shortcut.alerts) >= 3  # the brute forces and the phishing chain, at least
    assert shortcut.alerts == decoded.alerts  # same alerts, same order, byte for byte
    assert [Alert.from_json(a).id for a in shortcut.alerts] == [Alert.from_json(a).id for a in decoded.alerts]
    assert shortcut.incidents == decoded.incidents > 0
