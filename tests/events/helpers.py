"""Real HTTP for the event and webhook tests: the app on waitress in a thread, an SSE client, a receiver."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import falcon
import waitress
from waitress import wasyncore


@contextmanager
def waitress_server(app: falcon.App, feed: Any = None, threads: int = 8) -> Iterator[str]:
    """The app behind a real waitress server on a free loopback port; yields its base URL."""
    server: Any = waitress.create_server(app, host="127.0.0.1", port=0, threads=threads, ident="pvem-test")
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            wasyncore.loop(timeout=0.05, map=server._map, count=1)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        if feed is not None:
            feed.stop()  # as `pvem serve` does on SIGTERM: open streams end
        stop.set()
        thread.join(5)
        server.close()
        server.task_dispatcher.shutdown(timeout=5)


@dataclass
class SseEvent:
    event: str | None = None
    id: str | None = None
    data: Any = None
    comments: list[str] = field(default_factory=list)


class SseClient:
    """A minimal EventSource: reads events off a real socket, every read bounded by a deadline."""

    def __init__(self, base: str, token: str | None, last_event_id: int | str | None = None,
                 query: str = "", timeout: float = 10.0) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        headers = {"Accept": "text/event-stream"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.conn.request("GET", "/api/events" + query, headers=headers)
        self.sock = self.conn.sock  # http.client lets go of it once the response is read until close
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.headers = dict(self.response.getheaders())

    def body(self) -> Any:
        return json.loads(self.response.read() or b"null")

    def next(self, timeout: float = 10.0, comments: bool = False) -> SseEvent:
        """The next event (or, with comments=True, the next comment line as an event with event=None)."""
        deadline = time.monotonic() + timeout
        current = SseEvent()
        data: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no server-sent event in time")
            assert self.sock is not None
            self.sock.settimeout(remaining)
            try:
                raw = self.response.readline()
            except TimeoutError:
                raise TimeoutError("no server-sent event in time") from None
            if not raw:
                raise EOFError("the stream ended")
            line = raw.decode().rstrip("\n")
            if line.startswith(":"):
                current.comments.append(line[1:].strip())
                if comments:
                    return current
                continue
            if line == "":
                if current.event or data:
                    current.data = json.loads("\n".join(data)) if data else None
                    return current
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                current.event = value
            elif name == "id":
                current.id = value
            elif name == "data":
                data.append(value)

    def until(self, predicate: Any, timeout: float = 10.0) -> SseEvent:
        """Skip events until one matches (bounded in time)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.next(timeout=max(0.01, deadline - time.monotonic()))
            if predicate(found):
                return found

    def close(self) -> None:
        self.conn.close()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A webhook target on 127.0.0.1: records every POST; answers `statuses` in turn (then 200)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.received: list[Received] = []
        self.attempts = 0
        self._cond = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer._cond:
                    outer.attempts += 1
                    status = outer.statuses.pop(0) if outer.statuses else 200
                    if status < 300:
                        outer.received.append(Received(self.path, dict(self.headers), body))
                    outer._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"expected {count} deliveries, got {len(self.received)}")
                self._cond.wait(remaining)
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
