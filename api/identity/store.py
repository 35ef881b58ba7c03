"""Where identities live: users, API keys (agency systems, sensors, enrollment), console sessions.

A SQLite store on the embedded back end's base (`pipeline.store.sqlite_db`), in the same file as
the other stores by default. What it keeps, and what it never does:
- a user's password only as its argon2id hash (`api.identity.passwords`);
- an API key, sensor token, enrollment token or session only as the SHA-256 of the secret: those
  secrets carry 256 random bits, so a fast hash is enough, and a database dump reveals none;
- revocation as a time (`revoked_us`), so a key's history stays for the audit trail;
- login failures per subject (user name or address) to slow brute force, reset on success.

Every statement is parameterised; the store knows nothing of HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from config.settings import Role
from pipeline.store.sqlite_db import Schema, SqliteStore, from_us, to_us

SCHEMA = Schema(
    component="identity",
    version=2,
    statements=(
        """CREATE TABLE IF NOT EXISTS users (
            name TEXT PRIMARY KEY, tenant TEXT NOT NULL, role TEXT NOT NULL, password_hash TEXT NOT NULL,
            language TEXT NOT NULL, timezone TEXT NOT NULL, created_us INTEGER NOT NULL,
            disabled_us INTEGER)""",
        """CREATE TABLE IF NOT EXISTS api_keys (
            id TEXT PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, name TEXT NOT NULL,
            tenant TEXT NOT NULL, role TEXT NOT NULL, created_by TEXT NOT NULL, created_us INTEGER NOT NULL,
            expires_us INTEGER, revoked_us INTEGER, used_us INTEGER)""",
        "CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant)",
        """CREATE TABLE IF NOT EXISTS sessions (
            sha256 TEXT PRIMARY KEY, user TEXT NOT NULL, csrf TEXT NOT NULL, created_us INTEGER NOT NULL,
            seen_us INTEGER NOT NULL, expires_us INTEGER NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS login_failures (
            subject TEXT PRIMARY KEY, failures INTEGER NOT NULL, last_us INTEGER NOT NULL,
            locked_until_us INTEGER NOT NULL)""",
    ),
    migrations={
        # 2: OpenID Connect sign-ins in flight (state -> nonce, PKCE verifier, where to go after)
        2: ("""CREATE TABLE IF NOT EXISTS oidc_states (
                sha256 TEXT PRIMARY KEY, provider TEXT NOT NULL, nonce TEXT NOT NULL, verifier TEXT NOT NULL,
                next TEXT NOT NULL, expires_us INTEGER NOT NULL)""",),
    },
)


@dataclass(frozen=True, slots=True)
class User:
    name: str
    tenant: str
    role: Role
    password_hash: str
    language: str
    timezone: str
    created: datetime
    disabled: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key; `kind` is `api` (an agency system or person), `sensor` or `enrollment` (one-time)."""

    id: str
    kind: str
    name: str
    tenant: str
    role: Role
    created_by: str
    created: datetime
    expires: datetime | None
    revoked: datetime | None
    used: datetime | None

    def is_valid_at(self, now: datetime) -> bool:
        return self.revoked is None and (self.expires is None or now < self.expires)


@dataclass(frozen=True, slots=True)
class Session:
    user: str
    csrf: str
    created: datetime
    seen: datetime
    expires: datetime


@dataclass(frozen=True, slots=True)
class OidcFlow:
    """An OpenID Connect sign-in between the redirect to the provider and its answer."""

    provider: str
    nonce: str
    verifier: str  # the PKCE code verifier
    next: str  # a path of this site to go to once signed in
    expires: datetime


@dataclass(frozen=True, slots=True)
class LoginFailures:
    failures: int
    last: datetime
    locked_until: datetime


_USER_COLUMNS = "name, tenant, role, password_hash, language, timezone, created_us, disabled_us"
_KEY_COLUMNS = "id, kind, name, tenant, role, created_by, created_us, expires_us, revoked_us, used_us"


def _opt_us(value: datetime | None) -> int | None:
    return None if value is None else to_us(value)


def _opt_time(us: int | None) -> datetime | None:
    return None if us is None else from_us(us)


def _user(row: tuple[object, ...]) -> User:
    name, tenant, role, password_hash, language, timezone, created_us, disabled_us = row
    return User(str(name), str(tenant), Role(str(role)), str(password_hash), str(language), str(timezone),
                from_us(int(str(created_us))), _opt_time(disabled_us))  # type: ignore[arg-type]


def _key(row: tuple[object, ...]) -> ApiKey:
    key_id, kind, name, tenant, role, created_by, created_us, expires_us, revoked_us, used_us = row
    return ApiKey(str(key_id), str(kind), str(name), str(tenant), Role(str(role)), str(created_by),
                  from_us(int(str(created_us))), _opt_time(expires_us), _opt_time(revoked_us),  # type: ignore[arg-type]
                  _opt_time(used_us))  # type: ignore[arg-type]


class SqliteIdentityStore(SqliteStore):
    schema = SCHEMA

    # -- users ---------------------------------------------------------------------------------
    def save_user(self, user: User) -> None:
        """Create or replace a user (by name)."""
        with self._db.transaction(f"save user {user.name}") as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO users ({_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (user.name, user.tenant, user.role.value, user.password_hash, user.language, user.timezone,
                 to_us(user.created), _opt_us(user.disabled)),
            )

    def user(self, name: str) -> User | None:
        rows = self._db.query("read a user", f"SELECT {_USER_COLUMNS} FROM users WHERE name = ?", (name,))
        return _user(rows[0]) if rows else None

    def set_language(self, name: str, language: str) -> bool:
        """Store a user's console language; False when there is no such user."""
        with self._db.transaction(f"set the language of {name}") as conn:
            cursor = conn.execute("UPDATE users SET language = ? WHERE name = ?", (language, name))
            return cursor.rowcount == 1

    def users(self, tenants: frozenset[str] | None) -> list[User]:
        """Users of `tenants` (all when None), by name."""
        rows = self._db.query("list users", f"SELECT {_USER_COLUMNS} FROM users ORDER BY name")
        return [u for u in map(_user, rows) if tenants is None or u.tenant in tenants]

    # -- keys ----------------------------------------------------------------------------------
    def save_key(self, key: ApiKey, sha256: str) -> None:
        with self._db.transaction(f"save key {key.id}") as conn:
            conn.execute(
                f"INSERT INTO api_keys (sha256, {_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sha256, key.id, key.kind, key.name, key.tenant, key.role.value, key.created_by,
                 to_us(key.created), _opt_us(key.expires), _opt_us(key.revoked), _opt_us(key.used)),
            )

    def key_by_hash(self, sha256: str) -> ApiKey | None:
        rows = self._db.query("find a key", f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE sha256 = ?", (sha256,))
        return _key(rows[0]) if rows else None

    def key(self, key_id: str) -> ApiKey | None:
        rows = self._db.query("read a key", f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = ?", (key_id,))
        return _key(rows[0]) if rows else None

    def keys(self, tenants: frozenset[str] | None) -> list[ApiKey]:
        rows = self._db.query("list keys", f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_us, id")
        return [k for k in map(_key, rows) if tenants is None or k.tenant in tenants]

    def revoke_key(self, key_id: str, when: datetime) -> bool:
        """Revoke a key that is not revoked yet; False when there was nothing to revoke."""
        with self._db.transaction(f"revoke key {key_id}") as conn:
            cursor = conn.execute("UPDATE api_keys SET revoked_us = ? WHERE id = ? AND revoked_us IS NULL",
                                  (to_us(when), key_id))
            return cursor.rowcount == 1

    def use_key(self, key_id: str, when: datetime, *, once: bool) -> bool:
        """Note a key's use; with `once`, also revoke it, and answer False if it was used already.

        The check and the revocation are one transaction, so a one-time key works exactly once
        even when two requests race with it.
        """
        with self._db.transaction(f"use key {key_id}") as conn:
            if once:
                cursor = conn.execute(
                    "UPDATE api_keys SET used_us = ?, revoked_us = ? WHERE id = ? AND revoked_us IS NULL",
                    (to_us(when), to_us(when), key_id))
                return cursor.rowcount == 1
            conn.execute("UPDATE api_keys SET used_us = ? WHERE id = ?", (to_us(when), key_id))
            return True

    # -- sessions ------------------------------------------------------------------------------
    def save_session(self, sha256: str, session: Session) -> None:
        with self._db.transaction("open a session") as conn:
            conn.execute("DELETE FROM sessions WHERE expires_us < ?", (to_us(session.created),))
            conn.execute("INSERT INTO sessions (sha256, user, csrf, created_us, seen_us, expires_us) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         (sha256, session.user, session.csrf, to_us(session.created), to_us(session.seen),
                          to_us(session.expires)))

    def session(self, sha256: str) -> Session | None:
        rows = self._db.query("read a session", "SELECT user, csrf, created_us, seen_us, expires_us FROM sessions "
                              "WHERE sha256 = ?", (sha256,))
        if not rows:
            return None
        user, csrf, created_us, seen_us, expires_us = rows[0]
        return Session(user, csrf, from_us(created_us), from_us(seen_us), from_us(expires_us))

    def touch_session(self, sha256: str, seen: datetime, expires: datetime) -> None:
        with self._db.transaction("refresh a session") as conn:
            conn.execute("UPDATE sessions SET seen_us = ?, expires_us = ? WHERE sha256 = ?",
                         (to_us(seen), to_us(expires), sha256))

    def delete_session(self, sha256: str) -> None:
        with self._db.transaction("close a session") as conn:
            conn.execute("DELETE FROM sessions WHERE sha256 = ?", (sha256,))

    def delete_user_sessions(self, user: str) -> None:
        with self._db.transaction(f"close the sessions of {user}") as conn:
            conn.execute("DELETE FROM sessions WHERE user = ?", (user,))

    # -- OpenID Connect sign-ins in flight ------------------------------------------------------
    def save_oidc_state(self, sha256: str, flow: OidcFlow) -> None:
        with self._db.transaction("remember an OpenID Connect sign-in") as conn:
            conn.execute("DELETE FROM oidc_states WHERE expires_us < ?", (to_us(flow.expires) - 3_600_000_000,))
            conn.execute("INSERT INTO oidc_states (sha256, provider, nonce, verifier, next, expires_us) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         (sha256, flow.provider, flow.nonce, flow.verifier, flow.next, to_us(flow.expires)))

    def take_oidc_state(self, sha256: str) -> OidcFlow | None:
        """The sign-in of this state, removed in the same transaction: a state works once."""
        with self._db.transaction("take an OpenID Connect sign-in") as conn:
            row = conn.execute("SELECT provider, nonce, verifier, next, expires_us FROM oidc_states "
                               "WHERE sha256 = ?", (sha256,)).fetchone()
            conn.execute("DELETE FROM oidc_states WHERE sha256 = ?", (sha256,))
        if row is None:
            return None
        provider, nonce, verifier, next_url, expires_us = row
        return OidcFlow(provider, nonce, verifier, next_url, from_us(expires_us))

    # -- login failures ------------------------------------------------------------------------
    def login_failures(self, subject: str) -> LoginFailures | None:
        rows = self._db.query("read login failures", "SELECT failures, last_us, locked_until_us FROM login_failures "
                              "WHERE subject = ?", (subject,))
        if not rows:
            return None
        failures, last_us, locked_us = rows[0]
        return LoginFailures(failures, from_us(last_us), from_us(locked_us))

    def save_login_failures(self, subject: str, record: LoginFailures) -> None:
        with self._db.transaction("record a login failure") as conn:
            conn.execute("INSERT OR REPLACE INTO login_failures (subject, failures, last_us, locked_until_us) "
                         "VALUES (?, ?, ?, ?)",
                         (subject, record.failures, to_us(record.last), to_us(record.locked_until)))

    def clear_login_failures(self, subject: str) -> None:
        with self._db.transaction("clear login failures") as conn:
            conn.execute("DELETE FROM login_failures WHERE subject = ?", (subject,))
