"""Bench scenario: two `pvem api` replicas against one, on one PostgreSQL database.

Self-contained: `run()` creates a throw-away database on the PostgreSQL server named by
`PVEM_BENCH_DATABASE_URL` (default postgresql+psycopg://postgres@127.0.0.1:5432/postgres), starts the
replicas as real processes, drives them with client threads spread round robin over the replicas
(as a load balancer would), and drops the database at the end. It returns rows
`(figure, target, measured, met)`; `python -m bench.replicas` prints them.

Figures: read throughput (GET /api/vms, 20 VMs, c16) and write throughput (PUT /api/vms/{id}, c16) with
one replica and with two, and the ratio two/one. On a 2-core machine one Python process uses at most
about 1.2 cores (the GIL), so a second replica should add throughput; the client shares the cores, so
the target is modest (x1.2). Compare figures of one run only (the machine is noisy).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

Row = tuple[str, str, str, bool]
PVEM = str(Path(sys.executable).with_name("pvem"))
SERVER_URL = os.environ.get("PVEM_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SECRET = "bench-secret-0123456789-0123456789-0123456789"
ADMIN = ("bench@example.com", "bench-password")
CLIENTS = 16
TARGET_RATIO = 1.2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _call(conn: http.client.HTTPConnection, method: str, path: str, token: str | None = None,
          body: Any = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, json.loads(data) if data else None


def _wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pvem api exited ({proc.returncode})")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            if _call(conn, "GET", "/api/health")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("pvem api did not become healthy")


def _load(ports: list[int], seconds: float, request: Callable[[http.client.HTTPConnection, int], int]) -> float:
    """Requests per second answered 2xx by CLIENTS threads, each on a keep-alive connection to one replica."""
    done = [0] * CLIENTS
    stop = threading.Event()

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", ports[index % len(ports)], timeout=30)
        serial = 0
        while not stop.is_set():
            serial += 1
            if 200 <= request(conn, index * 1_000_000 + serial) < 300:
                done[index] += 1

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(30)
    return sum(done) / seconds


def run(seconds: float = 5.0) -> list[Row]:
    server = create_engine(make_url(SERVER_URL), isolation_level="AUTOCOMMIT")
    name = f"pvem_bench_{uuid.uuid4().hex[:8]}"
    with server.connect() as db:
        db.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(SERVER_URL).set(database=name).render_as_string(hide_password=False)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PVEM_")}
    env.update({"PVEM_DATABASE__URL": url, "PVEM_AUTH__JWT_SECRET": SECRET, "PVEM_AUTH__ADMIN_EMAIL": ADMIN[0],
                "PVEM_AUTH__ADMIN_PASSWORD": ADMIN[1], "PVEM_PROXMOX__DEFAULT_NODE": "pve1",
                "PVEM_LOGGING__LEVEL": "WARNING", "PVEM_LOGGING__FORMAT": "json"})
    ports = [_free_port(), _free_port()]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            procs.append(subprocess.Popen([PVEM, "api", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        for port, proc in zip(ports, procs, strict=True):
            _wait_healthy(port, proc)
        conn = http.client.HTTPConnection("127.0.0.1", ports[0], timeout=30)
        status, body = _call(conn, "POST", "/api/auth/login", body={"email": ADMIN[0], "password": ADMIN[1]})
        if status != 200:
            raise RuntimeError(f"login failed: {status} {body}")
        token = body["token"]
        vm_ids = []
        for n in range(20):
            status, body = _call(conn, "POST", "/api/vms", token, {"name": f"bench-{n}", "cpu_cores": 1,
                                                                   "memory_mb": 512, "disk_gb": 4})
            vm_ids.append(body["data"]["id"])

        def read(c: http.client.HTTPConnection, _serial: int) -> int:
            return _call(c, "GET", "/api/vms", token)[0]

        def write(c: http.client.HTTPConnection, serial: int) -> int:
            vm_id = vm_ids[serial % len(vm_ids)]
            return _call(c, "PUT", f"/api/vms/{vm_id}", token, {"memory_mb": 512 + 128 * (serial % 64)})[0]

        rows: list[Row] = []
        for figure, request in (("reads GET /api/vms", read), ("writes PUT /api/vms/{id}", write)):
            one = _load(ports[:1], seconds, request)
            two = _load(ports, seconds, request)
            ratio = two / one if one else 0.0
            rows.append((f"{figure}, 1 replica (req/s, c{CLIENTS})", "reference", f"{one:.0f}", True))
            rows.append((f"{figure}, 2 replicas (req/s, c{CLIENTS})", "reference", f"{two:.0f}", True))
            rows.append((f"{figure}, 2 replicas / 1", f">= x{TARGET_RATIO}", f"x{ratio:.2f}", ratio >= TARGET_RATIO))
        return rows
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        with server.connect() as db:
            db.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


if __name__ == "__main__":
    for row in run():
        print(" | ".join(str(cell) for cell in row))
