"""A small requests-based client for pvem's REST API: bearer auth, the envelope, typed errors.

Every failure becomes an `ApiError` carrying the HTTP status (None when no answer came), the
error body's `code` and message and the whole body, and the exit code the status maps to.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import requests

from api.client.errors import UNAVAILABLE, USAGE, CliError, UsageError, one_line

REQUEST_TIMEOUT = 30.0
# The server refused the input itself: a usage/input error (exit 2). Anything else is exit 3.
INPUT_STATUSES = frozenset({400, 413, 415, 422})


def exit_code_for_status(status: int | None) -> int:
    return USAGE if status in INPUT_STATUSES else UNAVAILABLE


class ApiError(CliError):
    def __init__(self, message: str, status: int | None, code: int | None = None, body: Any = None) -> None:
        super().__init__(message, exit_code_for_status(status))
        self.status = status
        self.code = code
        self.body = body


def normalise_server(url: str) -> str:
    """`host:8080`, `http://host:8080/`, `http://host:8080/api/` all become `http://host:8080`."""
    text = url.strip()
    if not text:
        raise UsageError("the server URL is empty")
    if "://" not in text:
        text = f"http://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"not an http(s) server URL: {url}")
    path = parts.path.rstrip("/")
    if path.endswith("/api"):
        path = path[: -len("/api")]
    return f"{parts.scheme}://{parts.netloc}{path}"


def _reason(exc: requests.RequestException) -> str:
    """The useful tail of a requests error ("Connection refused"), not urllib3's nested repr."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if found:
        return found.group(1).strip()
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error"
    return one_line(text)[:200] or type(exc).__name__


class ApiClient:
    def __init__(self, server: str, token: str | None = None, timeout: float = REQUEST_TIMEOUT,
                 session: requests.Session | None = None) -> None:
        self.server = normalise_server(server)
        self.token = token
        self.timeout = timeout
        self.session = session or requests.Session()

    def url(self, path: str) -> str:
        return f"{self.server}/api/{path.lstrip('/')}"

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, json_body: Any = None,
                headers: dict[str, str] | None = None, timeout: float | None = None) -> requests.Response:
        """Send one request; a non-2xx answer or no answer at all raises `ApiError`."""
        sent = {"Accept": "application/json", **(headers or {})}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        limit = min(self.timeout, timeout) if timeout is not None else self.timeout
        query = {key: value for key, value in (params or {}).items() if value is not None}
        try:
            resp = self.session.request(method, self.url(path), params=query, json=json_body, headers=sent,
                                        timeout=max(limit, 0.1))
        except requests.Timeout as exc:
            raise ApiError(f"{self.server}: no answer within {limit:g}s", None) from exc
        except requests.RequestException as exc:
            raise ApiError(f"cannot reach {self.server}: {_reason(exc)}", None) from exc
        if resp.status_code >= 400:
            raise self._error(resp)
        return resp

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The answer's envelope `data` (or the whole JSON body when it is not an envelope)."""
        resp = self.request(method, path, **kwargs)
        body = _json(resp)
        if body is None and resp.content:
            raise ApiError(f"{self.server}: the answer to {method} {path} is not JSON", resp.status_code)
        if isinstance(body, dict) and "data" in body and "success" in body:
            return body["data"]
        return body

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.call("GET", path, params=params)

    def _error(self, resp: requests.Response) -> ApiError:
        body = _json(resp)
        status = resp.status_code
        code = body.get("code") if isinstance(body, dict) and isinstance(body.get("code"), int) else None
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            message = body["error"]
        else:
            message = resp.reason or "error"
        if status == 401:
            message = (f"{self.server} rejected the credentials ({message}): "
                       f"log in with `pvem login --server {self.server}` or pass --token")
        else:
            message = f"{message} (HTTP {status})"
        return ApiError(message, status, code, body)


def _json(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None
