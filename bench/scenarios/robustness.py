"""Availability under load:

- a register/login flood (16 clients) beside a write load (4 clients creating VMs): 0 server errors;
- 150 idle TCP connections held open: the API still answers (a fresh connection) in < 1 s.
"""

from __future__ import annotations

import http.client
import socket
import time

from bench import loadgen
from bench.harness import BENCH_PASSWORD, Context, Row, fmt
from bench.registry import scenario
from bench.scenarios.api_writes import BODY

REGISTER = '{"username": "flood{n}", "email": "flood{n}@example.com", "password": "password-{n}"}'
LOGIN = '{"email": "bench-admin@example.com", "password": "' + BENCH_PASSWORD + '"}'


@scenario("robustness", "register/login flood beside writes; 150 idle sockets", timeout_seconds=180)
def run(ctx: Context) -> list[Row]:
    rows = []
    seconds = ctx.scale(10, 2)
    json_headers = {"Content-Type": "application/json"}
    with ctx.server(vms=ctx.scale(1000, 100)) as server:
        flood = server.plan([{"method": "POST", "path": "/api/auth/register", "body": REGISTER,
                              "headers": json_headers},
                             {"method": "POST", "path": "/api/auth/login", "body": LOGIN, "headers": json_headers}],
                            16, seconds)
        writes = server.plan([{"method": "POST", "path": "/api/vms", "body": BODY,
                               "headers": {**server.auth, **json_headers}}], 4, seconds, processes=1)
        running = [(loadgen.start(flood), flood), (loadgen.start(writes), writes)]
        flood_result, write_result = (loadgen.collect(processes, plan) for processes, plan in running)
        server_errors = flood_result["server_errors"] + write_result["server_errors"]
        transport = flood_result["errors"] + write_result["errors"]
        rows.append(Row("register/login flood (16 clients) + VM creates (4 clients)", "0 server errors",
                        f"{server_errors} 5xx, {transport} transport errors; auth {fmt(flood_result['rps'])} req/s "
                        f"(p99 {fmt(flood_result['p99_ms'], ' ms', 0)}), creates {fmt(write_result['rps'])} req/s "
                        f"(p99 {fmt(write_result['p99_ms'], ' ms', 0)})",
                        met=server_errors == 0 and transport == 0))

        idle = []
        try:
            for _ in range(150):
                idle.append(socket.create_connection((server.host, server.port), timeout=5))
            time.sleep(0.5)
            worst, statuses = 0.0, set()
            for _ in range(5):
                started = time.perf_counter()
                conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
                try:
                    conn.request("GET", "/api/vms?limit=10", headers=server.auth)
                    response = conn.getresponse()
                    response.read()
                    statuses.add(response.status)
                except OSError:
                    statuses.add(0)
                finally:
                    conn.close()
                worst = max(worst, time.perf_counter() - started)
        finally:
            for sock in idle:
                sock.close()
        rows.append(Row("GET /api/vms?limit=10 with 150 idle sockets open", "< 1 s, HTTP 200",
                        f"worst of 5: {fmt(worst * 1000, ' ms')} (HTTP {', '.join(map(str, sorted(statuses)))})",
                        met=worst < 1.0 and statuses == {200}))
    return rows
