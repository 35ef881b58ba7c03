"""Deterministic ids: the same input always yields the same id, so a redelivery is an upsert.

Ids are the first 128 bits of a SHA-256 over the parts, each length-prefixed so that
("ab", "c") and ("a", "bc") never collide, rendered as 32 lowercase hex digits.

`IdPrefix` is the same function split in two for hot loops: the hash state of the leading parts
(tenant, sensor, file) is computed once and copied per record, so
`IdPrefix(a, b).id(c, d) == stable_id(a, b, c, d)` always (tested on real samples).
"""

from __future__ import annotations

import hashlib


def _update(digest: hashlib._Hash, parts: tuple[str | int | None, ...]) -> None:
    for part in parts:
        data = b"\x00" if part is None else str(part).encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)


def stable_id(*parts: str | int | None) -> str:
    digest = hashlib.sha256()
    _update(digest, parts)
    return digest.hexdigest()[:32]


class IdPrefix:
    """`stable_id` with its first parts fixed: `id(*rest)` hashes only the rest.

    Copying a prepared SHA-256 state saves the prefix's encoding and hashing on every record
    (the log sensor's ids share tenant, sensor and path; bench/sensor.py).
    """

    __slots__ = ("_state",)

    def __init__(self, *parts: str | int | None) -> None:
        self._state = hashlib.sha256()
        _update(self._state, parts)

    def id(self, *parts: str | int | None) -> str:
        digest = self._state.copy()
        _update(digest, parts)
        return digest.hexdigest()[:32]
