"""Manifests over HTTP: 1,000 VMs in one `POST /api/manifests` < 2 s; the same manifest again (nothing
to change) < 0.3 s (median of three)."""

from __future__ import annotations

import http.client
import statistics
import time

from bench.harness import BenchServer, Context, Row, fmt
from bench.registry import scenario


def manifest(count: int) -> str:
    return "".join(
        f"---\napiVersion: pvem/v1\nkind: VirtualMachine\nmetadata:\n  name: fleet-{index:05d}\n"
        f"  labels: {{tier: web, fleet: bench}}\nspec:\n  node: pve1\n  cpu_cores: 2\n  memory_mb: 2048\n"
        f"  disk_gb: 20\n  power_state: running\n"
        for index in range(count))


def apply(server: BenchServer, body: bytes) -> tuple[float, int]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=120)
    try:
        started = time.perf_counter()
        conn.request("POST", "/api/manifests?apply_set=fleet", body=body,
                     headers={**server.auth, "Content-Type": "application/yaml"})
        response = conn.getresponse()
        response.read()
        return time.perf_counter() - started, response.status
    finally:
        conn.close()


@scenario("manifests", "1,000 VMs in one manifest apply; no-op re-apply", timeout_seconds=180)
def run(ctx: Context) -> list[Row]:
    count = ctx.scale(1000, 100)
    body = manifest(count).encode()
    with ctx.server(vms=0) as server:
        first, status = apply(server, body)
        again = [apply(server, body) for _ in range(ctx.scale(3, 1))]
    statuses = {status, *(found for _s, found in again)}
    ok = statuses == {200}
    noop = statistics.median(seconds for seconds, _status in again)
    return [
        Row(f"apply {count:,} new VMs in one manifest ({len(body) // 1024} KiB YAML)", "< 2 s, HTTP 200",
            f"{fmt(first, ' s', 2)} (HTTP {status})", met=ok and first < 2.0),
        Row(f"re-apply the same {count:,} VMs (no change)", "< 0.3 s, HTTP 200",
            f"{fmt(noop, ' s', 3)} (HTTP {', '.join(map(str, sorted(statuses)))})", met=ok and noop < 0.3),
    ]
