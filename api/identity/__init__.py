"""Identities behind the API, in the order a request meets them.

- `passwords`: argon2id hashing of console passwords.
- `store`: users, API/sensor/enrollment keys, sessions and login failures (SQLite).
- `service`: sign-in with throttling, sessions, keys shown once, enrollment, revocation; audited.
"""

from api.identity.passwords import PasswordHasher
from api.identity.service import IdentityError, IdentityPolicy, IdentityService, LoginLocked
from api.identity.store import ApiKey, Session, SqliteIdentityStore, User

__all__ = ["ApiKey", "IdentityError", "IdentityPolicy", "IdentityService", "LoginLocked", "PasswordHasher",
           "Session", "SqliteIdentityStore", "User"]
