"""The API client: URL normalising, the envelope, and HTTP failures mapped to typed errors and exit codes."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
import requests

from api.client.errors import UNAVAILABLE, USAGE, UsageError
from api.client.http import ApiClient, ApiError, exit_code_for_status, normalise_server


def response(status: int, body: Any = None, raw: bytes | None = None, reason: str = "") -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp.reason = reason
    resp._content = raw if raw is not None else json.dumps(body).encode()
    return resp


class FakeSession:
    def __init__(self, answer: requests.Response) -> None:
        self.answer = answer
        self.sent: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.sent.append({"method": method, "url": url, **kwargs})
        return self.answer


def client_answering(resp: requests.Response) -> tuple[ApiClient, FakeSession]:
    session = FakeSession(resp)
    return ApiClient("http://pvem.test:8080", "tok", session=session), session  # type: ignore[arg-type]


@pytest.mark.parametrize(("given", "expected"), [
    ("http://h:8080", "http://h:8080"),
    ("http://h:8080/", "http://h:8080"),
    ("http://h:8080/api", "http://h:8080"),
    ("http://h:8080/api/", "http://h:8080"),
    ("h:8080", "http://h:8080"),
    ("https://h/prefix/api", "https://h/prefix"),
])
def test_server_urls_are_normalised(given, expected):
    assert normalise_server(given) == expected


@pytest.mark.parametrize("bad", ["", "ftp://h", "http://"])
def test_a_bad_server_url_is_a_usage_error(bad):
    with pytest.raises(UsageError):
        normalise_server(bad)


@pytest.mark.parametrize(("status", "exit_code"), [
    (400, USAGE), (413, USAGE), (415, USAGE),
    (401, UNAVAILABLE), (403, UNAVAILABLE), (404, UNAVAILABLE), (409, UNAVAILABLE), (429, UNAVAILABLE),
    (500, UNAVAILABLE), (503, UNAVAILABLE), (None, UNAVAILABLE),
])
def test_exit_code_for_each_status(status, exit_code):
    assert exit_code_for_status(status) == exit_code


@pytest.mark.parametrize(("status", "exit_code"), [(400, 2), (413, 2), (415, 2), (403, 3), (404, 3), (409, 3),
                                                   (500, 3)])
def test_an_error_answer_raises_a_typed_error_with_status_code_message_and_body(status, exit_code):
    body = {"error": "name: already taken", "code": status, "field": "name"}
    client, _ = client_answering(response(status, body))
    with pytest.raises(ApiError) as caught:
        client.get("vms")
    assert caught.value.status == status and caught.value.code == status and caught.value.body == body
    assert caught.value.exit_code == exit_code
    assert caught.value.message == f"name: already taken (HTTP {status})"


def test_a_rejected_token_says_how_to_log_in():
    client, _ = client_answering(response(401, {"error": "token expired", "code": 401}))
    with pytest.raises(ApiError) as caught:
        client.get("vms")
    assert caught.value.exit_code == 3
    assert "token expired" in caught.value.message
    assert "pvem login --server http://pvem.test:8080" in caught.value.message


def test_an_error_without_a_json_body_still_gives_one_line():
    client, _ = client_answering(response(502, raw=b"<html>\n<b>bad gateway</b>\n</html>", reason="Bad Gateway"))
    with pytest.raises(ApiError) as caught:
        client.get("vms")
    assert caught.value.message == "Bad Gateway (HTTP 502)" and caught.value.body is None
    assert caught.value.exit_code == 3


def test_call_unwraps_the_envelope_and_sends_the_token_and_the_query():
    client, session = client_answering(response(200, {"success": True, "data": [{"name": "a"}], "message": None}))
    assert client.get("vms", {"name": "a", "label_selector": None}) == [{"name": "a"}]
    sent = session.sent[0]
    assert sent["url"] == "http://pvem.test:8080/api/vms"
    assert sent["headers"]["Authorization"] == "Bearer tok"
    assert sent["params"] == {"name": "a"}
    assert sent["timeout"] == 30.0


def test_an_unreachable_server_is_exit_3_with_the_reason():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ApiError) as caught:
        ApiClient(f"http://127.0.0.1:{port}", "tok").get("vms")
    assert caught.value.status is None and caught.value.exit_code == 3
    assert caught.value.message == f"cannot reach http://127.0.0.1:{port}: Connection refused"
