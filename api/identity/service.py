"""Who is calling: passwords, API keys, sensor enrollment, console sessions, login throttling.

In: a password, a bearer token or a session cookie. Out: the stored `User` or `ApiKey`, or None.
Every change (a user or key created, a key revoked, a sensor enrolled, a sign-in that failed or
succeeded) is appended to the audit trail through `audit`, the incident store's `append_audit`.

Contracts:
- Secrets are shown once: `create_key`, `enroll` and `open_session` return the secret; the store
  keeps its SHA-256 only. Tokens carry a kind prefix (`gsoc_k_`, `gsoc_s_`, `gsoc_e_`) so a leaked
  one is easy to find in a log or a repository.
- A revoked or expired key stops working at the next request: keys are read from the store on
  every authentication (one indexed lookup), never cached.
- An enrollment token works once: checking and consuming it is one transaction.
- Sign-in is slowed per user name and per address: after `free_failures` failures each further one
  locks the subject for `lock_base_s * 2**k` seconds (capped at `lock_max_s`); a locked subject is
  refused without checking the password (`LoginLocked` with the seconds to wait), and every
  failure is audited. An unknown user costs the same argon2 work as a known one.
- A session ends after `session_idle` without use or `session_max` after sign-in, whichever first.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from api.identity.passwords import PasswordHasher
from api.identity.store import ApiKey, LoginFailures, Session, SqliteIdentityStore, User
from config.settings import Role

Audit = Callable[..., Any]

KEY_PREFIXES = {"api": "gsoc_k_", "sensor": "gsoc_s_", "enrollment": "gsoc_e_"}
MIN_PASSWORD_LENGTH = 12
_USED_EVERY = timedelta(minutes=1)  # how often a key's last use is written: not a write per request


def secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class IdentityError(ValueError):
    """A request the identity service refuses (a weak password, an unknown tenant, ...)."""


class LoginLocked(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed sign-ins: try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class IdentityPolicy:
    session_idle: timedelta = timedelta(minutes=30)
    session_max: timedelta = timedelta(hours=12)
    free_failures: int = 5
    lock_base_s: float = 2.0
    lock_max_s: float = 900.0


class IdentityService:
    def __init__(self, store: SqliteIdentityStore, audit: Audit, policy: IdentityPolicy | None = None,
                 hasher: PasswordHasher | None = None) -> None:
        self.store = store
        self._audit = audit
        self.policy = policy or IdentityPolicy()
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    # -- users ---------------------------------------------------------------------------------
    def create_user(self, *, name: str, tenant: str, role: Role, password: str, actor: str, now: datetime,
                    language: str = "vi", timezone: str = "Asia/Ho_Chi_Minh") -> User:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise IdentityError(f"password: at least {MIN_PASSWORD_LENGTH} characters")
        user = User(name=name, tenant=tenant, role=role, password_hash=self._hasher.hash(password),
                    language=language, timezone=timezone, created=now)
        self.store.save_user(user)
        self._audit(actor=actor, tenant=tenant, action="user.create", object_type="user", object_id=name,
                    details={"role": role.value, "language": language})
        return user

    def external_user(self, *, name: str, tenant: str, role: Role, provider: str, address: str,
                      now: datetime) -> User:
        """The account of a user an identity provider vouched for: made or updated, never with a password.

        Tenant and role follow the provider's rules at every sign-in, so a change there (or a user
        moved between agencies) takes effect at the next one; the change is audited.
        """
        known = self.store.user(name)
        user = User(name=name, tenant=tenant, role=role, password_hash=f"!external:{provider}",
                    language=known.language if known else "vi",
                    timezone=known.timezone if known else "Asia/Ho_Chi_Minh",
                    created=known.created if known else now, disabled=known.disabled if known else None)
        if known != user:
            self.store.save_user(user)
        self._audit(actor=name, tenant=tenant, action="auth.login", object_type="user", object_id=name,
                    details={"address": address, "provider": provider, "role": role.value,
                             "changed": known is not None and (known.tenant, known.role) != (tenant, role)})
        return user

    def refuse_external(self, *, provider: str, address: str, reason: str) -> None:
        self._audit(actor=f"{provider}:?", tenant="", action="auth.login_failed", object_type="identity_provider",
                    object_id=provider, details={"address": address, "reason": reason[:500]})

    def sign_in(self, name: str, password: str, address: str, now: datetime) -> User | None:
        """The user if the password is right; None if not; `LoginLocked` while throttled."""
        subjects = (f"user:{name}", f"address:{address}")
        wait = max(self._locked_for(s, now) for s in subjects)
        if wait > 0:
            self._audit(actor=name, tenant="", action="auth.login_refused", object_type="user", object_id=name,
                        details={"address": address, "retry_after_s": wait})
            raise LoginLocked(wait)
        user = self.store.user(name)
        ok = self._hasher.verify(user.password_hash if user else self._dummy_hash, password)
        if not ok or user is None or user.disabled is not None:
            for subject in subjects:
                self._fail(subject, now)
            self._audit(actor=name, tenant=user.tenant if user else "", action="auth.login_failed",
                        object_type="user", object_id=name, details={"address": address})
            return None
        for subject in subjects:
            self.store.clear_login_failures(subject)
        if self._hasher.needs_rehash(user.password_hash):
            self.store.save_user(_with_hash(user, self._hasher.hash(password)))
        self._audit(actor=name, tenant=user.tenant, action="auth.login", object_type="user", object_id=name,
                    details={"address": address})
        return user

    def _locked_for(self, subject: str, now: datetime) -> int:
        record = self.store.login_failures(subject)
        if record is None or record.locked_until <= now:
            return 0
        return max(1, int((record.locked_until - now).total_seconds() + 0.999))

    def _fail(self, subject: str, now: datetime) -> None:
        record = self.store.login_failures(subject)
        failures = (record.failures if record else 0) + 1
        beyond = failures - self.policy.free_failures
        lock_s = min(self.policy.lock_max_s, self.policy.lock_base_s * 2 ** (beyond - 1)) if beyond > 0 else 0.0
        self.store.save_login_failures(subject, LoginFailures(failures, now, now + timedelta(seconds=lock_s)))

    def set_language(self, name: str, language: str, *, actor: str, now: datetime) -> bool:
        """Change the language the console speaks to `name` (audited); False when there is no such user."""
        user = self.store.user(name)
        if user is None or not self.store.set_language(name, language):
            return False
        self._audit(actor=actor, tenant=user.tenant, action="user.language", object_type="user", object_id=name,
                    details={"before": user.language, "after": language, "at": now.isoformat()})
        return True

    # -- sessions ------------------------------------------------------------------------------
    def open_session(self, user: User, now: datetime) -> tuple[str, Session]:
        secret = secrets.token_urlsafe(32)
        session = Session(user=user.name, csrf=secrets.token_urlsafe(32), created=now, seen=now,
                          expires=self._session_expiry(now, now))
        self.store.save_session(secret_sha256(secret), session)
        return secret, session

    def session(self, secret: str, now: datetime) -> tuple[User, Session] | None:
        """The session's user, refreshing its idle deadline; None if unknown, expired or disabled."""
        digest = secret_sha256(secret)
        session = self.store.session(digest)
        if session is None or session.expires <= now:
            return None
        user = self.store.user(session.user)
        if user is None or user.disabled is not None:
            return None
        if now - session.seen >= _USED_EVERY:
            self.store.touch_session(digest, now, self._session_expiry(session.created, now))
        return user, session

    def close_session(self, secret: str) -> None:
        self.store.delete_session(secret_sha256(secret))

    def _session_expiry(self, created: datetime, now: datetime) -> datetime:
        return min(now + self.policy.session_idle, created + self.policy.session_max)

    # -- keys ----------------------------------------------------------------------------------
    def create_key(self, *, kind: str, name: str, tenant: str, role: Role, actor: str, now: datetime,
                   expires: datetime | None = None) -> tuple[str, ApiKey]:
        """A new key and its secret, shown this once."""
        if kind not in KEY_PREFIXES:
            raise IdentityError(f"kind: one of {', '.join(KEY_PREFIXES)}")
        if expires is not None and expires <= now:
            raise IdentityError("expires: must be in the future")
        secret = KEY_PREFIXES[kind] + secrets.token_urlsafe(32)
        key = ApiKey(id="key_" + secrets.token_hex(8), kind=kind, name=name, tenant=tenant, role=role,
                     created_by=actor, created=now, expires=expires, revoked=None, used=None)
        self.store.save_key(key, secret_sha256(secret))
        self._audit(actor=actor, tenant=tenant, action="key.create", object_type="api_key", object_id=key.id,
                    details={"kind": kind, "name": name, "role": role.value,
                             "expires": expires.isoformat() if expires else None})
        return secret, key

    def authenticate_key(self, secret: str, now: datetime, *, kinds: frozenset[str]) -> ApiKey | None:
        """The key of `secret` if it is of one of `kinds`, not revoked and not expired."""
        if not secret.startswith(tuple(KEY_PREFIXES[k] for k in kinds)):
            return None
        key = self.store.key_by_hash(secret_sha256(secret))
        if key is None or key.kind not in kinds or not key.is_valid_at(now):
            return None
        if key.kind != "enrollment" and (key.used is None or now - key.used >= _USED_EVERY):
            self.store.use_key(key.id, now, once=False)
        return key

    def revoke_key(self, key_id: str, actor: str, now: datetime) -> bool:
        key = self.store.key(key_id)
        if key is None or not self.store.revoke_key(key_id, now):
            return False
        self._audit(actor=actor, tenant=key.tenant, action="key.revoke", object_type="api_key", object_id=key_id,
                    details={"kind": key.kind, "name": key.name})
        return True

    def enroll(self, enrollment_secret: str, now: datetime) -> tuple[str, ApiKey] | None:
        """Trade a one-time enrollment token for the sensor's own token; None if it is spent or unknown."""
        ticket = self.authenticate_key(enrollment_secret, now, kinds=frozenset({"enrollment"}))
        if ticket is None or not self.store.use_key(ticket.id, now, once=True):
            return None
        secret, key = self.create_key(kind="sensor", name=ticket.name, tenant=ticket.tenant, role=Role.SENSOR,
                                      actor=f"enrollment:{ticket.id}", now=now)
        self._audit(actor=ticket.name, tenant=ticket.tenant, action="sensor.enroll", object_type="sensor",
                    object_id=ticket.name, details={"enrollment": ticket.id, "key": key.id})
        return secret, key


def _with_hash(user: User, password_hash: str) -> User:
    return User(user.name, user.tenant, user.role, password_hash, user.language, user.timezone, user.created,
                user.disabled)
