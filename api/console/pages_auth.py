"""Log in, register and log out: the console's session cookie is set from the API's own login answer."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import falcon

from api import session as console_session
from api.console.base import Page, Refused, apply_security_headers, local_path


def _same_origin(req: falcon.Request) -> bool:
    """A pre-session form post (no CSRF token yet) must come from a page of this origin."""
    origin = req.get_header("Origin")
    if not origin or origin == "null":
        return origin is None
    return urlparse(origin).netloc == (req.get_header("Host") or "")


class _Entry(Page):

    def _signed_in(self, req: falcon.Request, resp: falcon.Response, token: str, next_path: str) -> None:
        console_session.set_cookie(req, resp, token, int(self.context.get("session_max_age", 3600)))
        self.redirect(resp, local_path(next_path))

    def _refuse_cross_origin(self, req: falcon.Request) -> None:
        if not _same_origin(req):
            raise Refused(403, "Cross-origin form post refused.")


class LoginPage(_Entry):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.session(req) is not None:
            self.redirect(resp, local_path(req.get_param("next")))
            return
        self.render(req, resp, "login.html", None, next=local_path(req.get_param("next")), email="")

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._refuse_cross_origin(req)
        form = self.form(req)
        email, password = str(form.get("email") or ""), str(form.get("password") or "")
        answer = self.api.call(req, "POST", "/api/auth/login", None, body={"email": email, "password": password})
        next_path = local_path(form.get("next"))
        if answer.ok and isinstance(answer.body, dict) and answer.body.get("token"):
            self._signed_in(req, resp, str(answer.body["token"]), next_path)
            return
        message = "Wrong email or password." if answer.status in (400, 401) else answer.error
        self.render(req, resp, "login.html", None, status=answer.status, next=next_path, email=email,
                    login_error=message)


class RegisterPage(_Entry):
    FIELDS = ("username", "email")

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.render(req, resp, "register.html", None, values={}, errors={})

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._refuse_cross_origin(req)
        form = self.form(req)
        if not self.context.get("allow_registration"):
            self.render(req, resp, "register.html", None, status=403, values={}, errors={})
            return
        body = {"username": str(form.get("username") or ""), "email": str(form.get("email") or ""),
                "password": str(form.get("password") or "")}
        answer = self.api.call(req, "POST", "/api/auth/register", None, body=body)
        if answer.ok and isinstance(answer.body, dict) and answer.body.get("token"):
            self._signed_in(req, resp, str(answer.body["token"]), "/")
            return
        errors: dict[str, Any] = {}
        for problem in answer.details or [{"field": answer.field or "form", "message": answer.error}]:
            errors.setdefault(str(problem.get("field") or "form"), problem.get("message") or answer.error)
        if answer.status != 400:
            errors = {"form": answer.error}
        values = {key: body[key] for key in self.FIELDS}
        self.render(req, resp, "register.html", None, status=answer.status, values=values, errors=errors)


class Logout(Page):
    """Ends the session: `POST /api/auth/logout` with the session's token revokes it server-side (a copied
    cookie stops working too), then the cookie is cleared."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        token = console_session.cookie_token(req)
        form = self.form(req)
        presented = form.get(console_session.CSRF_FIELD) or req.get_header(console_session.CSRF_HEADER)
        if token is not None:
            if not console_session.csrf_ok(token, presented):
                raise Refused(403, "Missing or invalid CSRF token; reload the page and try again.")
            self.api.call(req, "POST", "/api/auth/logout", token)  # an already-invalid token: nothing to revoke
        console_session.clear_cookie(req, resp)
        apply_security_headers(resp)
        self.redirect(resp, "/login?notice=Logged+out")
