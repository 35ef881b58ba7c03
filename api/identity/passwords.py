"""Password hashing: argon2id through argon2-cffi, with its recommended (RFC 9106) parameters.

`verify` answers a boolean and never raises for a wrong or malformed hash: a hash that cannot be
read is a failed sign-in, not a server error. `needs_rehash` says when stored parameters are
weaker than today's, so a sign-in can upgrade the stored hash.
"""

from __future__ import annotations

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class PasswordHasher:
    def __init__(self, *, fast: bool = False) -> None:
        # fast: a low-cost profile for tests and the demo's bulk users; never for real deployments
        self._hasher = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1) if fast \
            else argon2.PasswordHasher()

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True
