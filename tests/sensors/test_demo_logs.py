"""The demo's generated web-server and firewall logs (api.demo.weblog, .firewall) through the parsers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from api.demo.weblog import demo_web_and_firewall_files
from pipeline.records import Event
from sensors.files import FileSource, read_log_file

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


def events_of(tenant: str, sensor: str, fmt: str, path: Path) -> list[Event]:
    events: list[Event] = []
    for batch in read_log_file(path, FileSource(tenant=tenant, sensor=sensor, format=fmt)):
        assert not batch.dead_letters, batch.dead_letters[0].reason
        events.extend(batch.events)
    return events


def test_every_line_becomes_an_event_of_its_tenant_and_the_attacks_are_there(tmp_path: Path) -> None:
    files = demo_web_and_firewall_files(tmp_path, NOW)
    assert [(t, s, f) for t, s, f, _p in files] == [
        ("hanoi", "hanoi-s1", "nginx_access"), ("byt", "byt-s1", "apache_access"),
        ("btc", "btc-s1", "fortigate"), ("danang", "danang-s1", "kv_firewall")]
    by_format = {fmt: events_of(tenant, sensor, fmt, path) for tenant, sensor, fmt, path in files}
    for fmt, events in by_format.items():
        lines = next(p for _t, _s, f, p in files if f == fmt).read_text().splitlines()
        assert len(events) == len(lines) > 500
        day = {e.timestamp.date() for e in events}
        assert day <= {datetime(2026, 11, 21).date(), datetime(2026, 11, 22).date()}  # the day before, in ICT
    nginx = by_format["nginx_access"]
    assert any("UNION%20SELECT" in e.get("url.original") and e.get("source.ip") == "203.0.113.77" for e in nginx)
    assert any(e.get("url.path") == "/uploads/anh-dai-dien.php" for e in nginx)
    fortigate = by_format["fortigate"]
    assert sum(e.get("destination.ip") == "203.0.113.99" for e in fortigate) == 6  # the C2 sessions, allowed
    assert any(e.get("source.ip") == "203.0.113.77" and e.get("event.outcome") == "failure" for e in fortigate)
    sweep = [e for e in by_format["kv_firewall"] if e.get("source.ip") == "198.51.100.66"]
    assert len(sweep) == 17 and all(e.get("event.outcome") == "failure" for e in sweep)


def test_the_files_are_the_same_for_the_same_day(tmp_path: Path) -> None:
    first = [p.read_bytes() for *_rest, p in demo_web_and_firewall_files(tmp_path / "a", NOW)]
    second = [p.read_bytes() for *_rest, p in demo_web_and_firewall_files(tmp_path / "b", NOW)]
    assert first == second
