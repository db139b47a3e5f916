"""The browser console's session: an HttpOnly, SameSite=Strict cookie holding a pvem JWT, and its CSRF token.

The cookie holds the same kind of token `POST /api/auth/login` answers, so everything that checks a
token (expiry, the user still existing, revocation) applies to the console unchanged. The CSRF token
is an HMAC of that token (keyed by the token itself): unguessable without the cookie, which pages
cannot read, and the same for the whole session, so no server-side state is needed. It is required
on every unsafe request the cookie authenticates: console forms (`csrf_token` field) and `/api`
calls (`X-CSRF-Token` header).
"""

from __future__ import annotations

import hashlib
import hmac

import falcon

COOKIE = "pvem_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def cookie_token(req: falcon.Request) -> str | None:
    """The session cookie's token, or None."""
    values = req.get_cookie_values(COOKIE) or []
    token = next((value.strip() for value in values if value.strip()), None)
    return token


def csrf_for(token: str) -> str:
    return hmac.new(token.encode(), b"pvem-console-csrf", hashlib.sha256).hexdigest()


def csrf_ok(token: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_for(token), str(presented))


def set_cookie(req: falcon.Request, resp: falcon.Response, token: str, max_age: int) -> None:
    resp.set_cookie(COOKIE, token, max_age=max_age, path="/", secure=req.scheme == "https", http_only=True,
                    same_site="Strict")


def clear_cookie(req: falcon.Request, resp: falcon.Response) -> None:
    resp.unset_cookie(COOKIE, path="/", same_site="Strict")
