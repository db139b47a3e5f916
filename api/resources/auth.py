"""`/api/auth/*`: register, login (throttled), who-am-I, logout, password change."""

from __future__ import annotations

from typing import Any

import falcon

from api.auth import Tokens
from api.resources import Op
from api.schemas import AuthOut, Envelope, LogoutOut, UserOut, envelope, user_dict
from api.validation import parse_body
from controller import tokens as api_tokens
from controller import users
from controller.account_specs import LoginRequest, PasswordChange, RegisterRequest
from controller.store import Store
from controller.throttle import DbLoginThrottle


class Register:
    public = True
    docs = {"POST": Op("Register a user (role user)", AuthOut, RegisterRequest, status=201, enveloped=False,
                       errors=(400, 403, 409))}

    def __init__(self, store: Store, tokens: Tokens, passwords: users.Passwords, allow: bool,
                 quota: dict[str, Any] | None = None) -> None:
        self.store, self.tokens, self.passwords, self.allow = store, tokens, passwords, allow
        self.quota = quota or {}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = parse_body(req, RegisterRequest)
        user = users.register(self.store, self.passwords, request, req.context.actor, allow=self.allow,
                              quota=self.quota)
        resp.media = {"token": self.tokens.issue(user), "user": user_dict(user)}
        resp.status = falcon.HTTP_201


class Login:
    public = True
    docs = {"POST": Op("Log in by email and password", AuthOut, LoginRequest, enveloped=False,
                       errors=(400, 401, 403, 429))}

    def __init__(self, store: Store, tokens: Tokens, passwords: users.Passwords,
                 throttle: DbLoginThrottle, pepper: bytes) -> None:
        self.store, self.tokens, self.passwords, self.throttle = store, tokens, passwords, throttle
        self.pepper = pepper

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = parse_body(req, LoginRequest)
        user = users.login(self.store, self.passwords, self.throttle, request.email, request.password,
                           req.context.actor, self.pepper)
        resp.media = {"token": self.tokens.issue(user), "user": user_dict(user)}


class Me:
    docs = {"GET": Op("The authenticated user", Envelope[UserOut])}

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = envelope(req.context.user)  # read with the credential (api.auth): no second query


class Logout:
    any_scope = True  # revoking the token you hold is always allowed, even with a read-scope token
    docs = {"POST": Op("Revoke the token this request carries (a login JWT, or an API token)",
                       Envelope[LogoutOut], errors=(401,))}

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.store.write() as session:
            api_tokens.logout(session, req.context.actor)
        resp.media = envelope({"revoked": True}, "Logged out: this token no longer works")


class Password:
    docs = {"PUT": Op("Change the password (needs the current one); revokes every token issued before",
                      Envelope[AuthOut], PasswordChange, errors=(400, 401, 403))}

    def __init__(self, store: Store, tokens: Tokens, passwords: users.Passwords) -> None:
        self.store, self.tokens, self.passwords = store, tokens, passwords

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = parse_body(req, PasswordChange)
        user = users.change_password(self.store, self.passwords, req.context.actor, request.current_password,
                                     request.new_password)
        resp.media = envelope({"token": self.tokens.issue(user), "user": user_dict(user)},
                              "Password changed; every token issued before now is revoked")
