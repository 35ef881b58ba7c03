"""Inputs and reference results for the scale-out tests (tests/api/test_workers.py, tests/e2e/).

- `auth_log(path, lines, attacks)`: a generated auth log (api/demo/authlog.py), the same for a
  given size every time, with brute-force bursts spread over the day.
- `parse_events(path)`: the events the file sensor makes of it (tenant `hanoi`-style ids).
- `embedded_alert_ids(events)`: what one in-process engine raises over them, in order: the
  reference every scale-out run must match.
- `read_topic(bus, topic, group, until)`: everything a fresh group reads from a topic.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from api.demo.authlog import ICT, Attack, AuthLogSpec, generate_auth_log
from detections.sigma.load import builtin_rules_dir, load_rules
from detections.sigma.match import SigmaEngine
from pipeline.bus.base import Bus, Message
from pipeline.records import Alert, Event
from sensors.files import FileSource, read_log_file

START = datetime(2026, 11, 22, tzinfo=ICT)
TENANT = "hanoi"


def auth_log(path: Path, lines: int, attacks: int) -> Path:
    """Exactly `lines` lines (each one event) with `attacks` bursts (40 failures each, then a
    success) spread evenly; the generator adds the bursts' lines, so its last few are cut."""
    step = timedelta(hours=24) / max(attacks, 1)
    spec = AuthLogSpec(host="portal", start=START, lines=lines, attacks=tuple(
        Attack(source=f"203.0.113.{i + 1}", at=START + step * i + timedelta(minutes=7)) for i in range(attacks)))
    path.write_text("\n".join(generate_auth_log(spec)[:lines]) + "\n", encoding="utf-8")
    return path


def source(tenant: str = TENANT) -> FileSource:
    return FileSource(tenant=tenant, sensor="replay", format="auth")


def parse_events(path: Path, tenant: str = TENANT) -> list[Event]:
    return [event for batch in read_log_file(path, source(tenant)) for event in batch.events]


def embedded_alerts(events: list[Event]) -> list[Alert]:
    ruleset, issues = load_rules([builtin_rules_dir()])
    assert not issues
    return SigmaEngine(ruleset).process(events)


def read_topic(bus: Bus, topic: str, group: str, until: Callable[[list[Message]], bool],
               timeout_s: float = 60.0) -> list[Message]:
    """Poll a fresh group until `until(messages)` holds, then 1 s more (to see extras), or timeout."""
    consumer = bus.consumer([topic], group)
    out: list[Message] = []
    deadline = time.monotonic() + timeout_s
    settle: float | None = None
    try:
        while time.monotonic() < deadline:
            out.extend(consumer.poll(1000, 0.2))
            if settle is None and until(out):
                settle = time.monotonic() + 1.0
            if settle is not None and time.monotonic() >= settle:
                break
    finally:
        consumer.close()
    return out
