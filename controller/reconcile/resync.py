"""Deep resyncs: the periodic look at a VM the full pass found in sync, for what the listing cannot show.

A resync reads the VM (three GETs: pending config, snapshots, firewall rules; the power state comes from
the pass's listing) and compares it with the spec and the status already recorded, both loaded by the pass
for all due VMs at once. When nothing differs, nothing is written now: the pass records these
observations in one UPDATE. Anything else (drift, a changed summary, a failed read) goes the usual way,
`VmReconciler.run`, which reads again with nothing trusted and writes what it finds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controller.proxmox.errors import ProxmoxError
from controller.reconcile.act import VmReconciler, reboot_required
from controller.reconcile.diff import plan
from controller.reconcile.model import DesiredVm
from controller.reconcile.observe import summary


@dataclass(frozen=True)
class ResyncItem:
    desired: DesiredVm
    status: str
    observed_node: str | None
    reboot_required: bool
    observed: dict[str, Any]


def unchanged(worker: VmReconciler, item: ResyncItem) -> bool:
    """True when Proxmox matches the spec and the recorded status: nothing to do, nothing to write."""
    try:
        observed = worker._observe(item.desired, trust_listed_status=True)
    except ProxmoxError:
        return False  # the usual path reads again and handles it (retry, error, moved VM)
    if observed is None or plan(item.desired, observed, worker.policy):
        return False
    return (observed.status == item.status and observed.node == item.observed_node
            and reboot_required(observed) == item.reboot_required and summary(observed) == item.observed)
