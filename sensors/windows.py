"""Windows event log files -> batches of events and dead letters: .evtx, and the same events as JSON.

Stage: sensors, the Windows file input (the mapping to ECS is `sensors.parsers.windows`). In: a path
and a `WindowsSource` (whose tenant, which sensor). Out: `sensors.files.LogBatch`es in file order.
- A path ending in `.evtx` (any case) is read with pyevtx-rs (`evtx.PyEvtxParser`), record by record.
- Any other path is JSON text holding evtx-JSON records (`Event.System` / `Event.EventData`) or
  Winlogbeat documents: one per line, pretty-printed and concatenated, or one per file.

Invariants:
- Never raises for content. A record that is not a Windows event, JSON that does not parse and a
  document over `MAX_DOCUMENT_BYTES` become dead letters with the raw bytes and a reason that starts
  with where (`record 4711: ...`, `byte 1203: ...`). What pyevtx-rs cannot read becomes a dead
  letter naming the file and the library's reason: a file it cannot open at all (random bytes, a
  damaged header) holds the file's first `HEAD_BYTES`; a damaged chunk holds no bytes, as the library
  does not say where the chunk is (its reason names the chunk's record ids). The records it could
  read are still events. Only a file that cannot be opened or read raises OSError.
- Ids: a record with an EventRecordID gets `stable_id(tenant, sensor, channel, record id, computer,
  time)`, so the same Windows event has the same id whether it came from the .evtx, its JSON
  rendering or a second export, and reading it again overwrites it. The time is part of it because
  record ids restart when a log is cleared. A record without one: (sensor, absolute path, byte
  offset, computer).
- Documents: `event.original` is the record's JSON text as read (for .evtx, pyevtx-rs's compact
  rendering), `log.file.path` the absolute path, `log.offset` the byte offset of a JSON document.
  No wall-clock field is added: two reads give identical events.
- Text: bytes that are not UTF-8 and JSON escapes of lone surrogates become U+FFFD and the event is
  tagged `invalid_utf8`, as `sensors.files` does, so every event serialises.
- Memory: JSON is read in pieces of `READ_BYTES`; a document may be up to `MAX_DOCUMENT_BYTES` (an
  .evtx record is at most 64 KiB), and a longer run of text is cut into dead letters of that size.
"""

from __future__ import annotations

import codecs
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import evtx
import orjson
import structlog

from pipeline import ecs
from pipeline.errors import ParseError
from pipeline.records import DeadLetter, Event, set_path, to_iso
from sensors.files import INVALID_UTF8_TAG, OBSERVER_TYPE_SENSOR, ByteProgress, LogBatch
from sensors.parsers.windows import parse_windows_json, windows_document

log = structlog.get_logger(__name__)

EVTX_SUFFIX = ".evtx"
READ_BYTES = 256 * 1024
MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_EVTX_ERRORS = 10_000  # a damaged file yields an error per chunk; beyond this, stop reading it
HEAD_BYTES = 64 * 1024  # of a file pyevtx-rs cannot open, kept in its dead letter
_SPACE = re.compile(r"[^ \t\r\n\ufeff]")  # JSON whitespace, and a byte-order mark
_RESYNC = re.compile(r"\n(?=[{\[])")  # after bad JSON: the next line that opens a document
_SUSPECT = re.compile(r"[\ud800-\udfff]|\\u[dD][89a-fA-F]")  # undecodable bytes, surrogate escapes


@dataclass(frozen=True, slots=True)
class WindowsSource:
    """Whose events these are (`organization.id`) and which sensor read them (`observer.name`)."""

    tenant: str
    sensor: str


def read_windows_file(path: Path, source: WindowsSource, *, batch_size: int = 1000,
                      on_progress: Callable[[int], None] = lambda n: None) -> Iterator[LogBatch]:
    """`read_evtx_file` for `*.evtx`, `read_windows_json_file` for anything else."""
    reader = read_evtx_file if path.suffix.lower() == EVTX_SUFFIX else read_windows_json_file
    return reader(path, source, batch_size=batch_size, on_progress=on_progress)


def read_evtx_file(path: Path, source: WindowsSource, *, batch_size: int = 1000,
                   on_progress: Callable[[int], None] = lambda n: None) -> Iterator[LogBatch]:
    """Batches of at most `batch_size` records of an .evtx file, in the library's (file) order.

    pyevtx-rs does not say where it is in the file, so `on_progress` is told the file's size once,
    at the end, and `bytes_read` is 0 but in the last batch, which carries the file's size.
    Raises OSError only when the file cannot be opened.
    """
    _check_batch_size(batch_size)
    size = path.stat().st_size
    with path.open("rb"):  # fail here, with OSError, when the file cannot be read at all
        pass
    converter = _Converter.of(path, source)
    done = False

    def position() -> int:  # pyevtx-rs does not say where it is: all of the file, once it is read
        return size if done else 0

    def items() -> Iterator[Event | DeadLetter]:
        nonlocal done
        yield from _evtx_items(path, converter)
        done = True

    yield from _batched(items(), batch_size, converter.path, position=position)
    on_progress(size)


def read_windows_json_file(path: Path, source: WindowsSource, *, batch_size: int = 1000,
                           on_progress: Callable[[int], None] = lambda n: None) -> Iterator[LogBatch]:
    """Batches of at most `batch_size` JSON documents (events + dead letters), in file order.

    `on_progress(n)` is told the bytes read from disk since its last call, after each batch.
    Raises OSError only when the file cannot be read.
    """
    _check_batch_size(batch_size)
    converter = _Converter.of(path, source)
    with path.open("rb") as disk:
        report = ByteProgress(disk, on_progress)

        scanner = _JsonScanner(disk)
        items = (converter.convert(document) for document in scanner.documents())
        yield from _batched(items, batch_size, converter.path, position=lambda: scanner.offset, after_batch=report)
        report()


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")


# --- one record -> an event or a dead letter ------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Document:
    """One JSON document read from a file, or the reason it is not one."""

    where: str  # `record 12` / `byte 1203`, the start of a dead letter's reason
    position: int | str  # the record id or byte offset: dead-letter ids and the fallback event id
    raw: bytes  # as read
    text: str = ""  # the JSON text, for event.original
    value: Any = None
    error: str | None = None  # set when this is not JSON at all
    offset: int | None = None  # byte offset in a JSON file (log.offset)
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Converter:
    source: WindowsSource
    path: str  # as given: dead letters name it so
    absolute: str  # resolved: ids and log.file.path use it

    @classmethod
    def of(cls, path: Path, source: WindowsSource) -> _Converter:
        return cls(source=source, path=str(path), absolute=str(path.resolve()))

    def convert(self, document: _Document) -> Event | DeadLetter:
        if document.error is not None:
            return self.dead(document.position, f"{document.where}: {document.error}", document.raw)
        try:
            record = parse_windows_json(document.value)
            doc = windows_document(record)
            self._annotate(doc, document)
            if record.record_id is not None:
                id_parts: tuple[str | int | None, ...] = (
                    self.source.sensor, record.channel, record.record_id, record.computer, to_iso(record.timestamp))
            else:
                id_parts = (self.source.sensor, self.absolute, document.position, record.computer)
            return Event.create(doc, id_parts=id_parts)
        except ParseError as e:
            return self.dead(document.position, f"{document.where}: {e.reason}", document.raw)
        except RecursionError:
            return self.dead(document.position, f"{document.where}: nested too deeply", document.raw)

    def _annotate(self, doc: dict[str, Any], document: _Document) -> None:
        set_path(doc, ecs.ORGANIZATION_ID, self.source.tenant)
        set_path(doc, ecs.OBSERVER_NAME, self.source.sensor)
        set_path(doc, ecs.OBSERVER_TYPE, OBSERVER_TYPE_SENSOR)
        set_path(doc, ecs.EVENT_ORIGINAL, document.text)
        set_path(doc, ecs.LOG_FILE_PATH, self.absolute)
        if document.offset is not None:
            set_path(doc, ecs.LOG_OFFSET, document.offset)
        if document.tags:
            doc[ecs.TAGS] = [*doc.get(ecs.TAGS, []), *document.tags]

    def dead(self, position: int | str, reason: str, raw: bytes) -> DeadLetter:
        return DeadLetter.create(source=self.path, reason=reason, raw=raw, tenant=self.source.tenant,
                                 position=position)


def _batched(items: Iterable[Event | DeadLetter], batch_size: int, path: str, *, position: Callable[[], int],
             after_batch: Callable[[], None] = lambda: None) -> Iterator[LogBatch]:
    """Batches of `items`; `position()` is how far into the stream the items so far reach."""
    events: list[Event] = []
    dead: list[DeadLetter] = []
    spanned_to = 0
    for item in items:
        if isinstance(item, Event):
            events.append(item)
        else:
            dead.append(item)
        if len(events) + len(dead) >= batch_size:
            reached = position()
            yield _finished(events, dead, path, reached - spanned_to)
            after_batch()
            events, dead, spanned_to = [], [], reached
    if events or dead or position() > spanned_to:
        yield _finished(events, dead, path, position() - spanned_to)


def _finished(events: list[Event], dead: list[DeadLetter], path: str, bytes_read: int) -> LogBatch:
    if dead:
        log.warning("windows_records_dead_lettered", path=path, count=len(dead), first_reason=dead[0].reason)
    log.info("windows_batch", path=path, events=len(events), dead_letters=len(dead))
    return LogBatch(events=events, dead_letters=dead, bytes_read=bytes_read)


# --- .evtx ----------------------------------------------------------------------------------------

def _evtx_items(path: Path, converter: _Converter) -> Iterator[Event | DeadLetter]:
    """Each record as an event or dead letter; each failure of the library as a dead letter."""
    try:
        records = evtx.PyEvtxParser(str(path), number_of_threads=1, indent=False).records_json()
    except BaseException as e:  # see _is_library_failure
        if not _is_library_failure(e):
            raise
        yield converter.dead("file", f"evtx: cannot read the file: {e}", _head(path))
        return
    errors = 0
    for index in itertools.count():
        try:
            record = next(records)
        except StopIteration:
            return
        except BaseException as e:  # see _is_library_failure
            if not _is_library_failure(e):
                raise
            errors += 1
            yield converter.dead(f"error {errors}", f"evtx: records skipped after record {index}: {e}", b"")
            if errors >= MAX_EVTX_ERRORS:
                yield converter.dead("gave up", f"evtx: stopped reading after {errors} errors", b"")
                return
            continue
        yield converter.convert(_evtx_document(record, index))


def _is_library_failure(error: BaseException) -> bool:
    """pyevtx-rs raises RuntimeError / OSError for damaged data, and pyo3 turns a Rust panic into
    `pyo3_runtime.PanicException`, which derives from BaseException and cannot be imported; both
    are the file's fault. KeyboardInterrupt, SystemExit and the like are not."""
    return isinstance(error, Exception) or type(error).__name__ == "PanicException"


def _evtx_document(record: Any, index: int) -> _Document:
    data = record.get("data") if isinstance(record, dict) else None
    record_id = record.get("event_record_id") if isinstance(record, dict) else None
    position = record_id if isinstance(record_id, int) else f"index {index}"
    where = f"record {record_id}" if isinstance(record_id, int) else f"record at index {index}"
    if not isinstance(data, str):
        return _Document(where=where, position=position, raw=b"", error="pyevtx-rs gave no JSON data")
    raw = data.encode("utf-8", "surrogatepass")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return _Document(where=where, position=position, raw=raw, error=f"not JSON: {e}")
    return _Document(where=where, position=position, raw=raw, text=data, value=value)


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(HEAD_BYTES)
    except OSError:
        return b""


# --- JSON text ------------------------------------------------------------------------------------

class _JsonScanner:
    """Top-level JSON values of a byte stream, one after another, each with its byte offset.

    Text is decoded with `surrogateescape`, so a byte offset is exact even where the bytes are not
    UTF-8 (re-encoding gives them back); such text is cleaned before it leaves (`_cleaned`).
    A value that does not parse is dead-lettered up to the next line starting with `{` or `[`.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.json = json.JSONDecoder()
        self.buffer = ""
        self.pos = 0  # index in buffer of the next character to read
        self.offset = 0  # byte offset of buffer[pos] in the stream
        self.eof = False

    def documents(self) -> Iterator[_Document]:
        while self._skip_space():
            try:
                value, end = self.json.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError as e:
                if self._may_be_cut(e) and self._read_more():
                    continue
                yield self._bad(self._reason(e))
                continue
            except RecursionError:
                yield self._bad("not JSON: nested too deeply")
                continue
            if end >= len(self.buffer) and self._read_more():
                continue  # a number at the end of the buffer may go on
            yield self._take(end, value)

    def _skip_space(self) -> bool:
        """Move to the next non-space character, reading as needed; False at the end."""
        while True:
            match = _SPACE.search(self.buffer, self.pos)
            if match is not None:
                self._advance(match.start())
                return True
            self._advance(len(self.buffer))
            if not self._read_more():
                return False

    def _read_more(self) -> bool:
        """Append the next piece (at least as long as the current document, so a long document is
        read in O(n log n)); False at the end or when the document would exceed the limit."""
        if self.eof or len(self.buffer) - self.pos >= MAX_DOCUMENT_BYTES:
            return False
        data = self.stream.read(max(READ_BYTES, len(self.buffer) - self.pos))
        self.eof = not data
        self.buffer = self.buffer[self.pos:] + self.decoder.decode(data, final=self.eof)
        self.pos = 0
        return True

    def _may_be_cut(self, error: json.JSONDecodeError) -> bool:
        """Could more text make this parse? Only if the error is at the end of what has been read
        (a string's error points at its start, so an unterminated one always may be cut)."""
        return error.pos >= len(self.buffer) - 8 or error.msg.startswith("Unterminated string")

    def _reason(self, error: json.JSONDecodeError) -> str:
        if len(self.buffer) - self.pos >= MAX_DOCUMENT_BYTES and self._may_be_cut(error):
            return f"a JSON document longer than {MAX_DOCUMENT_BYTES} bytes"
        return f"not JSON: {error.msg} ({error.pos - self.pos} characters in)"

    def _take(self, end: int, value: Any) -> _Document:
        text, offset = self.buffer[self.pos:end], self.offset
        raw = self._advance(end)
        if (text.isascii() and "\\u" not in text) or _SUSPECT.search(text) is None:  # isascii: C-speed
            return _Document(where=f"byte {offset}", position=offset, raw=raw, text=text, value=value, offset=offset)
        clean_text, clean_value = _cleaned(text), _cleaned(value)
        tags = (INVALID_UTF8_TAG,) if clean_text != text or clean_value != value else ()
        return _Document(where=f"byte {offset}", position=offset, raw=raw, text=clean_text, value=clean_value,
                         offset=offset, tags=tags)

    def _bad(self, reason: str) -> _Document:
        """A dead letter from here to the next line opening a document (or the size limit)."""
        offset = self.offset
        while True:
            match = _RESYNC.search(self.buffer, self.pos + 1, self.pos + MAX_DOCUMENT_BYTES)
            if match is not None or not self._read_more():
                break
        end = match.end() if match is not None else min(len(self.buffer), self.pos + MAX_DOCUMENT_BYTES)
        raw = self._advance(max(end, self.pos + 1))
        return _Document(where=f"byte {offset}", position=offset, raw=raw, error=reason)

    def _advance(self, end: int) -> bytes:
        """Move to `end`; returns the bytes passed over."""
        raw = self.buffer[self.pos:end].encode("utf-8", "surrogateescape")
        self.pos, self.offset = end, self.offset + len(raw)
        return raw


def _cleaned(value: Any) -> Any:
    """`value` with every lone surrogate (undecodable byte, `\\udXXX` escape) in its text as U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {_cleaned(key): _cleaned(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_cleaned(item) for item in value]
    return value
