"""The sensor's local disk spool: every record lands here before the shipper sends it to the bus.

Stage: sensors, store-and-forward. In: `append(kind, key, value)` from the inputs, made visible by
`commit()`. Out: `peek(max_records)` to the shipper, then `ack(position)` once the bus took them.

On disk, a directory of append-only segment files `NNNNNNNNNNNNNNNNNNNN.seg` (a sequence number)
holding records (`length | crc32 | kind | key length | key | value`, see `spool_format`), and
`cursor.json`, the acked position.

Contract and invariants:
- Order: `peek` returns records in append order, starting at the acked cursor, without gaps: it
  reads into a later segment only once it has every record of the earlier one. `ack(position)`
  moves the cursor forward (never back) and persists it (atomic rename), so a restart resumes
  after the last persisted ack: records peeked but not acked come again (at-least-once). Under
  `FsyncPolicy.ALWAYS` every ack is persisted at once; otherwise at most once per
  `fsync_interval_s` (by the next `ack` or `peek` after it, and at `close()`), so a crash may
  send the records acked in the last interval again: duplicates the events' deterministic ids
  turn into overwrites, never losses (a write per ack was the sensor's main syscall cost).
- Visibility and durability: appended records are buffered; `commit()` writes them to the file,
  fsyncs according to `FsyncPolicy`, and only then shows them to `peek`. A process crash (kill -9)
  loses nothing committed; a power cut loses at most what the policy left unsynced.
- A torn record at the end of the last segment (a crash mid-write) fails its CRC or length check:
  at open it is truncated away and counted in `metrics.torn_records`; everything before it reads.
  A damaged record inside a sealed segment ends that segment (the rest of it is counted as
  corrupt and skipped). Reading arbitrary bytes never raises.
- Bounded: segments hold about `segment_bytes` each and the spool at most `max_bytes`. When an
  append would pass `max_bytes`, the oldest segments are deleted whole, acked or not; unacked
  records lost so are counted in `metrics.dropped_records` and logged at warning (`spool_full`).
  `expire()` likewise deletes sealed segments older than `max_age_s` (`spool_segment_expired`).
  Ingestion never stops for a full spool: new data wins over old.
- Thread-safe: inputs append from their threads while the shipper peeks and acks from its own.
"""

from __future__ import annotations

import enum
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import orjson
import structlog

from sensors.spool_format import (
    RecordKind,
    decode_records,
    encode_record,
    first_record_size,
)

__all__ = ["CURSOR_FILE", "SEGMENT_SUFFIX", "FsyncPolicy", "Position", "RecordKind", "Spool",
           "SpoolMetrics", "SpoolOptions", "SpoolRecord", "decode_records", "encode_record"]

log = structlog.get_logger(__name__)

_READ_CHUNK = 1024 * 1024
SEGMENT_SUFFIX = ".seg"
CURSOR_FILE = "cursor.json"


class FsyncPolicy(enum.StrEnum):
    """When `commit()` fsyncs: every time, at most once per interval, or never (the OS decides)."""

    ALWAYS = "always"
    INTERVAL = "interval"
    NEVER = "never"


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A place in the spool: a segment's sequence number and a byte offset in it."""

    segment: int
    offset: int


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    kind: RecordKind
    key: str | None
    value: bytes
    end: Position  # where the next record starts: ack this to forget this record


@dataclass
class SpoolMetrics:
    appended_records: int = 0
    dropped_records: int = 0  # unacked records deleted because the spool was full
    dropped_segments: int = 0
    torn_records: int = 0  # torn tails truncated at open
    corrupt_segments: int = 0  # sealed segments cut short by a damaged record


@dataclass(frozen=True, slots=True)
class SpoolOptions:
    max_bytes: int = 1024 * 1024 * 1024
    segment_bytes: int = 16 * 1024 * 1024
    fsync: FsyncPolicy = FsyncPolicy.INTERVAL
    fsync_interval_s: float = 1.0
    max_age_s: float | None = None  # sealed segments older than this are deleted by `expire()`

    def __post_init__(self) -> None:
        if self.segment_bytes < 1024 or self.max_bytes < 2 * self.segment_bytes:
            raise ValueError("spool: segment_bytes must be >= 1024 and max_bytes >= 2 * segment_bytes")


@dataclass
class _Segment:
    seq: int
    path: Path
    size: int  # committed bytes: what readers may see
    records: int = 0  # committed records
    records_written: int = 0  # records written to the file, committed or not


@dataclass
class _State:
    segments: list[_Segment] = field(default_factory=list)
    cursor: Position = Position(0, 0)
    pending: int = 0  # committed records after the cursor


class Spool:
    """A disk spool in `directory` (created if missing). See the module docstring for the contract."""

    def __init__(self, directory: Path, options: SpoolOptions | None = None) -> None:
        self.directory = directory
        self.options = options or SpoolOptions()
        self.metrics = SpoolMetrics()
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._has_data = threading.Condition(self._lock)
        self._buffer: list[bytes] = []
        self._buffered_bytes = 0
        self._last_fsync = self._last_cursor_sync = self._last_cursor_write = time.monotonic()
        self._is_cursor_dirty = False  # acked further than the cursor file says
        self._state = _State()
        self._load()
        self._writer: BinaryIO = self._open_writer()
        self._reader: tuple[int, BinaryIO] | None = None


    def _load(self) -> None:
        seqs = sorted(int(p.stem) for p in self.directory.glob(f"*{SEGMENT_SUFFIX}") if p.stem.isdigit())
        for i, seq in enumerate(seqs):
            path = self._segment_path(seq)
            data = path.read_bytes()
            count, valid = 0, 0
            for record in decode_records(data):
                if record is None:
                    break
                count, valid = count + 1, valid + record.size
            if valid < len(data):
                self._repair(path, valid, is_last=i == len(seqs) - 1)
            self._state.segments.append(_Segment(seq, path, valid, count))
        if not self._state.segments:
            self._state.segments.append(self._new_segment(1))
        self._state.cursor = self._read_cursor()
        self._state.pending = self._count_after_cursor()

    def _repair(self, path: Path, valid: int, *, is_last: bool) -> None:
        """Cut a segment at its first bad record: a torn tail (last segment) or damage (sealed)."""
        self.metrics.torn_records += is_last
        self.metrics.corrupt_segments += not is_last
        log.warning("spool_torn_tail_truncated" if is_last else "spool_segment_corrupt", segment=path.name,
                    kept_bytes=valid)
        with path.open("r+b") as f:
            f.truncate(valid)
            os.fsync(f.fileno())

    def _read_cursor(self) -> Position:
        first = self._state.segments[0]
        # Any doubt resends from the oldest record: duplicates (ids dedupe them), never losses.
        try:
            doc = orjson.loads((self.directory / CURSOR_FILE).read_bytes())
            cursor = Position(int(doc["segment"]), int(doc["offset"]))
        except FileNotFoundError:
            return Position(first.seq, 0)
        except (ValueError, KeyError, TypeError) as e:
            log.warning("spool_cursor_unreadable", error=str(e))
            return Position(first.seq, 0)
        segment = self._segment(cursor.segment)
        if segment is None or cursor.offset > segment.size:
            if cursor.segment >= first.seq:
                log.warning("spool_cursor_out_of_range", segment=cursor.segment, offset=cursor.offset)
            return Position(first.seq, 0)
        return cursor

    def _count_after_cursor(self) -> int:
        cursor = self._state.cursor
        total = 0
        for segment in self._state.segments:
            if segment.seq > cursor.segment:
                total += segment.records
            elif segment.seq == cursor.segment:
                total += self._count_from(segment, cursor.offset)
        return total

    def _count_from(self, segment: _Segment, offset: int) -> int:
        with segment.path.open("rb") as f:
            data = f.read(segment.size)
        return sum(1 for r in decode_records(data, offset) if r is not None)


    def append(self, kind: RecordKind, key: str | None, value: bytes) -> None:
        """Buffer one record; it is written, and visible to `peek`, at the next `commit()`."""
        encoded = encode_record(kind, key, value)
        with self._lock:
            self._buffer.append(encoded)
            self._buffered_bytes += len(encoded)
            if self._buffered_bytes >= self.options.segment_bytes // 4:
                self._write_buffer()

    def append_many(self, records: Sequence[tuple[RecordKind, str | None, bytes]]) -> None:
        """`append` for a batch: one lock and one buffered write for all (bench/sensor.py)."""
        encoded = [encode_record(kind, key, value) for kind, key, value in records]
        with self._lock:
            self._buffer.extend(encoded)
            self._buffered_bytes += sum(map(len, encoded))
            if self._buffered_bytes >= self.options.segment_bytes // 4:
                self._write_buffer()

    def commit(self) -> None:
        """Write what was appended, fsync as the policy says, and make it visible to `peek`."""
        with self._lock:
            self._write_buffer()
            self._writer.flush()
            self._maybe_fsync()
            self._publish_sizes()

    def _write_buffer(self) -> None:
        if not self._buffer:
            return
        total, written = self._total_bytes(), self._writer.tell()  # kept here: tell() is a syscall
        size = self._buffered_bytes
        if total + size <= self.options.max_bytes and written + size <= self.options.segment_bytes:
            # the common case, all of it fits: one write (bench/sensor.py)
            self._writer.write(b"".join(self._buffer))
            self._state.segments[-1].records_written += len(self._buffer)
            self.metrics.appended_records += len(self._buffer)
            self._buffer, self._buffered_bytes = [], 0
            return
        for encoded in self._buffer:
            size = len(encoded)
            if total + size > self.options.max_bytes:
                self._make_room(size)
                total, written = self._total_bytes(), self._writer.tell()
            if written + size > self.options.segment_bytes and self._state.segments[-1].records_written:
                self._roll()
                written = 0
            self._writer.write(encoded)
            self._state.segments[-1].records_written += 1
            total, written = total + size, written + size
        self.metrics.appended_records += len(self._buffer)
        self._buffer, self._buffered_bytes = [], 0

    def _written_bytes(self, segment: _Segment) -> int:
        return self._writer.tell() if segment is self._state.segments[-1] else segment.size

    def _publish_sizes(self) -> None:
        active = self._state.segments[-1]
        new_records = active.records_written - active.records
        active.size, active.records = self._writer.tell(), active.records_written
        self._state.pending += new_records
        if new_records:
            self._has_data.notify_all()

    def _roll(self) -> None:
        """Seal the active segment and start the next one."""
        self._writer.flush()
        os.fsync(self._writer.fileno())  # a sealed segment is final: sync it once
        self._publish_sizes()
        self._writer.close()
        self._state.segments.append(self._new_segment(self._state.segments[-1].seq + 1))
        self._writer = self._open_writer()

    def _make_room(self, incoming: int) -> None:
        """Delete the oldest segments until `incoming` bytes fit under `max_bytes`."""
        while self._total_bytes() + incoming > self.options.max_bytes:
            if len(self._state.segments) == 1:
                self._roll()
            self._drop_oldest()

    def _total_bytes(self) -> int:
        return sum(self._written_bytes(s) for s in self._state.segments)

    def expire(self, now: float | None = None) -> int:
        """Delete sealed segments last written over `max_age_s` ago, oldest first; returns records lost.

        The active segment is never expired. Unacked records lost so count in `dropped_records`.
        """
        if self.options.max_age_s is None:
            return 0
        cutoff = (time.time() if now is None else now) - self.options.max_age_s
        with self._lock:
            before = self.metrics.dropped_records
            while len(self._state.segments) > 1 and self._state.segments[0].path.stat().st_mtime < cutoff:
                self._drop_oldest("spool_segment_expired")
            return self.metrics.dropped_records - before

    def _drop_oldest(self, why: str = "spool_full") -> None:
        oldest = self._state.segments.pop(0)
        cursor = self._state.cursor
        lost = 0
        if cursor.segment == oldest.seq:
            lost = self._count_from(oldest, cursor.offset)
        elif cursor.segment < oldest.seq:
            lost = oldest.records
        oldest.path.unlink(missing_ok=True)
        self._close_reader()
        self._state.pending -= lost
        self.metrics.dropped_records += lost
        self.metrics.dropped_segments += 1
        if cursor.segment <= oldest.seq:
            self._state.cursor = Position(self._state.segments[0].seq, 0)
            self._write_cursor()
        log.warning(why, dropped_segment=oldest.path.name, dropped_records=lost,
                    max_bytes=self.options.max_bytes, max_age_s=self.options.max_age_s)

    def _maybe_fsync(self) -> None:
        policy = self.options.fsync
        now = time.monotonic()
        if policy is FsyncPolicy.ALWAYS or (
                policy is FsyncPolicy.INTERVAL and now - self._last_fsync >= self.options.fsync_interval_s):
            os.fsync(self._writer.fileno())
            self._last_fsync = now

    def _new_segment(self, seq: int) -> _Segment:
        path = self._segment_path(seq)
        path.touch()
        _fsync_dir(self.directory)
        return _Segment(seq, path, 0, 0)

    def _open_writer(self) -> BinaryIO:
        active = self._state.segments[-1]
        active.records_written = active.records
        writer = active.path.open("ab")
        writer.seek(0, os.SEEK_END)
        return writer

    def _segment_path(self, seq: int) -> Path:
        return self.directory / f"{seq:020d}{SEGMENT_SUFFIX}"

    def _segment(self, seq: int) -> _Segment | None:
        return next((s for s in self._state.segments if s.seq == seq), None)


    def peek(self, max_records: int) -> list[SpoolRecord]:
        """Up to `max_records` committed records from the acked cursor on, in order; never blocks."""
        with self._lock:
            if self._is_cursor_dirty:
                self._write_cursor(is_forced=False)
            out: list[SpoolRecord] = []
            position = self._state.cursor
            for segment in list(self._state.segments):
                if segment.seq < position.segment or len(out) >= max_records:
                    continue
                start = position.offset if segment.seq == position.segment else 0
                records = self._read_segment(segment, start, max_records - len(out))
                out.extend(records)
                reached = records[-1].end.offset if records else start
                # More of this segment than one read chunk holds: stop here, or the batch would skip
                # its rest and acking the batch would lose it (bench/sensor.py found this). A sealed
                # segment whose rest is damaged (nothing readable) is passed over, as it always was.
                if records and reached < segment.size:
                    break
            return out

    def _read_segment(self, segment: _Segment, start: int, limit: int) -> list[SpoolRecord]:
        """Up to `limit` records of `segment` from byte `start`, reading about `_READ_CHUNK` bytes."""
        if start >= segment.size or limit <= 0:
            return []
        reader = self._reader_for(segment)
        reader.seek(start)
        data = reader.read(min(segment.size - start, _READ_CHUNK))
        if len(data) < segment.size - start and first_record_size(data) > len(data):
            data += reader.read(first_record_size(data) - len(data))  # one record over a chunk
        out: list[SpoolRecord] = []
        offset = start
        for record in decode_records(data):
            if record is None or len(out) >= limit:  # None: the chunk ended mid-record
                break
            offset += record.size
            out.append(SpoolRecord(record.kind, record.key, record.value, Position(segment.seq, offset)))
        return out

    def _reader_for(self, segment: _Segment) -> BinaryIO:
        if self._reader is None or self._reader[0] != segment.seq:
            self._close_reader()
            self._reader = (segment.seq, segment.path.open("rb"))
        return self._reader[1]

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader[1].close()
            self._reader = None

    def ack(self, records: list[SpoolRecord]) -> None:
        """Forget `records` (a prefix of what `peek` returned): moves and persists the cursor.

        Records the spool dropped meanwhile (full) are skipped; the cursor never moves back.
        """
        if not records:
            return
        with self._lock:
            end = records[-1].end
            if end <= self._state.cursor:
                return
            if self._segment(end.segment) is None:  # its segment was dropped while shipping
                return
            is_partly_dropped = self._segment(records[0].end.segment) is None
            self._state.cursor = end
            self._delete_acked_segments()
            self._write_cursor(is_forced=False)
            if is_partly_dropped:  # some of `records` were already counted as dropped
                self._state.pending = self._count_after_cursor()
            else:
                self._state.pending -= len(records)

    def _delete_acked_segments(self) -> None:
        cursor = self._state.cursor
        segments = self._state.segments
        while len(segments) > 1 and (segments[0].seq < cursor.segment or (
                segments[0].seq == cursor.segment and cursor.offset >= segments[0].size)):
            gone = segments.pop(0)
            if self._reader is not None and self._reader[0] == gone.seq:
                self._close_reader()
            gone.path.unlink(missing_ok=True)
            if cursor.segment == gone.seq:
                self._state.cursor = cursor = Position(segments[0].seq, 0)

    def _write_cursor(self, is_forced: bool = True) -> None:
        # Synced like the data: a cursor lost to a power cut only sends acked records again.
        # Unforced writes are coalesced to one per interval (see the module docstring).
        cursor = self._state.cursor
        now = time.monotonic()
        policy = self.options.fsync
        if not is_forced and policy is not FsyncPolicy.ALWAYS \
                and now - self._last_cursor_write < self.options.fsync_interval_s:
            self._is_cursor_dirty = True
            return
        self._last_cursor_write, self._is_cursor_dirty = now, False
        is_synced = policy is FsyncPolicy.ALWAYS or (
            policy is FsyncPolicy.INTERVAL and now - self._last_cursor_sync >= self.options.fsync_interval_s)
        if is_synced:
            self._last_cursor_sync = now
        _atomic_write(self.directory / CURSOR_FILE, orjson.dumps({"segment": cursor.segment, "offset": cursor.offset}),
                      is_synced=is_synced)

    def wait_for_data(self, timeout_s: float) -> bool:
        """Wait until some committed record is pending (or `timeout_s` passed); True if one is."""
        with self._lock:
            if self._state.pending == 0:
                self._has_data.wait(timeout_s)
            return self._state.pending > 0

    @property
    def pending_records(self) -> int:
        """Committed records not yet acked (the spool's depth)."""
        with self._lock:
            return self._state.pending

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._total_bytes()

    def close(self) -> None:
        """Commit what is buffered, fsync, and close the files."""
        with self._lock:
            self._write_buffer()
            self._writer.flush()
            os.fsync(self._writer.fileno())
            self._publish_sizes()
            self._writer.close()
            self._close_reader()
            if self._is_cursor_dirty:
                self._last_cursor_sync = float("-inf")  # the last write: synced under INTERVAL whatever its clock
                self._write_cursor()


def _atomic_write(path: Path, data: bytes, *, is_synced: bool) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new content."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        if is_synced:
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if is_synced:
        _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
