"""Log files -> batches of events and dead letters, each line keeping its byte offset.

Stage: sensors, the file input. In: a path (plain, or gzip when it ends in `.gz`) and a
`FileSource` (whose tenant, which sensor, which format). Out: `LogBatch`es in file order.

Invariants:
- Never raises for content: a line the format's parser rejects, a line with a NUL byte and a line
  over `MAX_LINE_BYTES` become dead letters: the raw bytes, and a reason that starts with where
  (`line 14, byte 1203: not syslog: ...`); the byte offset is also the dead letter's id position.
  Only a file that cannot be read raises `OSError` (a damaged or truncated gzip too, once the
  batches before the damage have been yielded).
- Lines end at `\\n`; one `\\r` before it is dropped; empty lines are skipped and count nowhere.
- Bytes that are not UTF-8 are replaced by U+FFFD and the event tagged `invalid_utf8`, rather than
  dead-lettered: sshd and PAM log attacker-chosen user names, and a failed login must not vanish
  from detection because a name held a stray byte. `event.original` then holds the decoded text.
- Deterministic: the same file (and `reference`) gives the same events, ids and documents. Ids are
  `stable_id(tenant, sensor, absolute path, offset, line)`; no wall-clock field is added.
- Offsets (`log.offset`, dead-letter positions) count bytes of the decompressed stream.
- Memory is bounded by `batch_size` lines of at most `MAX_LINE_BYTES` each; an overlong line is
  skipped through, never held whole (its dead letter keeps the first `MAX_LINE_BYTES`).
- `on_progress(n)` is told the bytes of the file on disk read since its last call (compressed
  bytes for gzip), so the calls add up to the file's size, for a progress bar's `advance`.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog

from config.errors import ConfigError
from pipeline import ecs
from pipeline.errors import ParseError
from pipeline.ids import IdPrefix
from pipeline.records import DeadLetter, Event, object_at, set_path
from sensors.parsers import PARSERS, LineContext, LineParser

log = structlog.get_logger(__name__)

MAX_LINE_BYTES = 64 * 1024
_READ_LIMIT = MAX_LINE_BYTES + 2  # a line at the limit, with its "\r\n"
INVALID_UTF8_TAG = "invalid_utf8"
OBSERVER_TYPE_SENSOR = "sensor"  # ECS lists "sensor" among observer.type examples


@dataclass(frozen=True, slots=True)
class FileSource:
    """Where a file's lines come from and how to read them.

    `format` is a key of `sensors.parsers.PARSERS`; `timezone` (IANA name) is for times that carry
    no zone; `reference` places yearless times (default: the file's modification time).
    Raises `ConfigError` for an unknown format or zone.
    """

    tenant: str
    sensor: str
    format: str = "auth"
    timezone: str = "Asia/Ho_Chi_Minh"
    reference: datetime | None = None

    def __post_init__(self) -> None:
        if self.format not in PARSERS:
            known = ", ".join(sorted(PARSERS))
            raise ConfigError(f"format: unknown log format {self.format!r}; known: {known}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ConfigError(f"timezone: unknown time zone {self.timezone!r}") from e
        if self.reference is not None and self.reference.tzinfo is None:
            raise ConfigError("reference: time has no zone")


class ByteProgress:
    """Tells `on_progress` how many more bytes of `disk` were read since the last call."""

    def __init__(self, disk: IO[bytes], on_progress: Callable[[int], None]) -> None:
        self._disk = disk
        self._on_progress = on_progress
        self._reported = 0

    def __call__(self) -> None:
        position = self._disk.tell()
        if position > self._reported:
            self._on_progress(position - self._reported)
            self._reported = position


@dataclass(frozen=True, slots=True)
class LogBatch:
    """Consecutive lines of one file: what parsed, what did not, and the stream bytes they span."""

    events: list[Event] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    bytes_read: int = 0


class _LineStream(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class _Line:
    number: int  # counting from 1, empty lines included
    offset: int  # of the line's first byte in the (decompressed) stream
    raw: bytes  # without the line ending; longer than MAX_LINE_BYTES (and cut) when overlong
    size: int  # bytes in the stream, line ending included


@dataclass(frozen=True, slots=True)
class _LineConverter:
    """Turns one line of one file into an event or a dead letter.

    The fast path (bench/sensor.py: 13k -> 2xk lines per CPU-second with the parsers' changes)
    annotates the document with plain dict operations and finishes it with `Event.trusted`, its
    id from a hash state prepared once per file (`IdPrefix`). A document with a top-level dotted
    `organization.id` or `event.id` key (a JSON source can send one) takes `Event.create`'s
    generic path, which reads those keys: ids and documents are the same either way, as before.
    """

    source: FileSource
    path: str  # as given: dead letters name it so
    absolute: str  # resolved: ids and log.file.path use it, so a relative path gives the same ids
    parse: LineParser
    ctx: LineContext
    ids: IdPrefix = field(init=False)

    def __post_init__(self) -> None:
        # `stable_id(tenant, sensor, absolute, offset, line)`, the ids `Event.create` derived
        object.__setattr__(self, "ids", IdPrefix(self.source.tenant, self.source.sensor, self.absolute))

    def convert(self, line: _Line) -> Event | DeadLetter:
        if len(line.raw) > MAX_LINE_BYTES:
            return self._dead(line, f"line longer than {MAX_LINE_BYTES} bytes", line.raw[:MAX_LINE_BYTES])
        if b"\x00" in line.raw:
            return self._dead(line, "line contains NUL bytes (binary data or a damaged file)")
        try:
            text = line.raw.decode("utf-8")
            tags: list[str] = []
        except UnicodeDecodeError:
            text, tags = line.raw.decode("utf-8", errors="replace"), [INVALID_UTF8_TAG]
        try:
            doc = self.parse(text, self.ctx)
            if ecs.ORGANIZATION_ID in doc or ecs.EVENT_ID in doc:
                self._annotate(doc, line, text, tags)
                return Event.create(doc, id_parts=(self.source.sensor, self.absolute, line.offset, text))
            self._annotate_fast(doc, line, text, tags)
            return Event.trusted(doc, tenant=self.source.tenant, event_id=self.ids.id(line.offset, text))
        except ParseError as e:
            return self._dead(line, e.reason)

    def _annotate(self, doc: dict[str, Any], line: _Line, text: str, tags: list[str]) -> None:
        set_path(doc, ecs.ORGANIZATION_ID, self.source.tenant)
        set_path(doc, ecs.OBSERVER_NAME, self.source.sensor)
        set_path(doc, ecs.OBSERVER_TYPE, OBSERVER_TYPE_SENSOR)
        set_path(doc, ecs.EVENT_ORIGINAL, text)
        set_path(doc, ecs.LOG_FILE_PATH, self.absolute)
        set_path(doc, ecs.LOG_OFFSET, line.offset)
        if tags:
            doc[ecs.TAGS] = [*doc.get(ecs.TAGS, []), *tags]

    def _annotate_fast(self, doc: dict[str, Any], line: _Line, text: str, tags: list[str]) -> None:
        """`_annotate` with the ECS paths spelled out: the same keys, values and key order."""
        object_at(doc, "organization")["id"] = self.source.tenant
        observer = object_at(doc, "observer")
        observer["name"] = self.source.sensor
        observer["type"] = OBSERVER_TYPE_SENSOR
        object_at(doc, "event")["original"] = text
        log_object = object_at(doc, "log")
        object_at(log_object, "file")["path"] = self.absolute
        log_object["offset"] = line.offset
        if tags:
            doc[ecs.TAGS] = [*doc.get(ecs.TAGS, []), *tags]

    def _dead(self, line: _Line, reason: str, raw: bytes | None = None) -> DeadLetter:
        # DeadLetter has no place for where the line was, so the reason says it first.
        return DeadLetter.create(source=self.path, reason=f"line {line.number}, byte {line.offset}: {reason}",
                                 raw=line.raw if raw is None else raw, tenant=self.source.tenant,
                                 position=line.offset)


def read_log_file(path: Path, source: FileSource, *, batch_size: int = 1000,
                  on_progress: Callable[[int], None] = lambda n: None) -> Iterator[LogBatch]:
    """Batches of at most `batch_size` lines (events + dead letters) of `path`, in file order.

    Raises `OSError` only when the file cannot be read (batches before the damage were yielded).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    reference = source.reference or datetime.fromtimestamp(path.stat().st_mtime, UTC)
    converter = _LineConverter(source=source, path=str(path), absolute=str(path.resolve()),
                               parse=PARSERS[source.format],
                               ctx=LineContext(tz=ZoneInfo(source.timezone), reference=reference))
    with ExitStack() as stack:
        disk = stack.enter_context(path.open("rb"))
        stream: _LineStream = disk
        if path.suffix == ".gz":
            stream = stack.enter_context(gzip.GzipFile(fileobj=disk, mode="rb"))
        progress = _DiskProgress(disk, on_progress)
        batch, spanned = LogBatch(), 0
        for line in _read_lines(stream, path):
            spanned += line.size
            if not line.raw:
                continue
            _add(batch, converter.convert(line))
            if len(batch.events) + len(batch.dead_letters) >= batch_size:
                yield _finished(batch, spanned, converter.path)
                progress.report()
                batch, spanned = LogBatch(), 0
        if spanned:
            yield _finished(batch, spanned, converter.path)
        progress.report()


def _read_lines(stream: _LineStream, path: Path) -> Iterator[_Line]:
    """Lines with their offsets; an overlong line is read through in pieces, keeping its head."""
    offset, number = 0, 0
    try:
        while chunk := stream.readline(_READ_LIMIT):
            number += 1
            size = len(chunk)
            if size == _READ_LIMIT and not chunk.endswith(b"\n"):
                size += _skip_rest_of_line(stream)
            raw = chunk.removesuffix(b"\n").removesuffix(b"\r")
            yield _Line(number=number, offset=offset, raw=raw[:MAX_LINE_BYTES + 1], size=size)
            offset += size
    except (EOFError, zlib.error) as e:  # gzip cut short or damaged
        raise OSError(f"{path}: damaged or truncated gzip data after byte {offset}: {e}") from e


def _skip_rest_of_line(stream: _LineStream) -> int:
    """Read up to and including the next newline (or to the end); returns the bytes read."""
    skipped = 0
    while piece := stream.readline(MAX_LINE_BYTES):
        skipped += len(piece)
        if piece.endswith(b"\n"):
            break
    return skipped


class _DiskProgress:
    """Reports bytes of the file on disk consumed since the last report."""

    def __init__(self, disk: IO[bytes], on_progress: Callable[[int], None]) -> None:
        self.disk, self.on_progress, self.reported = disk, on_progress, 0

    def report(self) -> None:
        position = self.disk.tell()
        if position > self.reported:
            self.on_progress(position - self.reported)
            self.reported = position


def _add(batch: LogBatch, record: Event | DeadLetter) -> None:
    if isinstance(record, Event):
        batch.events.append(record)
    else:
        batch.dead_letters.append(record)


def _finished(batch: LogBatch, spanned: int, path: str) -> LogBatch:
    if batch.dead_letters:
        log.warning("lines_dead_lettered", path=path, count=len(batch.dead_letters),
                    first_reason=batch.dead_letters[0].reason)
    log.info("file_batch", path=path, events=len(batch.events), dead_letters=len(batch.dead_letters),
             bytes=spanned)
    return LogBatch(events=batch.events, dead_letters=batch.dead_letters, bytes_read=spanned)
