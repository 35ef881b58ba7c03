"""The file reader: offsets, batches, dead letters, gzip, determinism, and never a crash for content.

Uses loghub's Linux_2k.log (../shared/data/loghub, research use with attribution, loghub/LICENSE).
"""

from __future__ import annotations

import gzip
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from config.errors import ConfigError
from pipeline.records import DeadLetter, Event, get_path
from sensors.files import INVALID_UTF8_TAG, MAX_LINE_BYTES, FileSource, LogBatch, read_log_file

LOGHUB_LINUX = Path(__file__).resolve().parents[3] / "shared" / "data" / "loghub" / "Linux" / "Linux_2k.log"
REF = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SOURCE = FileSource(tenant="hanoi", sensor="hanoi-s1", reference=REF)
FAILED = b"Nov 23 10:00:00 web1 sshd[1]: Failed password for root from 203.0.113.77 port 40022 ssh2"


def read_all(path: Path, source: FileSource = SOURCE) -> tuple[list[Event], list[DeadLetter]]:
    events: list[Event] = []
    dead: list[DeadLetter] = []
    with capture_logs():  # dead letters log warnings; keep them out of the test output
        for batch in read_log_file(path, source):
            events += batch.events
            dead += batch.dead_letters
    return events, dead


def test_loghub_file_reads_whole(tmp_path: Path) -> None:
    events, dead = read_all(LOGHUB_LINUX, FileSource(tenant="hanoi", sensor="s1",
                                                     reference=datetime(2026, 8, 1, tzinfo=UTC)))
    raw = LOGHUB_LINUX.read_bytes()
    assert (len(events), dead) == (2000, [])
    for event in events:
        offset = event.get("log.offset")
        original = event.get("event.original")
        assert raw[offset:].startswith(original.encode() + b"\r\n") or offset + len(original) == len(raw)
        assert offset == 0 or raw[offset - 1:offset] == b"\n"
        assert event.tenant == "hanoi" and event.get("organization.id") == "hanoi"
        assert event.get("observer.name") == "s1" and event.get("observer.type") == "sensor"
        assert event.get("log.file.path") == str(LOGHUB_LINUX.resolve())
    assert sum(e.get("event.dataset") == "system.auth" for e in events) == 677 + 172 + 2 + 2  # sshd su login gdm


def test_event_document_is_complete_and_has_no_wall_clock_fields(tmp_path: Path) -> None:
    path = tmp_path / "auth.log"
    path.write_bytes(b"\n" + FAILED + b"\r\n")
    [event], [] = read_all(path)
    assert event.doc == {
        "@timestamp": "2026-11-23T03:00:00.000000Z",
        "message": "Failed password for root from 203.0.113.77 port 40022 ssh2",
        "event": {"kind": "event", "module": "system", "dataset": "system.auth", "category": ["authentication"],
                  "type": ["info"], "action": "ssh_login", "outcome": "failure", "id": event.id,
                  "original": FAILED.decode()},
        "host": {"hostname": "web1"},
        "process": {"name": "sshd", "pid": 1},
        "log": {"syslog": {"hostname": "web1", "appname": "sshd", "procid": "1"},
                "file": {"path": str(path.resolve())}, "offset": 1},
        "related": {"hosts": ["web1"], "user": ["root"], "ip": ["203.0.113.77"]},
        "system": {"auth": {"ssh": {"event": "Failed", "method": "password"}}},
        "user": {"name": "root"},
        "source": {"address": "203.0.113.77", "ip": "203.0.113.77", "port": 40022},
        "organization": {"id": "hanoi"},
        "observer": {"name": "hanoi-s1", "type": "sensor"},
    }


def test_two_reads_give_identical_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "auth.log"
    path.write_bytes(LOGHUB_LINUX.read_bytes())
    first, _ = read_all(path)
    monkeypatch.chdir(tmp_path)
    second, _ = read_all(Path("auth.log"))  # a relative path names the same file: same ids
    assert [e.id for e in first] == [e.id for e in second]
    assert [e.doc for e in first] == [e.doc for e in second]
    assert len({e.id for e in first}) == len(first)


def test_identical_lines_at_two_offsets_get_two_ids(tmp_path: Path) -> None:
    path = tmp_path / "auth.log"
    path.write_bytes(FAILED + b"\n" + FAILED + b"\n")
    first, second = read_all(path)[0]
    assert first.id != second.id
    elsewhere, _ = read_all(path, FileSource(tenant="danang", sensor="hanoi-s1", reference=REF))
    assert {e.id for e in elsewhere}.isdisjoint({first.id, second.id})


def test_bad_lines_become_dead_letters_and_good_ones_survive(tmp_path: Path) -> None:
    overlong = b"Nov 23 10:00:00 web1 app: " + b"x" * MAX_LINE_BYTES
    lines = [b"not syslog at all", b"Nov 23 10:00:00 web1 a\x00b: nul", overlong, FAILED, b"", b"\r", FAILED]
    path = tmp_path / "auth.log"
    path.write_bytes(b"\n".join(lines))
    with capture_logs() as logged:
        [batch] = read_log_file(path, SOURCE)
    events, dead = batch.events, batch.dead_letters
    assert [(e["log_level"], e["event"], e["count"]) for e in logged if e["log_level"] == "warning"] == [
        ("warning", "lines_dead_lettered", 3)]
    offsets = [0]
    for line in lines[:-1]:
        offsets.append(offsets[-1] + len(line) + 1)
    assert [e.get("log.offset") for e in events] == [offsets[3], offsets[6]]
    assert [(d.reason.split(":")[0], d.raw) for d in dead] == [
        (f"line 1, byte {offsets[0]}", lines[0]),
        (f"line 2, byte {offsets[1]}", lines[1]),
        (f"line 3, byte {offsets[2]}", overlong[:MAX_LINE_BYTES]),
    ]
    assert "not syslog" in dead[0].reason
    assert dead[1].reason.endswith("line contains NUL bytes (binary data or a damaged file)")
    assert dead[2].reason.endswith(f"line longer than {MAX_LINE_BYTES} bytes")
    assert all(d.tenant == "hanoi" and d.source == str(path) for d in dead)
    assert [d.id for d in dead] == [d.id for d in read_all(path)[1]]


def test_invalid_utf8_is_replaced_and_tagged(tmp_path: Path) -> None:
    path = tmp_path / "auth.log"
    path.write_bytes(b"Nov 23 10:00:00 web1 sshd[1]: Invalid user r\xf6\xf6t from 203.0.113.77 port 22\n")
    [event], [] = read_all(path)
    assert event.get("user.name") == "r\ufffd\ufffdt"
    assert event.doc["tags"] == [INVALID_UTF8_TAG]
    assert event.get("event.outcome") == "failure"


def test_overlong_line_at_the_end_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "auth.log"
    path.write_bytes(FAILED + b"\n" + b"y" * (3 * MAX_LINE_BYTES + 5))
    events, [letter] = read_all(path)
    assert len(events) == 1 and letter.raw == b"y" * MAX_LINE_BYTES


def test_line_exactly_at_the_limit_is_parsed(tmp_path: Path) -> None:
    line = b"Nov 23 10:00:00 web1 app: "
    line += b"z" * (MAX_LINE_BYTES - len(line))
    path = tmp_path / "auth.log"
    path.write_bytes(line + b"\r\n" + FAILED)
    events, dead = read_all(path)
    assert (len(events), dead) == (2, [])
    assert events[1].get("log.offset") == len(line) + 2


def test_batches_progress_and_byte_counts(tmp_path: Path) -> None:
    path = tmp_path / "auth.log"
    path.write_bytes(LOGHUB_LINUX.read_bytes())
    progress: list[int] = []
    batches = list(read_log_file(path, SOURCE, batch_size=300, on_progress=progress.append))
    assert [len(b.events) + len(b.dead_letters) for b in batches] == [300] * 6 + [200]
    assert sum(b.bytes_read for b in batches) == path.stat().st_size
    assert sum(progress) == path.stat().st_size and all(n > 0 for n in progress)


def test_gzip_is_read_transparently(tmp_path: Path) -> None:
    plain = tmp_path / "auth.log"
    plain.write_bytes(LOGHUB_LINUX.read_bytes())
    packed = tmp_path / "auth.log.1.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    progress: list[int] = []
    from_plain, _ = read_all(plain)
    from_gzip, dead = [], []
    for batch in read_log_file(packed, SOURCE, on_progress=progress.append):
        from_gzip += batch.events
        dead += batch.dead_letters
    assert dead == [] and len(from_gzip) == len(from_plain) == 2000
    assert [(e.get("log.offset"), e.get("event.original"), e.timestamp) for e in from_gzip] == [
        (e.get("log.offset"), e.get("event.original"), e.timestamp) for e in from_plain]
    assert sum(progress) == packed.stat().st_size


def test_truncated_gzip_raises_os_error(tmp_path: Path) -> None:
    packed = tmp_path / "auth.log.gz"
    data = gzip.compress(LOGHUB_LINUX.read_bytes())
    packed.write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError, match="gzip"):
        read_all(packed)


def test_reference_defaults_to_the_files_mtime(tmp_path: Path) -> None:
    path = tmp_path / "auth.log"
    path.write_bytes(b"Dec 31 23:00:00 web1 sshd[1]: Connection closed by 192.0.2.1 port 22\n")
    january = datetime(2027, 1, 2, tzinfo=UTC).timestamp()
    os.utime(path, (january, january))
    [event], [] = read_all(path, FileSource(tenant="hanoi", sensor="s1"))
    assert event.timestamp == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)


def test_syslog_format_and_timezone(tmp_path: Path) -> None:
    path = tmp_path / "messages"
    path.write_bytes(FAILED + b"\n")
    [event], [] = read_all(path, FileSource(tenant="hanoi", sensor="s1", format="syslog", timezone="UTC",
                                             reference=REF))
    assert event.get("event.dataset") == "system.syslog" and event.get("event.outcome") is None
    assert event.timestamp == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("kwargs, reason", [
    ({"format": "evtx"}, "unknown log format 'evtx'; known: .*auth.*syslog"),
    ({"timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"reference": datetime(2026, 1, 1)}, "no zone"),
])
def test_file_source_refuses_bad_settings(kwargs: dict[str, object], reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        FileSource(tenant="hanoi", sensor="s1", **kwargs)  # type: ignore[arg-type]


def test_unreadable_file_raises_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_all(tmp_path / "missing.log")


def test_empty_file_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.log"
    path.write_bytes(b"")
    assert list(read_log_file(path, SOURCE)) == []
    path.write_bytes(b"\n\r\n\n")
    assert list(read_log_file(path, SOURCE)) == [LogBatch(bytes_read=4)]


# --- arbitrary bytes ----------------------------------------------------------------------------

GOOD_LINES = [FAILED, b"<13>1 2026-11-23T10:00:00Z h app - - - m", b"2026-11-23T10:00:00+07:00 h sudo: x",
              b"Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown"]
file_contents = st.one_of(
    st.binary(max_size=2000),
    st.lists(st.one_of(st.sampled_from(GOOD_LINES), st.binary(max_size=120)), max_size=30).map(b"\n".join),
)


def non_empty_lines(data: bytes) -> int:
    return sum(1 for line in data.split(b"\n") if line.removesuffix(b"\r"))


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(file_contents, st.integers(1, 7))
@example(b"\r\n\r\r\n\x00\n\xff\xfe", 1)
@example(FAILED + b"\n\n" + FAILED, 1)
def test_arbitrary_bytes_give_events_and_dead_letters_only(data: bytes, batch_size: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "any.log"
        path.write_bytes(data)
        with capture_logs():
            batches = list(read_log_file(path, SOURCE, batch_size=batch_size))
            again = list(read_log_file(path, SOURCE, batch_size=batch_size))
    events = [e for b in batches for e in b.events]
    dead = [d for b in batches for d in b.dead_letters]
    assert len(events) + len(dead) == non_empty_lines(data)
    assert all(0 < len(b.events) + len(b.dead_letters) <= batch_size for b in batches[:-1])
    assert sum(b.bytes_read for b in batches) == len(data)
    assert [e.id for b in again for e in b.events] == [e.id for e in events]
    assert [d.id for b in again for d in b.dead_letters] == [d.id for d in dead]
    offsets = [e.get("log.offset") for e in events]
    assert offsets == sorted(offsets) and all(get_path(e.doc, "organization.id") == "hanoi" for e in events)
