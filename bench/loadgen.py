"""A small HTTP load generator, run as its own process(es): keep-alive connections on loopback, N clients.

`python -m bench.loadgen '<json plan>'` prints one JSON result line. The plan:
    {"host": "127.0.0.1", "port": 8080, "clients": 16, "processes": 2, "seconds": 5, "warmup": 1,
     "requests": [{"method": "GET", "path": "/api/vms", "headers": {...}, "body": null}, ...]}
Clients cycle through `requests`; `{n}` in a path or body becomes a number unique in the run (for
creates). The result: requests, errors (transport failures), statuses, req/s, latency p50/p90/p99 (ms).
`run(plan)` starts the processes from Python and merges their results.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from itertools import count
from typing import Any


class _Connection:
    """A minimal HTTP/1.1 keep-alive client on a raw socket: prebuilt request bytes, Content-Length
    responses. It costs the shared CPU a third of what http.client does (the load generator runs on
    the machine it measures, like wrk but in Python), which matters when the server is CPU-bound."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def request(self, raw: bytes) -> tuple[int, bool]:
        """Send one request; (status, server closes the connection) once the whole answer is read."""
        self.sock.sendall(raw)
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._fill()
        head, self.buffer = self.buffer[:end].decode("latin-1"), self.buffer[end + 4:]
        lines = head.split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {name.strip().lower(): value.strip()
                   for name, _, value in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._fill()
        self.buffer = self.buffer[length:]
        return status, headers.get("connection", "").lower() == "close"

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def _raw_request(spec: dict[str, Any], host: str, port: int, n: str) -> bytes:
    body = spec.get("body")
    payload = body.replace("{n}", n).encode() if body is not None else b""
    lines = [f"{spec['method']} {spec['path'].replace('{n}', n)} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in spec.get("headers", {}).items()]
    if body is not None or spec["method"] in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def _client(plan: dict[str, Any], start: float, stop: float, offset: int, out: list[Any]) -> None:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0
    numbers = count(offset * 1_000_000)
    conn: _Connection | None = None
    requests = plan["requests"]
    host, port, timeout = plan["host"], plan["port"], plan.get("timeout", 30)
    i = 0
    while True:
        now = time.perf_counter()
        if now >= stop:
            break
        spec = requests[i % len(requests)]
        i += 1
        raw = _raw_request(spec, host, port, str(next(numbers)))
        try:
            if conn is None:
                conn = _Connection(host, port, timeout)
            status, closing = conn.request(raw)
            if closing:
                conn.close()
                conn = None
        except (OSError, ValueError, IndexError):
            errors += 1 if now >= start else 0
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.01)
            continue
        if now >= start:  # after the warm-up
            latencies.append(time.perf_counter() - now)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
    if conn is not None:
        conn.close()
    out.append((latencies, statuses, errors))


def _process(plan: dict[str, Any], index: int) -> dict[str, Any]:
    threads_per = max(1, plan["clients"] // plan.get("processes", 1))
    begin = time.perf_counter()
    start = begin + plan.get("warmup", 0)
    stop = start + plan["seconds"]
    out: list[Any] = []
    threads = [threading.Thread(target=_client, args=(plan, start, stop, index * threads_per + t, out), daemon=True)
               for t in range(threads_per)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(plan["seconds"] + plan.get("warmup", 0) + plan.get("timeout", 30) + 5)
    latencies = sorted(value for lat, _s, _e in out for value in lat)
    statuses: dict[str, int] = {}
    for _lat, found, _e in out:
        for key, value in found.items():
            statuses[key] = statuses.get(key, 0) + value
    return {"latencies": latencies, "statuses": statuses, "errors": sum(e for _l, _s, e in out),
            "seconds": plan["seconds"]}


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(fraction * len(values)))] * 1000


def summarise(parts: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = sorted(value for part in parts for value in part["latencies"])
    statuses: dict[str, int] = {}
    for part in parts:
        for key, value in part["statuses"].items():
            statuses[key] = statuses.get(key, 0) + value
    seconds = max(part["seconds"] for part in parts)
    return {
        "requests": len(latencies), "errors": sum(part["errors"] for part in parts), "statuses": statuses,
        "server_errors": sum(value for key, value in statuses.items() if key.startswith("5")),
        "non_2xx": sum(value for key, value in statuses.items() if not key.startswith("2")),
        "rps": len(latencies) / seconds if seconds else 0.0,
        "p50_ms": _percentile(latencies, 0.50), "p90_ms": _percentile(latencies, 0.90),
        "p99_ms": _percentile(latencies, 0.99),
    }


def start(plan: dict[str, Any]) -> list[subprocess.Popen[str]]:
    """Start the plan's processes (each runs clients/processes threads); collect them with collect()."""
    return [subprocess.Popen([sys.executable, "-m", "bench.loadgen", json.dumps(plan), str(index)],
                             stdout=subprocess.PIPE, text=True) for index in range(plan.get("processes", 1))]


def collect(processes: list[subprocess.Popen[str]], plan: dict[str, Any]) -> dict[str, Any]:
    bound = plan["seconds"] + plan.get("warmup", 0) + plan.get("timeout", 30) + 30
    parts = []
    for process in processes:
        try:
            output, _ = process.communicate(timeout=bound)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        if output.strip():
            parts.append(json.loads(output.strip().splitlines()[-1]))
    if not parts:
        raise RuntimeError("the load generator produced no result")
    return summarise(parts)


def run(plan: dict[str, Any]) -> dict[str, Any]:
    return collect(start(plan), plan)


if __name__ == "__main__":
    result = _process(json.loads(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    print(json.dumps(result))
