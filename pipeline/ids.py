"""Deterministic ids: the same input always yields the same id, so a redelivery is an upsert.

Ids are the first 128 bits of a SHA-256 over the parts, each length-prefixed so that
("ab", "c") and ("a", "bc") never collide, rendered as 32 lowercase hex digits.
"""

from __future__ import annotations

import hashlib


def stable_id(*parts: str | int | None) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = b"\x00" if part is None else str(part).encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()[:32]
