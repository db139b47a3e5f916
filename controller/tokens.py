"""API tokens for automation, and revocation of login JWTs (logout).

An API token is `pvem_` followed by 43 URL-safe characters (32 random bytes). Only its SHA-256 is
stored: the secret is high-entropy, so a fast hash is right (nothing to brute-force) and lookup is
one indexed equality. The token itself is shown once, in the answer that creates it.

Revocation lives in the database, so it survives restarts and holds on every API replica: logout
writes the JWT's `jti` to `revoked_tokens` (kept until the token would have expired anyway), a
password change sets the user's `tokens_valid_after`, and deleting an API token deletes its row.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controller import audit
from controller.account_specs import TokenCreate
from controller.actor import Actor
from controller.errors import Forbidden, NotFound, Unauthorized
from controller.store.models import ApiToken, RevokedToken, utcnow

PREFIX = "pvem_"
RESOURCE = "api_token"
LAST_USED_PRECISION = timedelta(seconds=60)  # last_used_at is written at most once a minute per token


def hash_secret(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def looks_like_api_token(token: str) -> bool:
    return token.startswith(PREFIX)


def create(session: Session, actor: Actor, spec: TokenCreate) -> tuple[ApiToken, str]:
    """A new token for the acting user: (row, the secret to show once)."""
    if actor.token_id is not None:
        raise Forbidden("API tokens cannot create tokens; log in with a password to create one")
    if actor.user_id is None:
        raise Unauthorized("not logged in")
    secret = PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    expires = now + timedelta(days=spec.expires_in_days) if spec.expires_in_days is not None else None
    row = ApiToken(user_id=actor.user_id, name=spec.name, scope=spec.scope, token_hash=hash_secret(secret),
                   created_at=now, expires_at=expires)
    session.add(row)
    session.flush()
    audit.record(session, actor, "create_api_token", RESOURCE, row.id,
                 {"name": row.name, "scope": row.scope, "expires_at": expires.isoformat() if expires else None},
                 owner_id=actor.user_id)
    return row, secret


def list_tokens(session: Session, actor: Actor) -> list[ApiToken]:
    query = select(ApiToken).where(ApiToken.user_id == actor.user_id).order_by(ApiToken.created_at)
    return list(session.scalars(query))


def delete_token(session: Session, actor: Actor, token_id: str) -> None:
    """Revokes one of the caller's tokens (admins: anyone's); another user's token is a 404."""
    row = session.get(ApiToken, token_id)
    if row is None or not (row.user_id == actor.user_id or actor.is_admin):
        raise NotFound("API token not found")
    audit.record(session, actor, "delete_api_token", RESOURCE, row.id, {"name": row.name, "scope": row.scope},
                 owner_id=row.user_id)
    session.delete(row)


def touch(session: Session, token_id: str, now: datetime) -> None:
    """Sets last_used_at, unless it was set less than a minute ago (one write a minute at most)."""
    session.execute(update(ApiToken).where(
        ApiToken.id == token_id,
        (ApiToken.last_used_at.is_(None)) | (ApiToken.last_used_at < now - LAST_USED_PRECISION),
    ).values(last_used_at=now))


def revoke_jwt(session: Session, actor: Actor, jti: str, expires: float) -> None:
    """Logout of a login JWT: its jti is refused from now on. Expired entries are dropped on the way."""
    now = utcnow()
    session.execute(delete(RevokedToken).where(RevokedToken.expires_at < now))
    try:
        with session.begin_nested():
            session.add(RevokedToken(jti=jti, expires_at=datetime.fromtimestamp(expires, UTC)))
            session.flush()
    except IntegrityError:  # already revoked (two logouts at once)
        pass
    audit.record(session, actor, "logout", "user", actor.user_id, {"jti": jti}, owner_id=actor.user_id)


def logout(session: Session, actor: Actor) -> None:
    """Revokes the token the request came with: a JWT's jti, or an API token's row."""
    if actor.token_id is not None:
        row = session.get(ApiToken, actor.token_id)
        if row is not None:
            audit.record(session, actor, "logout", "user", actor.user_id, {"name": row.name},
                         owner_id=actor.user_id)
            session.delete(row)
        return
    if actor.jti is None or actor.token_expires is None:
        raise Unauthorized("no token to revoke")
    revoke_jwt(session, actor, actor.jti, actor.token_expires)
