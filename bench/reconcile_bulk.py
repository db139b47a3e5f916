"""Bulk convergence: N new VMs created and started on one node, every Proxmox request costing 20 ms.

pvem (the reconciler with its default settings, triggered as `pvem serve` triggers it) against a plain
sequential proxmoxer loop doing the same creates and starts, each against its own identical fakepve
(time_scale 0.01, 2 PVE seconds of latency per answer, in a child process as a real Proxmox would be),
in the same run. Target: pvem at least 6x faster. Also reports Proxmox requests per VM for both.

    python -m bench.reconcile_bulk [--vms 100] [--latency-ms 20]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from proxmoxer import ProxmoxAPI
from proxmoxer.tools import Tasks
from sqlalchemy import func, select

from bench.reconcile_common import HOST, ChildFake, Row, print_rows, reconciler, wait_until, world
from controller import vm_create
from controller.specs import VmCreate
from controller.store.models import VirtualMachine

TIME_SCALE = 0.01  # 1 PVE second = 10 ms of real time
TARGET_SPEEDUP = 6.0
DEADLINE = 300.0
PVEM_CPU: list[float] = []  # CPU seconds pvem's process spent converging, per run


def _wait(api: Any, upid: str, interval: float = 0.05) -> None:
    node = Tasks.decode_upid(upid)["node"]
    deadline = time.monotonic() + DEADLINE
    while api.nodes(node).tasks(upid).status.get()["status"] != "stopped":
        if time.monotonic() > deadline:
            raise TimeoutError(upid)
        time.sleep(interval)


def sequential_loop(count: int, latency_s: float) -> tuple[float, int]:
    """The reference: create, wait, start, wait, one VM after another. (seconds, Proxmox requests)"""
    fake = ChildFake(time_scale=TIME_SCALE, latency=latency_s / TIME_SCALE)
    try:
        api = ProxmoxAPI(HOST, port=fake.port, user="root@pam", password="secret", verify_ssl=fake.cafile)
        node = api.nodes("pve1")
        mark = len(fake.requests())
        started = time.monotonic()
        for n in range(count):
            vmid = 100 + n
            _wait(api, node.qemu.post(vmid=vmid, name=f"loop-{n}", cores=1, memory=512, scsihw="virtio-scsi-single",
                                      scsi0="local-lvm:4", net0="virtio,bridge=vmbr0,firewall=1", ostype="l26"))
            _wait(api, node.qemu(vmid).status.start.post())
        elapsed = time.monotonic() - started
        return elapsed, len(fake.requests()) - mark
    finally:
        fake.stop()


def pvem(count: int, latency_s: float, **overrides: Any) -> tuple[float, int]:
    """The same fleet declared in pvem and converged by its reconciler. (seconds, Proxmox requests)"""
    fake = ChildFake(time_scale=TIME_SCALE, latency=latency_s / TIME_SCALE)
    try:
        with world() as w:
            ids = []
            for n in range(count):
                with w.store.write() as session:
                    ids.append(vm_create.create_vm(session, w.actor, VmCreate(
                        name=f"bulk-{n}", cpu_cores=1, memory_mb=512, disk_gb=4, node="pve1",
                        power_state="running"), 100, 999_999).id)
            rec = reconciler(w.store, fake, **overrides)
            try:
                rec.start()
                mark = len(fake.requests())
                started, cpu = time.monotonic(), time.process_time()
                for vm_id in ids:  # what the API does after each POST /api/vms
                    rec.nudge(vm_id)

                def converged() -> bool:
                    with w.store.read() as session:
                        return session.scalar(select(func.count()).select_from(VirtualMachine).where(
                            VirtualMachine.sync_status == "synced", VirtualMachine.status == "running")) == count

                wait_until(converged, DEADLINE, "pvem converging the fleet", step=0.01)
                elapsed = time.monotonic() - started
                PVEM_CPU.append(time.process_time() - cpu)
                return elapsed, len(fake.requests()) - mark
            finally:
                rec.stop(timeout=10)
                rec.client.close()
    finally:
        fake.stop()


def run(count: int = 100, latency_ms: float = 20.0) -> list[Row]:
    latency = latency_ms / 1000.0
    loop_s, loop_requests = sequential_loop(count, latency)
    pvem_s, pvem_requests = pvem(count, latency)
    speedup = loop_s / pvem_s
    return [
        Row(f"bulk {count} VMs @{latency_ms:g} ms: sequential loop", "-", f"{loop_s:.2f} s", True),
        Row(f"bulk {count} VMs @{latency_ms:g} ms: pvem", "-", f"{pvem_s:.2f} s", True),
        Row("bulk: pvem speed-up over the loop", f">= {TARGET_SPEEDUP:g}x", f"{speedup:.2f}x",
            speedup >= TARGET_SPEEDUP),
        Row("bulk: Proxmox requests per VM (loop / pvem)", "-",
            f"{loop_requests / count:.1f} / {pvem_requests / count:.1f}", True),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    print_rows(run(args.vms, args.latency_ms))


if __name__ == "__main__":
    main()
