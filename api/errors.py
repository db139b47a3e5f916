"""One error shape for everything: `{"error": <message>, "code": <status>}` (plus optional extras).

Falcon's own errors (404 route, 405, 413, 415, malformed JSON), domain errors and unexpected
exceptions all leave through here. A 500 is logged with its request id; the client sees no trace.
"""

from __future__ import annotations

from typing import Any

import falcon

from controller import errors as domain
from controller.log import get_logger

log = get_logger("pvem.api")

_DOMAIN_STATUS: list[tuple[type[domain.DomainError], int]] = [
    (domain.NotFound, 404),
    (domain.Conflict, 409),
    (domain.Forbidden, 403),
    (domain.Unauthorized, 401),
    (domain.Invalid, 400),
    (domain.Throttled, 429),
    (domain.Unavailable, 503),
]


class ApiError(falcon.HTTPError):
    """An HTTP error with a message and optional extra fields in the body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(falcon.code_to_http_status(status), description=message, headers=headers)
        self.extra = extra


def error_body(status: int, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": message, "code": status, **extra}


def serialize_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    status = exc.status_code
    if isinstance(exc, falcon.HTTPRouteNotFound):
        message = f"no such endpoint: {req.method} {req.path}"
    elif isinstance(exc, falcon.HTTPMethodNotAllowed):
        message = f"method {req.method} is not allowed on {req.path}"
    else:
        message = exc.description or exc.title or falcon.code_to_http_status(status)
    extra = getattr(exc, "extra", {}) or {}
    resp.content_type = falcon.MEDIA_JSON
    resp.media = error_body(status, message, **extra)
    resp.complete = False


def handle_domain_error(req: falcon.Request, resp: falcon.Response, exc: domain.DomainError,
                        params: dict[str, Any]) -> None:
    status = next((code for kind, code in _DOMAIN_STATUS if isinstance(exc, kind)), 400)
    headers: dict[str, str] = {}
    if isinstance(exc, domain.Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    message = exc.message
    if isinstance(exc, domain.Throttled):
        headers["Retry-After"] = str(exc.retry_after)
        seconds = exc.retry_after
        when = f"in {seconds} second{'s' if seconds != 1 else ''}"
        message = message.replace("try again later", f"try again {when}") if "try again later" in message \
            else f"{message.rstrip('.')} (retry {when})"
    extra: dict[str, Any] = {}
    if isinstance(exc, domain.QuotaExceeded):
        extra["quota"] = exc.quota
    if isinstance(exc, domain.Invalid):
        if exc.field:
            extra["field"] = exc.field
        extra.update(exc.extra)
    raise ApiError(status, message, headers=headers, **extra)


def handle_unexpected(req: falcon.Request, resp: falcon.Response, exc: Exception,
                      params: dict[str, Any]) -> None:
    request_id = getattr(req.context, "request_id", None)
    log.error("unhandled_exception", request_id=request_id, method=req.method, path=req.path, exc_info=exc)
    raise ApiError(500, "internal server error", request_id=request_id)


def install(app: falcon.App) -> None:
    app.set_error_serializer(serialize_error)
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(domain.DomainError, handle_domain_error)
