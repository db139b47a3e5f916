"""Users: registration, password checks (argon2id), the bootstrap admin, lookups."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.orm import Session

from controller import audit
from controller.actor import SYSTEM, Actor
from controller.errors import Conflict, Forbidden, Unauthorized
from controller.specs import RegisterRequest
from controller.store.models import User

BAD_CREDENTIALS = "invalid email or password"


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


def find_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email.strip().lower()))


def get(session: Session, user_id: str) -> User | None:
    return session.get(User, user_id)


def register(
    session: Session, passwords: Passwords, request: RegisterRequest, actor: Actor,
    allow: bool = True, role: str = "user",
) -> User:
    if not allow:
        raise Forbidden("registration is closed on this server")
    email = request.email.lower()
    if session.scalar(select(User.id).where(User.email == email)):
        raise Conflict("a user with this email already exists")
    if session.scalar(select(User.id).where(func.lower(User.username) == request.username.lower())):
        raise Conflict("a user with this username already exists")
    user = User(username=request.username, email=email, password_hash=passwords.hash(request.password),
                role=role)
    session.add(user)
    session.flush()
    audit.record(session, actor, "register", "user", user.id,
                 {"username": user.username, "email": user.email}, owner_id=user.id, user_id=user.id)
    return user


def authenticate(session: Session, passwords: Passwords, email: str, password: str) -> User:
    user = find_by_email(session, email)
    if not passwords.verify(user.password_hash if user else None, password) or user is None:
        raise Unauthorized(BAD_CREDENTIALS)
    return user


def ensure_admin(session: Session, passwords: Passwords, email: str, password: str,
                 username: str | None = None) -> User:
    """Make sure this admin exists with this password (the bootstrap admin of config or demo)."""
    user = find_by_email(session, email)
    if user is None:
        name = username or email.split("@", 1)[0]
        if session.scalar(select(User.id).where(func.lower(User.username) == name.lower())):
            name = f"{name}-admin"
        user = User(username=name, email=email.lower(), password_hash=passwords.hash(password), role="admin")
        session.add(user)
        session.flush()
        audit.record(session, SYSTEM, "bootstrap_admin", "user", user.id, {"email": user.email},
                     owner_id=user.id)
        return user
    changed = user.role != "admin" or not passwords.verify(user.password_hash, password)
    if changed:
        user.role = "admin"
        user.password_hash = passwords.hash(password)
        audit.record(session, SYSTEM, "bootstrap_admin", "user", user.id, {"email": user.email},
                     owner_id=user.id)
    return user


IDENTITY_FIELDS = ("id", "username", "email", "role")


_IDENTITY = select(*(User.__table__.c[name] for name in IDENTITY_FIELDS)).where(User.id == bindparam("user_id"))


def identity(session: Session | Connection, user_id: str) -> dict[str, str] | None:
    """The user's public fields (id, username, email, role) with one Core query, for the per-request
    token check and /api/auth/me; None for a user that no longer exists. The statement is built once
    (SQLAlchemy then skips recomputing its cache key on every request)."""
    conn = session.connection() if isinstance(session, Session) else session
    row = conn.execute(_IDENTITY, {"user_id": user_id}).first()
    return dict(zip(IDENTITY_FIELDS, row, strict=True)) if row is not None else None
