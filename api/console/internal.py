"""In-process calls to the REST API: the console's only way to read or change anything.

A call is a WSGI request to the same Falcon app with the session's token as its bearer, the
browser's address (and X-Forwarded-For) and request id, so the API authenticates, validates,
authorises and audits it exactly as a call from outside.
"""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import falcon
import structlog


@dataclass
class Answer:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def data(self) -> Any:
        return self.body.get("data") if isinstance(self.body, dict) else None

    @property
    def error(self) -> str:
        if isinstance(self.body, dict) and self.body.get("error"):
            return str(self.body["error"])
        return f"HTTP {self.status}"

    @property
    def field(self) -> str | None:
        return self.body.get("field") if isinstance(self.body, dict) else None

    @property
    def details(self) -> list[dict[str, Any]]:
        details = self.body.get("details") if isinstance(self.body, dict) else None
        return details if isinstance(details, list) else []


class InternalApi:
    def __init__(self, app: falcon.App) -> None:
        self.app = app

    def call(self, req: falcon.Request, method: str, path: str, token: str | None, body: Any = None,
             query: dict[str, Any] | None = None, raw: bytes | None = None,
             content_type: str = "application/json") -> Answer:
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path,
            "QUERY_STRING": urlencode({k: v for k, v in (query or {}).items() if v not in (None, "")}),
            "SERVER_NAME": "pvem-console", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": req.remote_addr or "", "wsgi.version": (1, 0), "wsgi.url_scheme": req.scheme,
            "wsgi.input": io.BytesIO(payload), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
            "wsgi.multiprocess": False, "wsgi.run_once": False, "HTTP_ACCEPT": "application/json",
        }
        if payload:
            environ["CONTENT_TYPE"] = content_type
            environ["CONTENT_LENGTH"] = str(len(payload))
        if token:
            environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        forwarded = req.get_header("X-Forwarded-For")
        if forwarded:
            environ["HTTP_X_FORWARDED_FOR"] = forwarded
        request_id = getattr(req.context, "request_id", None)
        if request_id:
            environ["HTTP_X_REQUEST_ID"] = request_id
        status: list[str] = []

        def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(line)
            return lambda _data: None

        chunks = self.app(environ, start_response)
        try:
            raw_body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
        if request_id:  # the inner request cleared the log context; restore the outer request's
            structlog.contextvars.bind_contextvars(request_id=request_id)
        code = int(status[0].split(" ", 1)[0]) if status else 500
        try:
            parsed = json.loads(raw_body) if raw_body else None
        except ValueError:
            parsed = raw_body.decode("utf-8", "replace")
        return Answer(code, parsed)
