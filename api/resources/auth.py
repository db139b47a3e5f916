"""`/api/auth/*`: register, login (throttled), and who-am-I."""

from __future__ import annotations

import falcon

from api.auth import LoginThrottle, Tokens
from api.resources import Op
from api.schemas import AuthOut, Envelope, UserOut, envelope, user_dict
from api.validation import parse_body
from controller import audit, users
from controller.errors import Unauthorized
from controller.specs import LoginRequest, RegisterRequest
from controller.store import Store


class Register:
    public = True
    docs = {"POST": Op("Register a user (role user)", AuthOut, RegisterRequest, status=201, enveloped=False,
                       errors=(400, 403, 409))}

    def __init__(self, store: Store, tokens: Tokens, passwords: users.Passwords, allow: bool) -> None:
        self.store, self.tokens, self.passwords, self.allow = store, tokens, passwords, allow

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = parse_body(req, RegisterRequest)
        with self.store.write() as session:
            user = users.register(session, self.passwords, request, req.context.actor, allow=self.allow)
            resp.media = {"token": self.tokens.issue(user), "user": user_dict(user)}
        resp.status = falcon.HTTP_201


class Login:
    public = True
    docs = {"POST": Op("Log in by email and password", AuthOut, LoginRequest, enveloped=False,
                       errors=(400, 401, 429))}

    def __init__(self, store: Store, tokens: Tokens, passwords: users.Passwords,
                 throttle: LoginThrottle) -> None:
        self.store, self.tokens, self.passwords, self.throttle = store, tokens, passwords, throttle

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = parse_body(req, LoginRequest)
        actor = req.context.actor
        self.throttle.check(request.email, actor.ip_address or "")
        with self.store.write() as session:
            try:
                user = users.authenticate(session, self.passwords, request.email, request.password)
            except Unauthorized as exc:
                failure: Unauthorized | None = exc
                known = users.find_by_email(session, request.email)
                audit.record(session, actor, "login_failed", "user", known.id if known else None,
                             {"email": request.email.lower()}, owner_id=known.id if known else None)
            else:
                failure = None
                audit.record(session, actor, "login", "user", user.id, {"email": user.email},
                             owner_id=user.id, user_id=user.id)
                resp.media = {"token": self.tokens.issue(user), "user": user_dict(user)}
        # The failure is raised after the commit: a failed login is audited, not rolled back.
        if failure is not None:
            self.throttle.failed(request.email, actor.ip_address or "")
            raise failure
        self.throttle.succeeded(request.email)


class Me:
    docs = {"GET": Op("The authenticated user", Envelope[UserOut])}

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = getattr(req.context, "user", None)  # read by the auth middleware for this request
        if user is None:
            with self.store.read() as session:
                found = users.get(session, req.context.actor.user_id)
                user = user_dict(found) if found else None
        resp.media = envelope(user)
