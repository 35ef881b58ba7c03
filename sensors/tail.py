"""Tailing log files: new complete lines of the files that globs match, with durable checkpoints.

Stage: sensors, the file input for a long-running sensor (`sensors.files` reads a file once).
In: glob patterns. Out: `TailLine(path, offset, number, raw)` batches from `poll()`, which the
agent parses (ids as `sensors.files` makes them: sensor, path, offset, line) and spools.

Checkpoint contract: `poll()` advances offsets in memory only; `save()` writes them (atomic
replace) to the checkpoint file. Call `save()` only after everything `poll()` returned is committed
to the spool: a crash in between re-reads those lines, and since ids depend only on (sensor, path,
offset, line), the re-read makes the same ids (a duplicate in the spool, none in the store).

Files are tracked by identity (device, inode) plus a fingerprint (SHA-256 of their first up to
`FINGERPRINT_BYTES`), and each keeps the path it was first seen under for its ids:
- rename rotation: the inode moves to a new name (or out of the globs); it is read to its end
  under its first path, then retired; the new file at the old name starts at 0;
- copytruncate: the copy is a new inode whose fingerprint matches the file it copied, so it
  resumes at that file's offset (under its path) instead of being read again; the original,
  now shorter than its offset, starts again at 0;
- truncation (size below the offset, or a changed fingerprint): read again from 0;
- `.gz` files are read once, whole, on first sight, unless their (decompressed) fingerprint
  matches a known file: then only what was not yet read of it;
- a file rotated out of the globs while the sensor was stopped is not read again (its rest is
  lost): globs should name the rotated files too (`auth.log*`);
- a line is returned only when its newline has arrived, except at the end of a file that was
  rotated away or is gzip'd (it will not grow). Lines over `MAX_LINE_BYTES` are cut (the parser
  stage dead-letters them); `\\r\\n` loses its `\\r`; empty lines are skipped.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import os
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import orjson
import structlog

from sensors.files import MAX_LINE_BYTES

log = structlog.get_logger(__name__)

FINGERPRINT_BYTES = 1024
MAX_RETIRED = 256
_READ_LIMIT = MAX_LINE_BYTES + 2


@dataclass(frozen=True, slots=True)
class TailLine:
    path: str  # the path the file was first seen under (resolved): ids use it
    offset: int  # of the line's first byte (decompressed bytes for .gz)
    number: int  # counting from 1 in the file
    raw: bytes  # without the line ending; cut to MAX_LINE_BYTES + 1 when overlong


@dataclass
class _Checkpoint:
    dev: int
    ino: int
    id_path: str
    offset: int = 0
    line: int = 0
    fingerprint: str = ""
    fp_len: int = 0
    is_gz: bool = False
    is_done: bool = False  # a .gz read to its end


@dataclass
class _Open:
    checkpoint: _Checkpoint
    handle: IO[bytes] | None = None
    is_final: bool = False  # rotated away: its last, unterminated line is complete


@dataclass
class TailMetrics:
    files: int = 0
    lines: int = 0
    truncations: int = 0
    rotations: int = 0
    errors: int = 0


@dataclass
class _State:
    tracked: dict[tuple[int, int], _Open] = field(default_factory=dict)
    retired: list[_Checkpoint] = field(default_factory=list)


class Tailer:
    """Tails the files `patterns` match; checkpoints in `checkpoint_path` (see module docstring)."""

    def __init__(self, patterns: list[str], checkpoint_path: Path) -> None:
        self.patterns = patterns
        self.checkpoint_path = checkpoint_path
        self.metrics = TailMetrics()
        self._state = _State()
        self._saved = b""
        self._load()

    def _load(self) -> None:
        try:
            doc = orjson.loads(self.checkpoint_path.read_bytes())
            for item in doc.get("files", []):
                cp = _Checkpoint(**item)
                self._state.tracked[(cp.dev, cp.ino)] = _Open(cp)
            self._state.retired = [_Checkpoint(**item) for item in doc.get("retired", [])]
        except FileNotFoundError:
            return
        except (ValueError, TypeError, AttributeError) as e:
            # Reading the files again duplicates into the spool; ids dedupe them in the store.
            log.warning("tail_checkpoint_unreadable", path=str(self.checkpoint_path), error=str(e))
            self._state = _State()

    def save(self) -> None:
        """Persist every file's offset; see the module docstring for when to call it.

        Writes (and fsyncs) only when something changed since the last save: idle polls cost no I/O.
        """
        data = orjson.dumps({"files": [asdict(o.checkpoint) for o in self._state.tracked.values()],
                             "retired": [asdict(cp) for cp in self._state.retired]})
        if data == self._saved:
            return
        tmp = self.checkpoint_path.with_name(self.checkpoint_path.name + ".tmp")
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.checkpoint_path)
        self._saved = data

    def poll(self, max_lines: int = 1000) -> list[TailLine]:
        """Rescan the globs, then read up to `max_lines` new complete lines over all files."""
        self._scan()
        out: list[TailLine] = []
        for key, opened in list(self._state.tracked.items()):
            if len(out) >= max_lines:
                break
            try:
                out.extend(self._read(opened, max_lines - len(out)))
            except (OSError, EOFError, zlib.error) as e:
                self.metrics.errors += 1
                log.error("tail_read_failed", path=opened.checkpoint.id_path, error=str(e))
                self._close(opened)
                if opened.is_final or opened.checkpoint.is_gz:
                    self._retire(key)
        self.metrics.lines += len(out)
        return out

    # -- discovery -----------------------------------------------------------------------------

    def _scan(self) -> None:
        seen: dict[tuple[int, int], str] = {}
        for pattern in self.patterns:
            for name in sorted(glob.glob(pattern)):
                try:
                    st = os.stat(name)
                except OSError:
                    continue
                if os.path.isfile(name):
                    seen.setdefault((st.st_dev, st.st_ino), name)
        for key, name in seen.items():
            try:
                self._see(key, name)
            except (OSError, EOFError, zlib.error) as e:
                self.metrics.errors += 1
                log.error("tail_open_failed", path=name, error=str(e))
        for key, opened in list(self._state.tracked.items()):
            if key not in seen and not opened.is_final:
                opened.is_final = True  # rotated away or deleted: read what is left, then retire
                self.metrics.rotations += 1
                if opened.handle is None:
                    self._retire(key)
        self.metrics.files = len(self._state.tracked)

    def _see(self, key: tuple[int, int], name: str) -> None:
        opened = self._state.tracked.get(key)
        is_gz = name.endswith(".gz")
        if opened is not None:
            if not is_gz and not opened.checkpoint.is_done:
                self._check_truncation(opened, name)
            return
        head = _head(name, is_gz)
        fingerprint = hashlib.sha256(head).hexdigest()
        cp = self._continuation_of(head)
        if cp is None or (not is_gz and cp.offset > os.stat(name).st_size):
            cp = _Checkpoint(key[0], key[1], str(Path(name).resolve()))
        cp.dev, cp.ino, cp.is_gz, cp.is_done = key[0], key[1], is_gz, False
        cp.fingerprint, cp.fp_len = fingerprint, len(head)
        self._state.tracked[key] = _Open(cp)
        log.info("tail_file_found", path=name, id_path=cp.id_path, offset=cp.offset)

    def _continuation_of(self, head: bytes) -> _Checkpoint | None:
        """A known file whose fingerprint `head` starts with: `head`'s file is a copy of it."""
        known = [o.checkpoint for o in self._state.tracked.values()] + self._state.retired
        for cp in known:
            if 0 < cp.fp_len <= len(head) and hashlib.sha256(head[:cp.fp_len]).hexdigest() == cp.fingerprint:
                if cp in self._state.retired:
                    self._state.retired.remove(cp)
                return _Checkpoint(**asdict(cp))
        return None

    def _check_truncation(self, opened: _Open, name: str) -> None:
        cp = opened.checkpoint
        size = os.stat(name).st_size
        head = _head(name, False) if cp.fp_len < FINGERPRINT_BYTES or size < cp.offset else b""
        is_same = size >= cp.offset and (not head or len(head) < cp.fp_len
                                         or hashlib.sha256(head[:cp.fp_len]).hexdigest() == cp.fingerprint)
        if not is_same:
            self.metrics.truncations += 1
            log.warning("tail_file_truncated", path=name, offset=cp.offset, size=size)
            self._close(opened)
            self._remember(_Checkpoint(**asdict(cp)))  # a copy made before the truncation continues it
            cp.offset, cp.line, cp.fp_len, cp.fingerprint = 0, 0, 0, ""
            head = _head(name, False)
        if head and len(head) > cp.fp_len:  # the file grew: fingerprint more of it
            cp.fingerprint, cp.fp_len = hashlib.sha256(head).hexdigest(), len(head)

    def _retire(self, key: tuple[int, int]) -> None:
        opened = self._state.tracked.pop(key)
        self._close(opened)
        self._remember(opened.checkpoint)

    def _remember(self, cp: _Checkpoint) -> None:
        """Keep a finished file's checkpoint, so a copy or gzip of it later resumes where it ended."""
        self._state.retired.append(cp)
        del self._state.retired[:-MAX_RETIRED]

    # -- reading -------------------------------------------------------------------------------

    def _read(self, opened: _Open, limit: int) -> list[TailLine]:
        cp = opened.checkpoint
        if cp.is_done:
            return []
        handle = opened.handle or self._open(opened)
        if handle is None:
            return []
        out: list[TailLine] = []
        while len(out) < limit:
            chunk = handle.readline(_READ_LIMIT)
            if not chunk:
                break
            if not chunk.endswith(b"\n") and len(chunk) < _READ_LIMIT and not (cp.is_gz or opened.is_final):
                handle.seek(cp.offset)  # an unfinished line: wait for its newline
                break
            size = len(chunk)
            if size == _READ_LIMIT and not chunk.endswith(b"\n"):
                size += _skip_line(handle)
            cp.line += 1
            raw = chunk.removesuffix(b"\n").removesuffix(b"\r")
            if raw:
                out.append(TailLine(cp.id_path, cp.offset, cp.line, raw[:MAX_LINE_BYTES + 1]))
            cp.offset += size
        if len(out) < limit:
            self._at_end(opened)
        return out

    def _at_end(self, opened: _Open) -> None:
        cp = opened.checkpoint
        if cp.is_gz:
            cp.is_done = True
            self._close(opened)
        elif opened.is_final:
            self._retire((cp.dev, cp.ino))

    def _open(self, opened: _Open) -> IO[bytes] | None:
        cp = opened.checkpoint
        path = self._path_of(cp)
        if path is None:
            return None
        disk = open(path, "rb")  # kept open between polls, closed by _close
        st = os.fstat(disk.fileno())
        if (st.st_dev, st.st_ino) != (cp.dev, cp.ino):
            disk.close()
            return None
        handle: IO[bytes] = disk
        if cp.is_gz:
            handle = cast(IO[bytes], gzip.GzipFile(fileobj=disk, mode="rb"))
        handle.seek(cp.offset)  # gzip seeks by decompressing up to the offset
        opened.handle = handle
        return handle

    def _path_of(self, cp: _Checkpoint) -> str | None:
        for pattern in self.patterns:
            for name in glob.glob(pattern):
                try:
                    st = os.stat(name)
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) == (cp.dev, cp.ino):
                    return name
        return None

    @staticmethod
    def _close(opened: _Open) -> None:
        if opened.handle is not None:
            opened.handle.close()
            opened.handle = None

    def close(self) -> None:
        for opened in self._state.tracked.values():
            self._close(opened)

    def describe(self) -> list[dict[str, Any]]:
        """The tracked files and their offsets, for the heartbeat."""
        return [{"path": o.checkpoint.id_path, "offset": o.checkpoint.offset} for o in self._state.tracked.values()]


def _head(name: str, is_gz: bool) -> bytes:
    with open(name, "rb") as disk:
        if is_gz:
            with gzip.GzipFile(fileobj=disk, mode="rb") as stream:
                return stream.read(FINGERPRINT_BYTES)
        return disk.read(FINGERPRINT_BYTES)


def _skip_line(handle: IO[bytes]) -> int:
    skipped = 0
    while piece := handle.readline(MAX_LINE_BYTES):
        skipped += len(piece)
        if piece.endswith(b"\n"):
            break
    return skipped
