"""POST /api/vms at 16 clients: p99 < 50 ms with 0 errors (each create is a write transaction + audit).

The server runs `server.workers: 2` (one API process per core of the 2-core machine the target is set
on: a Python process runs one thread at a time); concurrent creates share transactions (group commit)."""

from __future__ import annotations

from bench import loadgen
from bench.harness import Context, Row, fmt
from bench.registry import scenario

WORKERS = 2
BODY = '{"name": "load-{n}", "cpu_cores": 1, "memory_mb": 512, "disk_gb": 10, "node": "pve1"}'


@scenario("api-writes", "POST /api/vms latency at 16 clients", timeout_seconds=120)
def run(ctx: Context) -> list[Row]:
    with ctx.server(vms=ctx.scale(1000, 100), server={"workers": WORKERS}) as server:
        create = {"method": "POST", "path": "/api/vms", "body": BODY,
                  "headers": {**server.auth, "Content-Type": "application/json"}}
        result = loadgen.run(server.plan([create], 16, ctx.scale(10, 2)))
    failed = result["errors"] + result["non_2xx"]
    p99 = result["p99_ms"]
    return [Row(f"POST /api/vms p99, 16 clients ({WORKERS} workers)", "< 50 ms, 0 errors",
                f"p99 {fmt(p99, ' ms')}, p50 {fmt(result['p50_ms'], ' ms')}, {fmt(result['rps'])} req/s, "
                f"{failed} errors", met=p99 is not None and p99 < 50 and failed == 0)]
