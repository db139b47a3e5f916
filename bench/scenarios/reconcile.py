"""The reconciler scenarios: bulk convergence against a sequential proxmoxer loop, change-to-Proxmox latency
with 1,000 in-sync VMs, and an idle pass over 10,000 in-sync VMs.

Each wraps a module of its own (bench/reconcile_bulk.py, reconcile_latency.py, reconcile_idle.py; each
also runs alone as `python -m bench.<module>`) and turns its rows into the table's rows. The baselines
live in the modules: the loop on an identical fakepve for bulk, fixed targets for latency and idle.
"""

from __future__ import annotations

from bench import reconcile_bulk, reconcile_idle, reconcile_latency
from bench.harness import Context, Row
from bench.reconcile_common import Row as ModuleRow
from bench.registry import scenario


def _rows(rows: list[ModuleRow], ratios: dict[str, str] | None = None) -> list[Row]:
    """A module's rows in the table's shape: a '-' target is a figure without one."""
    ratios = ratios or {}
    return [Row(row.figure, row.target, row.measured, ratios.get(row.figure, ""),
                None if row.target == "-" else row.met) for row in rows]


@scenario("reconcile-bulk", "100 new VMs created and started on one node, 20 ms per Proxmox request, "
          "against a sequential proxmoxer loop", timeout_seconds=420)
def bulk(ctx: Context) -> list[Row]:
    count = ctx.scale(100, 20)
    rows = reconcile_bulk.run(count, 20.0)
    ctx.notes.append("reconcile-bulk: the loop and pvem each run against their own fakepve in a child process "
                     "(20 ms per answer); ratio = loop time / pvem time")
    return _rows(rows)


@scenario("reconcile-latency", "change-to-Proxmox-write latency with 1,000 in-sync VMs", timeout_seconds=300)
def latency(ctx: Context) -> list[Row]:
    return _rows(reconcile_latency.run(ctx.scale(1000, 200), ctx.scale(100, 20)))


@scenario("reconcile-idle", "an idle pass over 10,000 in-sync VMs: listings, resync GETs, SQL, CPU",
          timeout_seconds=420)
def idle(ctx: Context) -> list[Row]:
    return _rows(reconcile_idle.run(ctx.scale(10_000, 1000)))
