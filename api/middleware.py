"""Request plumbing: request ids, one structured log line and the HTTP metrics per request, security headers,
body size limits."""

from __future__ import annotations

import time
import uuid

import falcon
import structlog

from api.errors import ApiError
from controller import metrics
from controller.log import get_logger

log = get_logger("pvem.access")
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


class RequestContext:
    """Binds a request id (X-Request-ID in, or a new one) and logs method, path, status, duration, user."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        incoming = (req.get_header("X-Request-ID") or "")[:64]
        req.context.request_id = incoming if incoming.isprintable() and incoming else uuid.uuid4().hex
        req.context.started = time.perf_counter()
        req.context.user_id = None
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=req.context.request_id)
        resp.set_header("X-Request-ID", req.context.request_id)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: object,
                         req_succeeded: bool) -> None:
        started = getattr(req.context, "started", None)
        elapsed = time.perf_counter() - started if started else 0.0
        duration_ms = round(elapsed * 1000, 2) if started else None
        # The route template (`/api/vms/{vm_id}`), never the raw path: ids must not become label values.
        method = req.method if req.method in _METHODS else "other"
        metrics.observe_http(method, req.uri_template or "unmatched", resp.status_code, elapsed)
        log.info("request", method=req.method, path=req.path, status=resp.status_code,
                 duration_ms=duration_ms, user_id=getattr(req.context, "user_id", None),
                 client_ip=getattr(req.context, "client_ip", None))
        structlog.contextvars.clear_contextvars()


class BodyLimit:
    """413 for bodies over the limit, before anything reads them.

    waitress enforces the same limit (and de-chunks chunked bodies into a Content-Length first).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        length = req.content_length
        if length is not None and length > self.max_bytes:
            raise ApiError(413, f"request body too large: {length} bytes, the limit is {self.max_bytes}")


class SecurityHeaders:
    """`X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer` on every answer;
    `Cache-Control: no-store` on every answer of an authenticated resource and on the token-bearing
    auth answers (login, register), so no cache or proxy keeps a token or a user's data."""

    NO_STORE_PREFIXES = ("/api/auth/", "/api/tokens")

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: object,
                         req_succeeded: bool) -> None:
        resp.set_header("X-Content-Type-Options", "nosniff")
        if not resp.get_header("Referrer-Policy"):  # the console's pages set same-origin (its Origin checks)
            resp.set_header("Referrer-Policy", "no-referrer")
        authenticated = resource is not None and not getattr(resource, "public", False)
        if (authenticated or req.path.startswith(self.NO_STORE_PREFIXES)) and not resp.get_header("Cache-Control"):
            resp.set_header("Cache-Control", "no-store")
