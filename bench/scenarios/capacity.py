"""Memory: the API server's resident set with 10,000 VMs in the store after serving the whole list,
a page, one VM and /metrics: < 300 MB."""

from __future__ import annotations

import http.client
import json

import psutil

from bench.harness import BenchServer, Context, Row, fmt
from bench.registry import scenario


def get(server: BenchServer, path: str) -> int:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=120)
    try:
        conn.request("GET", path, headers=server.auth)
        response = conn.getresponse()
        body = response.read()
        if path.startswith("/api/vms?limit"):
            json.loads(body)
        return response.status
    finally:
        conn.close()


@scenario("capacity", "RSS of the API server with 10,000 VMs in the store", timeout_seconds=180)
def run(ctx: Context) -> list[Row]:
    count = ctx.scale(10_000, 1000)
    with ctx.server(vms=count) as server:
        statuses = {get(server, path) for path in ("/api/vms", "/api/vms", "/api/vms?limit=100", "/metrics",
                                                   "/api/audit-logs", "/api/vms")}
        rss = psutil.Process(server.process.pid).memory_info().rss / 1024 / 1024
    return [Row(f"API server RSS, {count:,} VMs in the store (after full lists)", "< 300 MB",
                f"{fmt(rss, ' MB')} (HTTP {', '.join(map(str, sorted(statuses)))})",
                met=rss < 300 and statuses == {200})]
