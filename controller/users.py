"""Users: registration, login, password changes (argon2id), the bootstrap admin, lookups.

argon2 is slow on purpose, so it never runs inside a database transaction: the user is read in a
short read session, the hash is computed or checked with no transaction open, then a short write
transaction records the result. (A login flood used to hold SQLite's write lock through each
verify and stall every other write.) A registration or bootstrap that loses a race on the unique
email/username answers 409 (or re-reads), never a 500.

Emails are normalised the same way everywhere: surrounding whitespace stripped, Unicode NFKC (so a
full-width look-alike (U+FF41...) is the same account as `admin@…`), lower-cased.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controller import audit
from controller.account_specs import RegisterRequest
from controller.actor import SYSTEM, Actor
from controller.errors import Conflict, Forbidden, Invalid, Unauthorized
from controller.store import Store
from controller.store.models import User, utcnow
from controller.throttle import DbLoginThrottle

BAD_CREDENTIALS = "invalid email or password"
DISABLED = "this account is disabled"
MAX_EMAIL = 254
QUOTA_FIELDS = ("max_vms", "max_cpu_cores", "max_memory_mb", "max_disk_gb")


class AdminConflict(Exception):
    """auth.admin_email belongs to an account that is not an admin: pvem refuses to promote it."""


class Passwords:
    """argon2id hashing. A verify against a dummy hash for unknown emails keeps timing equal."""

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        self._dummy = self._hasher.hash("pvem-dummy-password")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False


def normalize_email(email: str) -> str:
    return unicodedata.normalize("NFKC", email.strip()).lower()


def find_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == normalize_email(email)))


def get(session: Session, user_id: str) -> User | None:
    return session.get(User, user_id)


def _taken(session: Session, email: str, username: str) -> str | None:
    if session.scalar(select(User.id).where(User.email == email)):
        return "a user with this email already exists"
    if session.scalar(select(User.id).where(func.lower(User.username) == username.lower())):
        return "a user with this username already exists"
    return None


def register(
    store: Store, passwords: Passwords, request: RegisterRequest, actor: Actor,
    allow: bool = True, quota: dict[str, int | None] | None = None,
) -> User:
    """A new user of role `user` with the default quota; 409 when the email or username is taken."""
    if not allow:
        raise Forbidden("registration is closed on this server")
    email = normalize_email(request.email)
    if len(email) > MAX_EMAIL:  # NFKC can lengthen a string (one ligature becomes several letters)
        raise Invalid(f"must be at most {MAX_EMAIL} characters once normalised", field="email")
    with store.read() as session:
        problem = _taken(session, email, request.username)
    if problem:
        raise Conflict(problem)
    password_hash = passwords.hash(request.password)  # no transaction open
    try:
        with store.write() as session:
            problem = _taken(session, email, request.username)
            if problem:
                raise Conflict(problem)
            user = User(username=request.username, email=email, password_hash=password_hash, role="user",
                        **{key: (quota or {}).get(key) for key in QUOTA_FIELDS})
            session.add(user)
            session.flush()
            audit.record(session, actor, "register", "user", user.id,
                         {"username": user.username, "email": user.email}, owner_id=user.id, user_id=user.id)
    except IntegrityError:  # raced by another request or replica between the check and the insert
        raise Conflict("a user with this email or username already exists") from None
    return user


def redacted_email(email: str, pepper: bytes) -> dict[str, str]:
    """An unknown email as audit may keep it: first character and domain, plus a keyed hash to correlate."""
    normal = normalize_email(email)
    local, at, domain = normal.partition("@")
    shown = f"{local[:1]}***{at}{domain}" if at else f"{local[:1]}***"
    digest = hmac.new(pepper, f"audit-email:{normal}".encode(), hashlib.sha256).hexdigest()[:16]
    return {"email": shown, "email_hash": digest}


def login(store: Store, passwords: Passwords, throttle: DbLoginThrottle, email: str, password: str,
          actor: Actor, pepper: bytes) -> User:
    """Throttled login: reserve an attempt, check the password outside any transaction, record."""
    normal = normalize_email(email)
    reservation = throttle.reserve(normal, actor.ip_address or "")
    with store.read() as session:
        user = find_by_email(session, normal)
        user_id, stored = (user.id, user.password_hash) if user else (None, None)
        disabled = bool(user and user.disabled)
    ok = passwords.verify(stored, password)  # no transaction open
    with store.write() as session:
        if ok and user_id is not None:
            details: dict[str, Any] = {"email": normal}
            if disabled:
                details["reason"] = "disabled"
            audit.record(session, actor, "login_failed" if disabled else "login", "user", user_id, details,
                         owner_id=user_id, user_id=None if disabled else user_id)
        else:
            details = {"email": normal} if user_id else redacted_email(email, pepper)
            audit.record(session, actor, "login_failed", "user", user_id, details, owner_id=user_id)
    if not ok or user is None:
        raise Unauthorized(BAD_CREDENTIALS)  # the reservation stands: this failure counts
    throttle.release(reservation)
    if disabled:
        raise Forbidden(DISABLED)
    return user


def change_password(store: Store, passwords: Passwords, actor: Actor, current: str, new: str) -> User:
    """Checks the current password, sets the new one and revokes every token issued before now."""
    if actor.token_id is not None:
        raise Forbidden("API tokens cannot change a password; log in with the password")
    if actor.user_id is None:
        raise Unauthorized("not logged in")
    with store.read() as session:
        user = session.get(User, actor.user_id)
        stored = user.password_hash if user else None
    if user is None or not passwords.verify(stored, current):
        raise Forbidden("current_password is wrong")
    new_hash = passwords.hash(new)
    with store.write() as session:
        user = session.get(User, actor.user_id)
        if user is None:
            raise Unauthorized("not logged in")
        user.password_hash = new_hash
        user.tokens_valid_after = utcnow()
        audit.record(session, actor, "change_password", "user", user.id, {"email": user.email},
                     owner_id=user.id)
    return user


def _admin_ready(session: Session, passwords_ok: Callable[[str], bool], new_hash: Callable[[], str],
                 email: str, username: str | None) -> User:
    user = find_by_email(session, email)
    if user is None:
        name = username or email.split("@", 1)[0]
        if session.scalar(select(User.id).where(func.lower(User.username) == name.lower())):
            name = f"{name}-admin"
        user = User(username=name, email=normalize_email(email), password_hash=new_hash(), role="admin")
        session.add(user)
        session.flush()
        audit.record(session, SYSTEM, "bootstrap_admin", "user", user.id, {"email": user.email},
                     owner_id=user.id)
        return user
    if user.role != "admin":
        raise AdminConflict(f"auth.admin_email {user.email} belongs to an existing non-admin account; "
                            "refusing to promote it (choose another admin_email, or make that user an admin)")
    if not passwords_ok(user.password_hash):
        user.password_hash = new_hash()
        audit.record(session, SYSTEM, "bootstrap_admin", "user", user.id, {"email": user.email},
                     owner_id=user.id)
    return user


def ensure_admin(session: Session, passwords: Passwords, email: str, password: str,
                 username: str | None = None) -> User:
    """Make sure this admin exists with this password, in the caller's session (tests, tools).

    An existing non-admin account with this email is never promoted: AdminConflict.
    """
    return _admin_ready(session, lambda stored: passwords.verify(stored, password),
                        lambda: passwords.hash(password), email, username)


def bootstrap_admin(store: Store, passwords: Passwords, email: str, password: str,
                    username: str | None = None) -> User:
    """The start-up admin of config or demo: hashes outside the transaction, survives a concurrent start."""
    with store.read() as session:
        existing = find_by_email(session, email)
        stored = existing.password_hash if existing else None
        if existing is not None and existing.role != "admin":
            raise AdminConflict(f"auth.admin_email {existing.email} belongs to an existing non-admin account; "
                                "refusing to promote it (choose another admin_email, or make that user an admin)")
    matches = stored is not None and passwords.verify(stored, password)
    new_hash = passwords.hash(password) if not matches else stored or ""
    for _attempt in range(3):
        try:
            with store.write() as session:
                return _admin_ready(session, lambda current: current == stored and matches, lambda: new_hash,
                                    email, username)
        except (IntegrityError, Conflict):  # another process created it at the same moment: read it again
            continue
    with store.read() as session:
        user = find_by_email(session, email)
        if user is None or user.role != "admin":
            raise AdminConflict(f"could not create the admin {email}")
        return user


def tokens_revoked_at(user: User) -> float | None:
    """`tokens_valid_after` as a POSIX timestamp (tokens issued before it are revoked), or None."""
    after = user.tokens_valid_after
    return after.astimezone(UTC).timestamp() if isinstance(after, datetime) else None


def set_tokens_valid_after(session: Session, user_id: str) -> None:
    session.execute(update(User).where(User.id == user_id).values(tokens_valid_after=utcnow()))

IDENTITY_FIELDS = ("id", "username", "email", "role")


_IDENTITY = select(*(User.__table__.c[name] for name in IDENTITY_FIELDS)).where(User.id == bindparam("user_id"))


def identity(session: Session | Connection, user_id: str) -> dict[str, str] | None:
    """The user's public fields (id, username, email, role) with one Core query, for the per-request
    token check and /api/auth/me; None for a user that no longer exists. The statement is built once
    (SQLAlchemy then skips recomputing its cache key on every request)."""
    conn = session.connection() if isinstance(session, Session) else session
    row = conn.execute(_IDENTITY, {"user_id": user_id}).first()
    return dict(zip(IDENTITY_FIELDS, row, strict=True)) if row is not None else None
