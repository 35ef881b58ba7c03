"""Any file or directory -> batches of events, each file read by the reader its content calls for.

Stage: sensors, the front of offline work (`govsoc detect`). In: a path (file or directory), the
tenant the events belong to and the sensor name to record. Out: `LogBatch`es, file by file.

Choosing a reader (`file_kind`), from the name and the first `SNIFF_BYTES` of the file:
- `.evtx` (any case) or the EVTX signature `ElfFile\\0` -> `sensors.windows.read_evtx_file`;
- a pcap (either byte order, micro- or nanosecond) or pcapng magic number -> the packet sensor,
  `sensors.packets.read_capture` (flows, DNS, HTTP, TLS);
- text that opens with `{` or `[` and names `"Event"` with `"System"`, or `"winlog"`, within its
  first bytes -> Windows event JSON, `sensors.windows.read_windows_json_file` (one document per
  file, several concatenated, or one per line; evtx JSON or Winlogbeat);
- anything else -> text logs, `sensors.files.read_log_file` with the `text_format` parser (default
  `auth`: auth.log / secure lines; what is not that becomes dead letters with the reason).

Invariants:
- Directories are walked recursively in sorted order, symlinked directories not followed, so two
  runs over the same tree read the same files in the same order.
- Never raises for content (each reader turns bad content into dead letters). A file that cannot
  be opened raises `OSError` from its reader, after the batches of the files before it.
- Nothing is held beyond one batch of one file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path

from sensors.files import FileSource, LogBatch, read_log_file
from sensors.packets import CaptureSource, read_capture
from sensors.windows import WindowsSource, read_evtx_file, read_windows_json_file

SNIFF_BYTES = 4096
EVTX_MAGIC = b"ElfFile\x00"
CAPTURE_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
                  b"\x0a\x0d\x0d\x0a")  # pcap (µs, ns; both byte orders), pcapng
_JSON_OPENERS = (b"{", b"[")
_WINDOWS_MARKS = ((b'"Event"', b'"System"'), (b'"winlog',))  # any group whose every mark is present


class FileKind(Enum):
    """How a file is read."""

    EVTX = "evtx"
    CAPTURE = "capture"
    WINDOWS_JSON = "windows_json"
    TEXT = "text"


def file_kind(path: Path) -> FileKind:
    """The kind of `path`, from its name and its first `SNIFF_BYTES`. Raises OSError if unreadable."""
    if path.suffix.lower() == ".evtx":
        return FileKind.EVTX
    with path.open("rb") as file:
        head = file.read(SNIFF_BYTES)
    if head.startswith(EVTX_MAGIC):
        return FileKind.EVTX
    if head[:4] in CAPTURE_MAGICS:
        return FileKind.CAPTURE
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")  # a UTF-8 byte-order mark, JSON whitespace
    if text.startswith(_JSON_OPENERS) and any(all(mark in text for mark in group) for group in _WINDOWS_MARKS):
        return FileKind.WINDOWS_JSON
    return FileKind.TEXT


def read_any(path: Path, tenant: str, sensor: str, *, text_format: str = "auth",
             on_progress: Callable[[int], None] = lambda n: None) -> Iterator[LogBatch]:
    """Batches of every file at `path` (a file, or a directory searched recursively), each file
    read by the reader of its `file_kind`. `on_progress(n)` is told bytes read from disk.

    Raises `ConfigError` for an unknown `text_format` (before reading anything), `OSError` for a
    path that does not exist or a file that cannot be read.
    """
    text_source = FileSource(tenant=tenant, sensor=sensor, format=text_format)
    windows_source = WindowsSource(tenant=tenant, sensor=sensor)
    capture_source = CaptureSource(tenant=tenant, sensor=sensor)
    for file in files_under(path):
        kind = file_kind(file)
        if kind is FileKind.EVTX:
            yield from read_evtx_file(file, windows_source, on_progress=on_progress)
        elif kind is FileKind.CAPTURE:
            yield from read_capture(file, capture_source, on_progress=on_progress)
        elif kind is FileKind.WINDOWS_JSON:
            yield from read_windows_json_file(file, windows_source, on_progress=on_progress)
        else:
            yield from read_log_file(file, text_source, on_progress=on_progress)


def read_file(path: Path, source: FileSource, *,
              on_progress: Callable[[int], None] = lambda n: None) -> Iterator[LogBatch]:
    """One file with `source`'s format, unless it is a capture: then the packet sensor reads it
    (with `source`'s tenant and sensor). What `govsoc replay` and `govsoc parse` use."""
    if file_kind(path) is FileKind.CAPTURE:
        yield from read_capture(path, CaptureSource(tenant=source.tenant, sensor=source.sensor),
                                on_progress=on_progress)
    else:
        yield from read_log_file(path, source, on_progress=on_progress)


def files_under(path: Path) -> Iterator[Path]:
    """`path` itself when it is a file, else the files below it, sorted; OSError when neither."""
    if path.is_file():
        yield path
        return
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or directory")
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for name in sorted(names):
            file = Path(root) / name
            if file.is_file():
                yield file
