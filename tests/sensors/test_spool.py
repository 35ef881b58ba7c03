"""The disk spool: order, commit visibility, the acked cursor across restarts, torn tails, a full spool."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from sensors.spool import (
    CURSOR_FILE,
    SEGMENT_SUFFIX,
    FsyncPolicy,
    RecordKind,
    Spool,
    SpoolOptions,
    decode_records,
    encode_record,
)

SMALL = SpoolOptions(max_bytes=8 * 1024, segment_bytes=2 * 1024, fsync=FsyncPolicy.NEVER)


def fill(spool: Spool, values: range, kind: RecordKind = RecordKind.EVENT) -> None:
    for n in values:
        spool.append(kind, f"t{n % 3}", b"value-%06d" % n)
    spool.commit()


def values_of(spool: Spool, limit: int = 100_000) -> list[bytes]:
    return [r.value for r in spool.peek(limit)]


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"*{SEGMENT_SUFFIX}"))


def test_records_come_back_in_order_with_kind_and_key(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(RecordKind.EVENT, "hanoi", b'{"a": 1}')
    spool.append(RecordKind.DEAD_LETTER, None, b'{"reason": "x"}')
    spool.append(RecordKind.EVENT, "", b"")
    spool.commit()
    got = [(r.kind, r.key, r.value) for r in spool.peek(10)]
    assert got == [(RecordKind.EVENT, "hanoi", b'{"a": 1}'), (RecordKind.DEAD_LETTER, None, b'{"reason": "x"}'),
                   (RecordKind.EVENT, "", b"")]
    assert spool.pending_records == 3


def test_appended_records_are_invisible_until_commit(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(RecordKind.EVENT, "k", b"one")
    assert spool.peek(10) == [] and spool.pending_records == 0
    spool.commit()
    assert values_of(spool) == [b"one"]


def test_a_restart_resumes_after_the_last_ack(tmp_path: Path) -> None:
    spool = Spool(tmp_path, SMALL)
    fill(spool, range(100))
    spool.ack(spool.peek(40))
    spool.peek(10)  # peeked, never acked: comes again
    spool.close()
    again = Spool(tmp_path, SMALL)
    assert values_of(again) == [b"value-%06d" % n for n in range(40, 100)]
    assert again.pending_records == 60
    fill(again, range(100, 105))
    assert values_of(again)[-5:] == [b"value-%06d" % n for n in range(100, 105)]


def test_acked_segments_are_deleted_and_the_cursor_never_moves_back(tmp_path: Path) -> None:
    spool = Spool(tmp_path, SMALL)
    fill(spool, range(150))  # ~30 bytes a record: several segments
    assert len(segments(tmp_path)) > 1
    first = spool.peek(10)
    everything = spool.peek(1000)
    spool.ack(everything)
    spool.ack(first)  # an older ack is ignored
    assert spool.pending_records == 0 and spool.peek(10) == []
    assert len(segments(tmp_path)) == 1


def test_a_torn_record_at_the_tail_is_truncated_and_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, SMALL)
    fill(spool, range(20))
    spool.close()
    last = segments(tmp_path)[-1]
    os.truncate(last, last.stat().st_size - 3)  # the crash came in the middle of the last record
    with capture_logs() as logs:
        reopened = Spool(tmp_path, SMALL)
    assert reopened.metrics.torn_records == 1
    assert values_of(reopened) == [b"value-%06d" % n for n in range(19)]
    assert any(e["event"] == "spool_torn_tail_truncated" for e in logs)
    fill(reopened, range(19, 21))  # appends go after the good records
    reopened.close()
    assert values_of(Spool(tmp_path, SMALL)) == [b"value-%06d" % n for n in range(21)]


def test_a_half_written_header_at_the_tail_is_truncated(tmp_path: Path) -> None:
    spool = Spool(tmp_path, SMALL)
    fill(spool, range(5))
    spool.close()
    with segments(tmp_path)[-1].open("ab") as f:
        f.write(b"\x00\x00")
    reopened = Spool(tmp_path, SMALL)
    assert reopened.metrics.torn_records == 1 and len(values_of(reopened)) == 5


def test_a_full_spool_drops_the_oldest_segments_with_a_metric(tmp_path: Path) -> None:
    spool = Spool(tmp_path, SMALL)
    with capture_logs() as logs:
        fill(spool, range(1000))  # ~30 KB into an 8 KB spool
    kept = values_of(spool)
    assert spool.metrics.dropped_records == 1000 - len(kept) > 0
    assert spool.metrics.dropped_segments > 0
    assert kept == [b"value-%06d" % n for n in range(1000 - len(kept), 1000)]  # the newest, in order
    assert spool.size_bytes <= SMALL.max_bytes
    assert sum(p.stat().st_size for p in segments(tmp_path)) <= SMALL.max_bytes
    full = [e for e in logs if e["event"] == "spool_full"]
    assert full and all(e["log_level"] == "warning" for e in full)
    spool.ack(spool.peek(5))
    spool.close()
    assert len(values_of(Spool(tmp_path, SMALL))) == len(kept) - 5


def test_an_ack_of_records_dropped_meanwhile_is_ignored(tmp_path: Path) -> None:
    spool = Spool(tmp_path, SMALL)
    fill(spool, range(10))
    in_flight = spool.peek(10)
    fill(spool, range(10, 1000))  # the in-flight records' segment is dropped
    before = spool.pending_records
    spool.ack(in_flight)
    assert spool.pending_records == before == len(values_of(spool))


def test_an_unreadable_cursor_resends_from_the_oldest_record(tmp_path: Path) -> None:
    spool = Spool(tmp_path, SMALL)
    fill(spool, range(10))
    spool.ack(spool.peek(4))
    spool.close()
    (tmp_path / CURSOR_FILE).write_bytes(b"{torn")
    assert len(values_of(Spool(tmp_path, SMALL))) == 10


def test_every_fsync_policy_keeps_the_data(tmp_path: Path) -> None:
    for policy in FsyncPolicy:
        directory = tmp_path / policy.value
        spool = Spool(directory, SpoolOptions(fsync=policy, fsync_interval_s=0.0))
        fill(spool, range(3))
        spool.close()
        assert len(values_of(Spool(directory))) == 3


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400) | st.builds(lambda a, b: a + b, st.just(encode_record(RecordKind.EVENT, "k", b"ok")),
                                           st.binary(max_size=60)))
@example(b"\x00\x00\x00\x03\x00\x00\x00\x00\x01\x00")  # length below the body head
@example(b"\xff\xff\xff\xff\x00\x00\x00\x00")  # length over the limit
@example(encode_record(RecordKind.EVENT, "k", b"v")[:-1])
def test_arbitrary_bytes_as_a_segment_never_raise(data: bytes) -> None:
    list(decode_records(data))
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        (directory / f"{1:020d}{SEGMENT_SUFFIX}").write_bytes(data)
        (directory / f"{2:020d}{SEGMENT_SUFFIX}").write_bytes(data)
        spool = Spool(directory, SMALL)
        got = spool.peek(1000)
        assert spool.pending_records == len(got)
        spool.ack(got)
        spool.close()


def test_expire_drops_sealed_segments_older_than_max_age(tmp_path: Path) -> None:
    options = SpoolOptions(max_bytes=64 * 1024, segment_bytes=2 * 1024, fsync=FsyncPolicy.NEVER, max_age_s=60)
    spool = Spool(tmp_path, options)
    fill(spool, range(300))
    sealed = segments(tmp_path)[:-1]
    for path in sealed[:2]:
        os.utime(path, (1_000_000, 1_000_000))  # last written long ago
    with capture_logs() as logs:
        lost = spool.expire()
    kept = values_of(spool)
    assert lost == spool.metrics.dropped_records == 300 - len(kept) > 0
    assert kept == [b"value-%06d" % n for n in range(300 - len(kept), 300)]
    assert [e["event"] for e in logs] == ["spool_segment_expired"] * 2
    assert spool.expire() == 0 and len(segments(tmp_path)) == len(sealed) - 1


def test_batches_bigger_than_a_read_chunk_skip_nothing_across_segments(tmp_path: Path) -> None:
    """Found by bench/sensor.py: a peek that filled one read chunk (1 MiB) of a segment went on into
    the next segment, so acking the batch dropped the rest of the first one."""
    spool = Spool(tmp_path, SpoolOptions(segment_bytes=4 * 1024 * 1024, max_bytes=64 * 1024 * 1024,
                                         fsync=FsyncPolicy.NEVER))
    expected = [str(n).encode() + b"x" * (500 + n % 2500) for n in range(12_000)]
    for start in range(0, len(expected), 2000):
        for value in expected[start:start + 2000]:
            spool.append(RecordKind.EVENT, "k", value)
        spool.commit()
    got: list[bytes] = []
    while batch := spool.peek(2000):
        got += [r.value for r in batch]
        spool.ack(batch)
    assert len(segments(tmp_path)) == 1 and got == expected and spool.pending_records == 0
