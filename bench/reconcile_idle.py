"""Idle cost: N VMs in sync (10,000 by default), one full pass with its share of deep resyncs, at the defaults.

Seeds fakepve (in a child process, as a real Proxmox would be) and the store with the same in-sync fleet,
then runs one full pass to steady state and measures the next: cluster listings, Proxmox requests per deep
resync, SQL statements (SQLAlchemy's before_cursor_execute) and the controller's CPU (this process; the fake
runs elsewhere), which over the pass interval gives the idle controller's share of a core, the one-second
database poll included.

    python -m bench.reconcile_idle [--vms 10000]
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import insert

from bench.reconcile_common import ChildFake, Row, SqlCounter, World, print_rows, reconciler, wait_until, world
from controller.config import ControllerSettings
from controller.proxmox.guest_config import guest_from_config
from controller.proxmox.marks import MARK_TAG, description_with_mark
from controller.reconcile.model import ObservedVm
from controller.reconcile.observe import summary
from controller.store.models import VirtualMachine, utcnow

DEADLINE = 240.0
TARGET_CPU_SHARE = 5.0  # percent of one core
TARGET_GETS_PER_RESYNC = 3


def _fleet(count: int, owner_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """N running VMs as pvem leaves them in sync: each guest's config is what its create sent (ProxmoxClient.
    create_vm with the spec's defaults: agent on, the mark, the `pvem` tag), and each row records the
    observation summary a deep read of that config would (observe.summary), last taken a day ago."""
    now = utcnow()
    long_ago = now - timedelta(days=1)
    guests, rows = [], []
    for n in range(count):
        vm_id, vmid, name = str(uuid.uuid4()), 100 + n, f"idle-{n}"
        config = {"name": name, "cores": 1, "memory": "512", "scsihw": "virtio-scsi-single", "ostype": "l26",
                  "scsi0": f"local-lvm:vm-{vmid}-disk-0,size=4G",
                  "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1", "agent": "1",
                  "description": description_with_mark(vm_id), "tags": MARK_TAG}
        guests.append({"vmid": vmid, "name": name, "node": "pve1", "status": "running", "config": config})
        observed = ObservedVm(vmid=vmid, node="pve1", mark=vm_id, name=name, cores=1, memory_mb=512,
                              disk_key="scsi0", disk_gb=4, status="running", guest=guest_from_config(config))
        rows.append({
            "id": vm_id, "owner_id": owner_id, "vmid": vmid, "created_at": now, "updated_at": now, "name": name,
            "node": "pve1", "cpu_cores": 1, "memory_mb": 512, "disk_gb": 4, "power_state": "running", "labels": {},
            "generation": 1, "observed_generation": 1, "sync_status": "synced", "status": "running",
            "observed_node": "pve1", "provisioned": True, "last_synced_at": now, "last_observed_at": long_ago,
            "observed": summary(observed)})
    return guests, rows


def seed_fleet(w: World, count: int) -> tuple[list[dict[str, Any]], ChildFake]:
    """`count` in-sync VMs in the store (their rows) and the same guests in a fakepve child process."""
    guests, rows = _fleet(count, w.actor.user_id or "")
    with w.store.write() as session:
        for start in range(0, len(rows), 1000):
            session.execute(insert(VirtualMachine), rows[start:start + 1000])
    return rows, ChildFake(guests=guests)


def run(count: int = 10_000) -> list[Row]:
    ctl = ControllerSettings()
    with world() as w:
        _rows, fake = seed_fleet(w, count)
        try:
            rec = reconciler(w.store, fake)
            sql = SqlCounter(w.store)
            try:
                rec.start()

                def one_pass() -> tuple[list[tuple[str, str]], int, float, float]:
                    mark, sql_mark = len(fake.requests()), sql.count
                    cpu, started = time.process_time(), time.monotonic()
                    rec.full_pass()
                    wait_until(rec.idle, DEADLINE, "the pass's resyncs", step=0.05)
                    pass_sql = sql.count - sql_mark
                    cpu_used, elapsed = time.process_time() - cpu, time.monotonic() - started
                    return fake.requests()[mark:], pass_sql, cpu_used, elapsed

                one_pass()  # the first pass after start-up: every VM is due, the budget takes the oldest
                requests, pass_sql, cpu_used, elapsed = one_pass()
                sql_mark = sql.count
                poll_cpu = time.process_time()
                for _ in range(10):
                    rec.poll_database()
                poll_cpu = (time.process_time() - poll_cpu) / 10
                poll_sql = (sql.count - sql_mark) / 10
            finally:
                rec.stop(timeout=10)
                rec.client.close()
        finally:
            fake.stop()
    listings = sum(1 for method, path in requests if path.endswith("/cluster/resources"))
    deep = [path for method, path in requests if "/qemu/" in path]
    resynced = len({path.split("/qemu/")[1].split("/")[0] for path in deep})
    per_resync = len(deep) / resynced if resynced else 0.0
    share = 100.0 * (cpu_used / ctl.reconcile_interval_seconds + poll_cpu / ctl.poll_interval_seconds)
    return [
        Row(f"idle {count} VMs: cluster listings per pass", "1", str(listings), listings == 1),
        Row(f"idle {count} VMs: deep resyncs in the pass (budget)", "-",
            f"{resynced} in {elapsed:.1f} s", True),
        Row(f"idle {count} VMs: Proxmox requests per deep resync", f"<= {TARGET_GETS_PER_RESYNC}",
            f"{per_resync:.2f}", per_resync <= TARGET_GETS_PER_RESYNC),
        Row(f"idle {count} VMs: SQL statements per pass, its resyncs included", "flat (< 10)",
            f"{pass_sql} (+{poll_sql:g} per 1 s poll)", pass_sql < 10),
        Row(f"idle {count} VMs: controller CPU per pass", "-", f"{cpu_used:.2f} s (poll {poll_cpu * 1000:.1f} ms)",
            True),
        Row(f"idle {count} VMs: controller CPU, share of a core", f"< {TARGET_CPU_SHARE:g} %", f"{share:.2f} %",
            share < TARGET_CPU_SHARE),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=10_000)
    args = parser.parse_args()
    print_rows(run(args.vms))


if __name__ == "__main__":
    main()
