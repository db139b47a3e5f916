"""Authentication: JWT issue/verify (HS256 only), the auth middleware, client addresses, login throttling.

Tokens carry `sub`, `iat`, `exp`, `jti`, `iss` (and `role` for other services' convenience); the
HMAC key is the UTF-8 bytes of `auth.jwt_secret`. The user is looked up on every request, so a
deleted user's token stops working at once and role changes apply immediately.
"""

from __future__ import annotations

import ipaddress
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

import falcon
import jwt

from api import session as console_session
from api.errors import ApiError
from controller.actor import Actor
from controller.config import Settings
from controller.errors import Throttled
from controller.store import Store
from controller.store.models import User

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "iat", "exp", "jti", "iss"]


class Tokens:
    def __init__(self, key: bytes, issuer: str, ttl_minutes: int) -> None:
        self._key = key
        self.issuer = issuer
        self.ttl = timedelta(minutes=ttl_minutes)

    def issue(self, user: User) -> str:
        now = datetime.now(UTC)
        claims = {
            "sub": user.id, "iat": now, "exp": now + self.ttl, "jti": str(uuid.uuid4()), "iss": self.issuer,
            "role": user.role,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid token; raises jwt.InvalidTokenError (any kind) otherwise."""
        return jwt.decode(token, self._key, algorithms=[ALGORITHM], issuer=self.issuer,
                          options={"require": REQUIRED_CLAIMS})


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


class LoginThrottle:
    """Sliding-window failure counts per email and per client address (in this process's memory)."""

    MAX_KEYS = 10_000

    def __init__(self, per_email: int, per_address: int, window_seconds: int) -> None:
        self.limits = {"email": per_email, "address": per_address}
        self.window = window_seconds
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def check(self, email: str, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            for kind, value in (("email", email.lower()), ("address", address)):
                times = self._recent((kind, value), now)
                if len(times) >= self.limits[kind]:
                    retry_after = max(1, int(times[0] + self.window - now + 0.999))
                    raise Throttled("too many failed logins; try again later", retry_after)

    def failed(self, email: str, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > self.MAX_KEYS:  # bound memory under a spray of distinct keys
                for key in list(self._failures):
                    self._recent(key, now)
            for key in (("email", email.lower()), ("address", address)):
                self._recent(key, now)
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, email: str) -> None:
        with self._lock:
            self._failures.pop(("email", email.lower()), None)


class AuthMiddleware:
    """Resolves the bearer token to an Actor on `req.context.actor`; public resources skip it."""

    def __init__(self, tokens: Tokens, store: Store, addresses: ClientAddress) -> None:
        self.tokens = tokens
        self.store = store
        self.addresses = addresses

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.client_ip = self.addresses.of(req)
        req.context.actor = Actor(user_id=None, role="anonymous", ip_address=req.context.client_ip)

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: object,
                         params: dict[str, Any]) -> None:
        if resource is None or getattr(resource, "public", False):
            return
        header = req.get_header("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            token = session_cookie_token(req)
        try:
            claims = self.tokens.verify(token.strip())
        except jwt.ExpiredSignatureError:
            raise _unauthorized("token expired") from None
        except jwt.InvalidTokenError:
            raise _unauthorized("invalid token") from None
        with self.store.read() as session:
            user = session.get(User, str(claims["sub"]))
            if user is None:
                raise _unauthorized("invalid token")
            req.context.actor = Actor(user_id=user.id, role=user.role, ip_address=req.context.client_ip)
        req.context.user_id = user.id


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


def build(settings: Settings, store: Store) -> tuple[Tokens, AuthMiddleware, LoginThrottle]:
    tokens = Tokens(settings.jwt_key(), settings.auth.issuer, settings.auth.token_ttl_minutes)
    middleware = AuthMiddleware(tokens, store, ClientAddress(settings.server.trusted_proxies))
    throttle = LoginThrottle(settings.auth.login_max_failures, settings.auth.login_max_failures_per_address,
                             settings.auth.login_window_seconds)
    return tokens, middleware, throttle
