"""Spool format: how one spool record is laid out on disk, and read back.

Stage: sensors, store-and-forward, under `spool`. A record is

    length u32 | crc32 u32 | kind u8 | key length u16 | key (UTF-8) | value

big-endian; `length` counts kind, key length, key and value, and the CRC covers those same bytes.
`kind` says what the value holds: `RecordKind.EVENT` (event JSON) or `RecordKind.DEAD_LETTER`
(dead-letter JSON). Values are bytes that other code made; nothing is pickled. Decoding never
raises for content: a bad record ends what is read (see `decode_records`).
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

_HEADER = struct.Struct(">II")  # length, crc
_BODY_HEAD = struct.Struct(">BH")  # kind, key length
_NO_KEY = 0xFFFF
MAX_RECORD_BYTES = 16 * 1024 * 1024


class RecordKind(enum.IntEnum):
    EVENT = 1
    DEAD_LETTER = 2


def encode_record(kind: RecordKind, key: str | None, value: bytes) -> bytes:
    """One record's bytes. Key length 0xFFFF marks "no key", apart from the empty key."""
    key_bytes = b"" if key is None else key.encode("utf-8")
    if len(key_bytes) >= _NO_KEY:
        raise ValueError("spool: record key of 65535 bytes or more")
    body = _BODY_HEAD.pack(int(kind), _NO_KEY if key is None else len(key_bytes)) + key_bytes + value
    if len(body) > MAX_RECORD_BYTES:
        raise ValueError(f"spool: record of {len(body)} bytes is over {MAX_RECORD_BYTES}")
    return _HEADER.pack(len(body), zlib.crc32(body)) + body


@dataclass(frozen=True, slots=True)
class _Decoded:
    kind: RecordKind
    key: str | None
    value: bytes
    size: int


def decode_records(data: bytes, start: int = 0) -> Iterator[_Decoded | None]:
    """Records of one segment's bytes from `start`; yields None once at the first bad record, then stops.

    A bad record is one cut short, longer than the limit, failing its CRC, or with an unknown kind
    or impossible key length. Never raises for content.
    """
    pos, end = start, len(data)
    while pos < end:
        if end - pos < _HEADER.size:
            yield None
            return
        length, crc = _HEADER.unpack_from(data, pos)
        body_start = pos + _HEADER.size
        if length < _BODY_HEAD.size or length > MAX_RECORD_BYTES or body_start + length > end:
            yield None
            return
        body = data[body_start:body_start + length]
        record = _decode_body(body) if zlib.crc32(body) == crc else None
        if record is None:
            yield None
            return
        kind, key, value = record
        yield _Decoded(kind, key, value, _HEADER.size + length)
        pos = body_start + length


def _decode_body(body: bytes) -> tuple[RecordKind, str | None, bytes] | None:
    kind_byte, key_length = _BODY_HEAD.unpack_from(body, 0)
    if kind_byte not in (RecordKind.EVENT, RecordKind.DEAD_LETTER):
        return None
    if key_length == _NO_KEY:
        return RecordKind(kind_byte), None, body[_BODY_HEAD.size:]
    key_end = _BODY_HEAD.size + key_length
    if key_end > len(body):
        return None
    key = body[_BODY_HEAD.size:key_end].decode("utf-8", errors="replace")
    return RecordKind(kind_byte), key, body[key_end:]


def first_record_size(data: bytes) -> int:
    """The size of the record that starts `data` (its header's claim, bounded), or a header's size."""
    if len(data) < _HEADER.size:
        return _HEADER.size
    length, _ = _HEADER.unpack_from(data, 0)
    return int(_HEADER.size + min(length, MAX_RECORD_BYTES))
