"""What every console page shares: the session check, CSRF, rendering with security headers, redirects."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlparse

import falcon
import jinja2

from api import session as console_session
from api.console.internal import Answer, InternalApi

TEMPLATES = Path(__file__).with_name("templates")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def apply_security_headers(resp: falcon.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        resp.set_header(name, value)


def _pct(value: Any) -> str:
    try:
        return f"{float(value):.1f}"
    except (TypeError, ValueError):
        return "-"


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(", ", ": "), default=str)


def make_env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.ChainableUndefined)
    env.filters["pct"] = _pct
    env.filters["compact"] = _compact
    env.globals["vm_buttons"] = vm_buttons
    env.globals["ip_text"] = ip_text
    return env


# Row buttons by the VM's desired power state: (label, API action).
BUTTONS = (("Start", "start"), ("Stop", "stop"), ("Restart", "restart"), ("Pause", "pause"), ("Resume", "unpause"))
APPLIES = {"start": ("stopped",), "stop": ("running", "paused"), "restart": ("running",), "pause": ("running",),
           "unpause": ("paused",)}


def vm_buttons(vm: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(label, action, applies) for each power button; none applies to a VM being deleted."""
    deleting = vm.get("sync_status") == "deleting"
    return [(label, action, not deleting and vm.get("power_state") in APPLIES[action]) for label, action in BUTTONS]


def ip_text(vm: dict[str, Any]) -> str:
    value = vm.get("ip_addresses")
    if not value:
        return ""
    if isinstance(value, dict):
        value = [item for items in value.values() for item in (items if isinstance(items, list) else [items])]
    if isinstance(value, list):
        return ", ".join(str(item.get("address", item)) if isinstance(item, dict) else str(item) for item in value)
    return str(value)


class Refused(Exception):
    """A console request refused before it reached the API (CSRF, cross-origin): answered as an HTML page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def refused_handler(env: jinja2.Environment) -> Any:
    def handle(req: falcon.Request, resp: falcon.Response, exc: Refused, params: dict[str, Any]) -> None:
        resp.status = falcon.code_to_http_status(exc.status)
        resp.content_type = "text/html; charset=utf-8"
        resp.set_header("Cache-Control", "no-store")
        apply_security_headers(resp)
        resp.text = env.get_template("error.html").render(session=None, user=None, csrf="", path=req.path,
                                                          message=exc.message)
    return handle


@dataclass
class Session:
    token: str
    user: dict[str, Any]
    csrf: str

    @property
    def is_admin(self) -> bool:
        return self.user.get("role") == "admin"


def local_path(candidate: str | None, default: str = "/") -> str:
    """A same-origin path to go back to (never another host, never a scheme-relative URL)."""
    if not candidate or not candidate.startswith("/") or candidate.startswith("//") or "\\" in candidate:
        return default
    parsed = urlparse(candidate)
    if parsed.scheme or parsed.netloc:
        return default
    return candidate


def with_message(path: str, **messages: str | None) -> str:
    query = urlencode({key: value for key, value in messages.items() if value})
    if not query:
        return path
    base, _, fragment = path.partition("#")
    joined = f"{base}{'&' if '?' in base else '?'}{query}"
    return f"{joined}#{fragment}" if fragment else joined


class Page:
    """Base of console resources: public to the API's auth middleware; the console checks its own session."""

    public = True

    def __init__(self, api: InternalApi, env: jinja2.Environment, context: dict[str, Any]) -> None:
        self.api, self.env, self.context = api, env, context

    # --- session -----------------------------------------------------------------------------------
    def session(self, req: falcon.Request) -> Session | None:
        token = console_session.cookie_token(req)
        if token is None:
            return None
        me = self.api.call(req, "GET", "/api/auth/me", token)
        if not me.ok or not isinstance(me.data, dict):
            return None
        return Session(token, me.data, console_session.csrf_for(token))

    def require(self, req: falcon.Request) -> Session:
        sess = self.session(req)
        if sess is None:
            raise falcon.HTTPSeeOther(f"/login?next={quote(req.relative_uri, safe='')}")
        return sess

    def form(self, req: falcon.Request) -> dict[str, Any]:
        media_type = (req.content_type or "").split(";", 1)[0].strip().lower()
        if media_type != falcon.MEDIA_URLENCODED:
            return {}
        form = req.get_media() or {}
        return {key: (value[-1] if isinstance(value, list) else value) for key, value in form.items()}

    def require_write(self, req: falcon.Request) -> tuple[Session, dict[str, Any]]:
        """A logged-in session and its form, after the CSRF check (403 page otherwise)."""
        sess = self.require(req)
        form = self.form(req)
        presented = form.get(console_session.CSRF_FIELD) or req.get_header(console_session.CSRF_HEADER)
        if not console_session.csrf_ok(sess.token, presented):
            raise Refused(403, "Missing or invalid CSRF token; reload the page and try again.")
        return sess, form

    def call(self, req: falcon.Request, sess: Session | None, method: str, path: str, **kwargs: Any) -> Answer:
        return self.api.call(req, method, path, sess.token if sess else None, **kwargs)

    # --- answers -----------------------------------------------------------------------------------
    def render(self, req: falcon.Request, resp: falcon.Response, template: str, sess: Session | None,
               status: int = 200, **values: Any) -> None:
        page = self.env.get_template(template)
        resp.status = falcon.code_to_http_status(status)
        resp.content_type = "text/html; charset=utf-8"
        resp.set_header("Cache-Control", "no-store")
        apply_security_headers(resp)
        resp.text = page.render(session=sess, user=sess.user if sess else None,
                                csrf=sess.csrf if sess else "", path=req.path,
                                notice=req.get_param("notice"), error=req.get_param("error"),
                                **self.context, **values)

    @staticmethod
    def redirect(resp: falcon.Response, location: str) -> None:
        resp.status = falcon.HTTP_303
        resp.set_header("Location", location)
        apply_security_headers(resp)
        resp.text = ""

    def back(self, req: falcon.Request, resp: falcon.Response, form: dict[str, Any], answer: Answer,
             default: str, success: str) -> None:
        target = local_path(form.get("next"), default)
        if answer.ok:
            self.redirect(resp, with_message(target, notice=success))
        else:
            self.redirect(resp, with_message(target, error=answer.error))
