"""Authentication: JWT issue/verify (HS256 only), API tokens, revocation, the auth middleware, client addresses.

Tokens carry `sub`, `iat`, `exp`, `jti`, `iss` (and `role` for other services' convenience); the
HMAC key is the UTF-8 bytes of `auth.jwt_secret`. API tokens (`pvem_...`) are opaque and looked up
by their SHA-256. The user is looked up on every request, so a deleted or disabled user's token
stops working at once, role changes apply immediately, and revocation (logout, password change)
holds on every replica. Login throttling lives in `controller.throttle` (the database).
"""

from __future__ import annotations

import contextlib
import ipaddress
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import falcon
import jwt
from sqlalchemy import bindparam, select

from api import session as console_session
from api.errors import ApiError
from controller import tokens as api_tokens
from controller import users
from controller.actor import Actor
from controller.config import Settings
from controller.store import Store
from controller.store.models import ApiToken, RevokedToken, User, utcnow
from controller.throttle import DbLoginThrottle

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "iat", "exp", "jti", "iss"]


VERIFIED_CACHE_SIZE = 4096


class Tokens:
    """Issues and verifies login JWTs. A token whose signature and claims were verified once is
    remembered (by its exact text) until it expires, so repeat requests skip the HMAC and base64 work
    (~0.15 ms); expiry is still checked on every use, and revocation and the user are checked by the
    caller on every request as before."""

    def __init__(self, key: bytes, issuer: str, ttl_minutes: int) -> None:
        self._key = key
        self.issuer = issuer
        self.ttl = timedelta(minutes=ttl_minutes)
        self._verified: dict[str, dict[str, Any]] = {}
        self._verified_lock = threading.Lock()

    def issue(self, user: User) -> str:
        # iat to the microsecond (RFC 7519 allows non-integer NumericDates): a password change revokes
        # the tokens issued before it, even within the same second, and none issued after it.
        now = round(time.time(), 6)
        claims = {
            "sub": user.id, "iat": now, "exp": now + self.ttl.total_seconds(), "jti": str(uuid.uuid4()),
            "iss": self.issuer, "role": user.role,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid token; raises jwt.InvalidTokenError (any kind) otherwise."""
        claims = self._verified.get(token)
        if claims is None:
            claims = jwt.decode(token, self._key, algorithms=[ALGORITHM], issuer=self.issuer,
                                options={"require": REQUIRED_CLAIMS})
            with self._verified_lock:
                if len(self._verified) >= VERIFIED_CACHE_SIZE:
                    self._verified.pop(next(iter(self._verified)), None)  # the oldest entry
                self._verified[token] = claims
        if float(claims["exp"]) <= time.time():  # as PyJWT decides it (no leeway)
            self._verified.pop(token, None)
            raise jwt.ExpiredSignatureError("Signature has expired")
        return dict(claims)


def _networks(entries: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(entry, strict=False) for entry in entries]


class ClientAddress:
    """The client's address: the peer, or X-Forwarded-For's nearest untrusted hop behind trusted proxies."""

    def __init__(self, trusted_proxies: list[str]) -> None:
        self._trusted = _networks(trusted_proxies)

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)

    def of(self, req: falcon.Request) -> str:
        peer = req.remote_addr or ""
        if not self._trusted or not self._is_trusted(peer):
            return peer
        hops = [hop.strip() for hop in (req.get_header("X-Forwarded-For") or "").split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop
        return hops[0] if hops else peer


def credentials_from(req: falcon.Request) -> str | None:
    """The credential a request carries: a bearer token (login JWT or `pvem_` API token), or None.

    The one place that reads credentials: another source (a browser session cookie) goes here.
    """
    header = req.get_header("Authorization") or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


_U, _R = User.__table__.c, RevokedToken.__table__.c
# A login JWT's user, and whether its jti was revoked (logout): one indexed query.
_JWT_USER = (select(_U.id, _U.username, _U.email, _U.role, _U.disabled, _U.tokens_valid_after, _R.jti)
             .select_from(User.__table__.outerjoin(RevokedToken.__table__, _R.jti == bindparam("jti")))
             .where(_U.id == bindparam("sub")))


class Authenticator:
    """A credential -> the acting user. One indexed query per request (the user row joined with the
    revoked-jti table, or the API token row joined with its user): no cache, so logout, password
    change, disabling and role changes hold at once on every replica."""

    def __init__(self, tokens: Tokens, store: Store) -> None:
        self.tokens = tokens
        self.store = store

    def authenticate(self, credential: str, ip_address: str | None) -> tuple[Actor, dict[str, Any]]:
        """(the acting user, their public profile: id, username, email, role), from the one query."""
        if api_tokens.looks_like_api_token(credential):
            return self._api_token(credential, ip_address)
        return self._jwt(credential, ip_address)

    def _jwt(self, credential: str, ip_address: str | None) -> tuple[Actor, dict[str, Any]]:
        try:
            claims = self.tokens.verify(credential)
        except jwt.ExpiredSignatureError:
            raise _unauthorized("token expired") from None
        except jwt.InvalidTokenError:
            raise _unauthorized("invalid token") from None
        jti = str(claims["jti"])
        with self.store.connect() as conn:  # Core, one cached statement: this runs on every request
            row = conn.execute(_JWT_USER, {"jti": jti, "sub": str(claims["sub"])}).first()
        if row is None:
            raise _unauthorized("invalid token")
        user_id, username, email, role, disabled, valid_after, revoked = row
        if revoked is not None or (valid_after is not None and float(claims["iat"]) < valid_after.timestamp()):
            raise _unauthorized("token revoked")
        if disabled:
            raise _unauthorized(users.DISABLED)
        return (Actor(user_id=user_id, role=role, ip_address=ip_address, jti=jti, token_expires=float(claims["exp"])),
                {"id": user_id, "username": username, "email": email, "role": role})

    def _api_token(self, credential: str, ip_address: str | None) -> tuple[Actor, dict[str, Any]]:
        query = (select(ApiToken, User).join(User, User.id == ApiToken.user_id)
                 .where(ApiToken.token_hash == api_tokens.hash_secret(credential)))
        with self.store.read() as session:
            row = session.execute(query).first()
        if row is None:
            raise _unauthorized("invalid token")
        token, user = row
        now = utcnow()
        if token.expires_at is not None and token.expires_at <= now:
            raise _unauthorized("token expired")
        valid_after = users.tokens_revoked_at(user)
        if valid_after is not None and token.created_at.timestamp() < valid_after:
            raise _unauthorized("token revoked")
        if user.disabled:
            raise _unauthorized(users.DISABLED)
        if token.last_used_at is None or token.last_used_at < now - api_tokens.LAST_USED_PRECISION:
            with self.store.write() as session:
                api_tokens.touch(session, token.id, now)
        return (Actor(user_id=user.id, role=user.role, ip_address=ip_address, token_id=token.id,
                      token_name=token.name, scope=token.scope),
                {"id": user.id, "username": user.username, "email": user.email, "role": user.role})


class AuthMiddleware:
    """Resolves the request's credential to an Actor on `req.context.actor`; public resources skip it
    (those with `optional_auth` use a valid credential when one comes). A `read` API token may only
    read; resources with `any_scope` (logout) accept it for writes too."""

    def __init__(self, authenticator: Authenticator, addresses: ClientAddress) -> None:
        self.authenticator = authenticator
        self.addresses = addresses

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.client_ip = self.addresses.of(req)
        req.context.actor = Actor(user_id=None, role="anonymous", ip_address=req.context.client_ip)

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: object,
                         params: dict[str, Any]) -> None:
        if resource is None:
            return
        credential = credentials_from(req)
        if getattr(resource, "public", False):
            if credential and getattr(resource, "optional_auth", False):
                with contextlib.suppress(ApiError):  # a bad credential here is just no credential
                    req.context.actor, req.context.user = self.authenticator.authenticate(
                        credential, req.context.client_ip)
            return
        if credential is None:
            credential = session_cookie_token(req)  # the console's browser session (401 without one)
        actor, req.context.user = self.authenticator.authenticate(credential, req.context.client_ip)
        if actor.scope == "read" and req.method not in SAFE_METHODS and not getattr(resource, "any_scope", False):
            raise ApiError(403, "this API token has scope read: it may only read")
        req.context.actor = actor
        req.context.user_id = actor.user_id


def session_cookie_token(req: falcon.Request) -> str:
    """The console's session cookie as the alternative to a bearer header (EventSource cannot send headers);
    unsafe methods must then carry its CSRF token in X-CSRF-Token."""
    token = console_session.cookie_token(req)
    if token is None:
        raise _unauthorized("missing bearer token")
    if req.method not in console_session.SAFE_METHODS and \
            not console_session.csrf_ok(token, req.get_header(console_session.CSRF_HEADER)):
        raise ApiError(403, "missing or invalid CSRF token (send the console's X-CSRF-Token header)")
    return token


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": "Bearer"})


def build(settings: Settings, store: Store) -> tuple[Tokens, AuthMiddleware, DbLoginThrottle]:
    tokens = Tokens(settings.jwt_key(), settings.auth.issuer, settings.auth.token_ttl_minutes)
    middleware = AuthMiddleware(Authenticator(tokens, store), ClientAddress(settings.server.trusted_proxies))
    throttle = DbLoginThrottle(store, settings.jwt_key(), settings.auth.login_max_failures,
                               settings.auth.login_max_failures_per_address, settings.auth.login_window_seconds)
    return tokens, middleware, throttle
