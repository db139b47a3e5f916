"""API reads against the reference endpoints, same server, same run, interleaved (ref, api, ref, api):

- GET /api/vms with 100 VMs >= 0.8 of /bench/ref/vms, and with 10,000 VMs >= 0.6;
- GET /api/vms/{id} and GET /api/auth/me >= 0.8 of /bench/ref/one (JWT decode + one row);
all with 0 errors (transport failures or non-2xx answers).
"""

from __future__ import annotations

import json
import statistics
import urllib.request
from typing import Any

from bench import loadgen
from bench.harness import BenchServer, Context, Row, fmt
from bench.registry import scenario


def compare(ctx: Context, server: BenchServer, api: dict[str, Any], ref: dict[str, Any],
            clients: int) -> tuple[dict[str, Any], dict[str, Any]]:
    seconds, rounds = ctx.scale(5, 1), ctx.scale(2, 1)
    api_runs, ref_runs = [], []
    for _round in range(rounds):
        ref_runs.append(loadgen.run(server.plan([ref], clients, seconds)))
        api_runs.append(loadgen.run(server.plan([api], clients, seconds)))
    return _merge(api_runs), _merge(ref_runs)


def _merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"rps": statistics.median(run["rps"] for run in runs),
            "failed": sum(run["errors"] + run["non_2xx"] for run in runs),
            "p99_ms": max(run["p99_ms"] or 0 for run in runs)}


def ratio_row(figure: str, api: dict[str, Any], ref: dict[str, Any], minimum: float) -> Row:
    ratio = api["rps"] / ref["rps"] if ref["rps"] else 0.0
    failed = api["failed"] + ref["failed"]
    return Row(figure, f">= {minimum:.2f} x reference, 0 errors",
               f"{fmt(api['rps'])} vs {fmt(ref['rps'])} req/s, {failed} errors", f"{ratio:.2f}",
               ratio >= minimum and failed == 0)


def _first_vm_id(server: BenchServer) -> str:
    request = urllib.request.Request(f"http://{server.host}:{server.port}/api/vms?limit=1", headers=server.auth)
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.load(response)["data"][0]["id"])


@scenario("api-reads", "GET /api/vms (100 and 10,000 VMs), /api/vms/{id}, /api/auth/me vs reference endpoints",
          timeout_seconds=420)
def run(ctx: Context) -> list[Row]:
    rows = []
    with ctx.server(vms=100) as server:
        auth = server.auth
        ref_list = {"method": "GET", "path": "/bench/ref/vms", "headers": auth}
        ref_one = {"method": "GET", "path": "/bench/ref/one", "headers": auth}
        api, ref = compare(ctx, server, {"method": "GET", "path": "/api/vms", "headers": auth}, ref_list, 16)
        rows.append(ratio_row("GET /api/vms, 100 VMs, 16 clients", api, ref, 0.8))
        vm_id = _first_vm_id(server)
        api, ref = compare(ctx, server, {"method": "GET", "path": f"/api/vms/{vm_id}", "headers": auth}, ref_one, 16)
        rows.append(ratio_row("GET /api/vms/{id}, 16 clients", api, ref, 0.8))
        api, ref = compare(ctx, server, {"method": "GET", "path": "/api/auth/me", "headers": auth}, ref_one, 16)
        rows.append(ratio_row("GET /api/auth/me, 16 clients", api, ref, 0.8))
    big = ctx.scale(10_000, 500)
    with ctx.server(vms=big) as server:
        auth = server.auth
        api, ref = compare(ctx, server, {"method": "GET", "path": "/api/vms", "headers": auth},
                           {"method": "GET", "path": "/bench/ref/vms", "headers": auth}, 4)
        rows.append(ratio_row(f"GET /api/vms, {big:,} VMs (whole list), 4 clients", api, ref, 0.6))
    return rows
