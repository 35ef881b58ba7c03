"""Tailing: rotation by rename and copytruncate, truncation, gzip, restarts; no line lost or read twice.

"Read twice" means a second (path, offset, line): the key of an event id. The same key again is
what a crash between spool and checkpoint gives, and it makes the same event id.
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections import Counter
from pathlib import Path

from sensors.tail import Tailer, TailLine


def write(path: Path, *lines: str, mode: str = "a") -> None:
    with path.open(mode + "b") as f:
        f.write(b"".join(line.encode() + b"\n" for line in lines))


def drain(tailer: Tailer, rounds: int = 5) -> list[TailLine]:
    out: list[TailLine] = []
    for _ in range(rounds):
        out.extend(tailer.poll(10_000))
    tailer.save()
    return out


def texts(lines: list[TailLine]) -> list[str]:
    return [line.raw.decode() for line in lines]


def assert_once(lines: list[TailLine], expected: list[str]) -> None:
    assert Counter(texts(lines)) == Counter(expected)
    keys = [(line.path, line.offset, line.raw) for line in lines]
    assert len(keys) == len(set(keys))


def test_new_lines_are_read_and_a_partial_line_waits_for_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "one", "two")
    tailer = Tailer([str(log)], tmp_path / "cp.json")
    assert texts(drain(tailer)) == ["one", "two"]
    with log.open("ab") as f:
        f.write(b"thr")
    assert drain(tailer) == []
    with log.open("ab") as f:
        f.write(b"ee\r\n\nfour\n")
    got = drain(tailer)
    assert texts(got) == ["three", "four"]
    assert got[0].offset == len(b"one\ntwo\n") and got[0].path == str(log.resolve())


def test_rename_rotation_reads_the_old_file_to_its_end_then_the_new_one(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    write(log, "a1", "a2")
    tailer = Tailer([str(tmp_path / "auth.log")], tmp_path / "cp.json")  # the glob misses rotated names
    lines = drain(tailer)
    write(log, "a3")  # written before the rotation, not yet read
    log.rename(tmp_path / "auth.log.1")
    write(log, "b1", "b2")
    lines += drain(tailer)
    write(log, "b3")
    lines += drain(tailer)
    assert_once(lines, ["a1", "a2", "a3", "b1", "b2", "b3"])
    assert tailer.metrics.rotations == 1


def test_rotation_with_delaycompress_and_a_glob_over_rotated_names(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    tailer = Tailer([str(tmp_path / "auth.log*")], tmp_path / "cp.json")
    write(log, *(f"first-{i:03d} some text to make the file longer" for i in range(40)))
    lines = drain(tailer)
    log.rename(tmp_path / "auth.log.1")
    write(log, "second-1")
    lines += drain(tailer)
    rotated = tmp_path / "auth.log.1"  # logrotate compresses it at the next rotation
    with rotated.open("rb") as src, gzip.open(tmp_path / "auth.log.2.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    rotated.unlink()
    lines += drain(tailer)
    assert_once(lines, [f"first-{i:03d} some text to make the file longer" for i in range(40)] + ["second-1"])


def test_copytruncate_neither_loses_nor_repeats_lines(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    tailer = Tailer([str(tmp_path / "app.log*")], tmp_path / "cp.json")
    write(log, "c1 the first line of the file", "c2")
    lines = drain(tailer)
    write(log, "c3")  # not yet read when the copy is made
    shutil.copyfile(log, tmp_path / "app.log.1")
    os.truncate(log, 0)
    write(log, "d1")
    lines += drain(tailer)
    assert_once(lines, ["c1 the first line of the file", "c2", "c3", "d1"])


def test_truncation_starts_the_file_again(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "old-1", "old-2", "old-3")
    tailer = Tailer([str(log)], tmp_path / "cp.json")
    lines = drain(tailer)
    write(log, "new-1", mode="w")
    lines += drain(tailer)
    assert texts(lines) == ["old-1", "old-2", "old-3", "new-1"]
    assert tailer.metrics.truncations == 1


def test_a_gzip_file_is_read_once_on_first_sight(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "old.log.gz", "wb") as f:
        f.write(b"g1\ng2\ng3")  # no final newline: the file will not grow
    tailer = Tailer([str(tmp_path / "*.gz")], tmp_path / "cp.json")
    assert texts(drain(tailer)) == ["g1", "g2", "g3"]
    assert drain(Tailer([str(tmp_path / "*.gz")], tmp_path / "cp.json")) == []


def test_a_restart_resumes_at_the_checkpoint(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, *(f"line-{i}" for i in range(100)))
    checkpoint = tmp_path / "cp.json"
    first = Tailer([str(log)], checkpoint)
    lines = first.poll(30)
    first.save()
    unsaved = first.poll(20)  # read but not checkpointed: the crash comes before save()
    second = Tailer([str(log)], checkpoint)
    again = drain(second)
    assert [(x.path, x.offset, x.raw) for x in unsaved] == [(x.path, x.offset, x.raw) for x in again[:20]]
    assert_once(lines + again, [f"line-{i}" for i in range(100)])


def test_a_damaged_checkpoint_reads_the_files_again(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "x")
    (tmp_path / "cp.json").write_text("{torn")
    assert texts(drain(Tailer([str(log)], tmp_path / "cp.json"))) == ["x"]
