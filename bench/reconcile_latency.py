"""Change-to-Proxmox latency: with N in-sync VMs (1,000 by default) and the reconciler running at its
defaults, the time from a spec change (the store write and nudge the API makes) to the arrival of the
Proxmox write (POST .../config) at fakepve, which runs in a child process. Every tenth change comes right
after a full pass, so that its deep resyncs are queued: user changes must go ahead of them.

    python -m bench.reconcile_latency [--vms 1000] [--changes 100]
"""

from __future__ import annotations

import argparse
import time

from bench.reconcile_common import Row, percentile, print_rows, reconciler, wait_until, world
from bench.reconcile_idle import seed_fleet
from controller import vms
from controller.specs import VmUpdate

DEADLINE = 10.0  # per change
TARGET_P50_MS, TARGET_P99_MS = 50.0, 150.0


def run(count: int = 1000, changes: int = 100) -> list[Row]:
    latencies: list[float] = []
    with world() as w:
        rows, fake = seed_fleet(w, count)
        try:
            rec = reconciler(w.store, fake)
            try:
                rec.start()
                rec.full_pass()
                wait_until(rec.idle, 120, "the first pass's resyncs", step=0.05)
                step = max(1, count // changes)
                for n in range(changes):
                    row = rows[(n * step) % count]
                    if n % 10 == 0:
                        rec.full_pass()  # queues its share of deep resyncs (background work)
                    seen = len(fake.arrivals())
                    target = f"/qemu/{row['vmid']}/config"
                    started = time.monotonic()
                    with w.store.write() as session:
                        vms.update_vm(session, w.actor, str(row["id"]), VmUpdate(name=f"changed-{n}"))
                    rec.nudge(str(row["id"]))
                    arrived: list[float] = []

                    def reached(target: str = target, seen: int = seen, arrived: list[float] = arrived) -> bool:
                        hits = [at for at, method, path in fake.arrivals(seen)
                                if method == "POST" and path.endswith(target)]
                        arrived.extend(hits[:1])
                        return bool(hits)

                    wait_until(reached, DEADLINE, f"the write for change {n}", step=0.005)
                    latencies.append((arrived[0] - started) * 1000)
                wait_until(rec.idle, 120, "the last changes", step=0.05)
            finally:
                rec.stop(timeout=10)
                rec.client.close()
        finally:
            fake.stop()
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    return [
        Row(f"latency, {count} in-sync VMs: change to Proxmox write p50", f"< {TARGET_P50_MS:g} ms", f"{p50:.1f} ms",
            p50 < TARGET_P50_MS),
        Row(f"latency, {count} in-sync VMs: change to Proxmox write p99", f"< {TARGET_P99_MS:g} ms", f"{p99:.1f} ms",
            p99 < TARGET_P99_MS),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=100)
    args = parser.parse_args()
    print_rows(run(args.vms, args.changes))


if __name__ == "__main__":
    main()
