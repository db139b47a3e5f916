"""Observation: the bulk listing (one call for the whole cluster) and deep reads of one VM.

Observation never changes anything. A failed read raises; it is never taken to mean "gone".
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from controller.proxmox.client import ProxmoxClient
from controller.proxmox.guest_config import guest_from_config
from controller.proxmox.marks import mark_of, rule_mark, snapshot_mark
from controller.proxmox.normalize import ObservedVm as ListedVm
from controller.proxmox.normalize import memory_to_mb, pending_changes, to_bool, to_int
from controller.reconcile.impact import DEFAULT_HOTPLUG
from controller.reconcile.model import ObservedRule, ObservedSnapshot, ObservedVm

MANAGED_KEYS = ("name", "cores", "memory")
# Guest keys whose pending values need a reboot (issue 7): cloud-init, NICs, disks.
_GUEST_PENDING = re.compile(r"^(ciuser|cipassword|sshkeys|nameserver|searchdomain|ipconfig\d+|net\d+|scsi\d+|ide\d+)$")


def _with_pending(raw: dict[str, Any], pending: dict[str, Any]) -> dict[str, Any]:
    """The config as the next boot will have it: pending values set, pending deletions gone."""
    config = dict(raw)
    for key, value in pending.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return config


class ClusterView:
    """The last bulk `GET /cluster/resources?type=vm`, shared by workers for at most `max_age` seconds."""

    NODES_MAX_AGE = 60.0  # nodes join and leave rarely; only creates and migrations ask

    def __init__(self, client: ProxmoxClient, max_age: float = 1.0) -> None:
        self.client = client
        self.max_age = max_age
        self._vms: dict[int, ListedVm] = {}
        self._taken_at = float("-inf")
        self._nodes: set[str] = set()
        self._nodes_taken_at = float("-inf")
        self._lock = threading.Lock()

    def has_node(self, name: str) -> bool:
        """Whether the cluster has this node; an unknown name is confirmed with a fresh node listing."""
        with self._lock:
            fresh = time.monotonic() - self._nodes_taken_at <= self.NODES_MAX_AGE
            if fresh and name in self._nodes:
                return True
        nodes = {str(item["node"]) for item in self.client.list_nodes() if item.get("node")}
        with self._lock:
            self._nodes, self._nodes_taken_at = nodes, time.monotonic()
        return name in nodes

    def node_names(self) -> list[str]:
        with self._lock:
            return sorted(self._nodes)

    def refresh(self) -> dict[int, ListedVm]:
        listed = self.client.list_vms()
        with self._lock:
            self._vms = {vm.vmid: vm for vm in listed}
            self._taken_at = time.monotonic()
            return dict(self._vms)

    def vms(self) -> dict[int, ListedVm]:
        with self._lock:
            fresh = time.monotonic() - self._taken_at <= self.max_age
            if fresh:
                return dict(self._vms)
        return self.refresh()

    def locate(self, vmid: int) -> ListedVm | None:
        """Where the vmid is, by the cached listing; a miss is confirmed with a fresh listing."""
        found = self.vms().get(vmid)
        return found if found is not None else self.refresh().get(vmid)

    def invalidate(self) -> None:
        with self._lock:
            self._taken_at = float("-inf")

    def taken_vmids(self) -> set[int]:
        return set(self.vms())


def power_status(status: dict[str, Any]) -> str:
    if status.get("status") == "running":
        return "paused" if status.get("qmpstatus") in ("paused", "suspended") else "running"
    return "stopped"


def observe_vm(client: ProxmoxClient, listed: ListedVm, full: bool = True) -> ObservedVm:
    """Deep read of one VM: config with pending values applied, power state, snapshots, firewall."""
    node, vmid = listed.node, listed.vmid
    config = client.vm_config(node, vmid)
    status = client.vm_status(node, vmid)
    base = ObservedVm(vmid=vmid, node=node, mark=mark_of(config.description), name=config.name,
                      cores=config.cores, memory_mb=config.memory_mb, disk_key=config.disk_key,
                      disk_gb=config.disk_gb, status=power_status(status), lock=status.get("lock") or listed.lock,
                      digest=config.digest, hotplug=_hotplug(config.raw))
    if not full or base.mark is None:
        return base
    pending = pending_changes(client.vm_pending(node, vmid))
    rules, _digest = client.firewall_rules(node, vmid)
    options = client.firewall_options(node, vmid)
    pending_name = pending.get("name")
    return ObservedVm(
        vmid=vmid, node=node, mark=base.mark,
        name=str(pending_name) if pending_name else base.name,
        cores=to_int(pending["cores"]) if pending.get("cores") is not None else base.cores,
        memory_mb=memory_to_mb(pending["memory"]) if pending.get("memory") is not None else base.memory_mb,
        disk_key=base.disk_key, disk_gb=base.disk_gb, status=base.status, lock=base.lock,
        pending_keys=tuple(sorted(key for key in pending if key in MANAGED_KEYS or _GUEST_PENDING.match(key))),
        snapshots=tuple(ObservedSnapshot(name=str(item["name"]), description=item.get("description"),
                                         mark=snapshot_mark(item.get("description")))
                        for item in client.snapshots(node, vmid)),
        rules=tuple(_rule(item) for item in rules),
        firewall_enabled=bool(to_bool(options.get("enable"))), digest=base.digest, hotplug=base.hotplug,
        guest=guest_from_config(_with_pending(config.raw, pending)), pool=listed.pool,
        uptime=to_int(status.get("uptime")),
    )


def _hotplug(raw: dict[str, Any]) -> str | None:
    value = raw.get("hotplug")
    return None if value is None else str(value)


def _rule(item: dict[str, Any]) -> ObservedRule:
    def text(key: str) -> str | None:
        value = item.get(key)
        return str(value) if value not in (None, "") else None

    return ObservedRule(pos=int(item["pos"]), type=str(item.get("type", "")), action=str(item.get("action", "")),
                        proto=text("proto"), dport=text("dport"), source=text("source"), dest=text("dest"),
                        enable=bool(to_bool(item.get("enable", 1))), comment=text("comment"),
                        mark=rule_mark(text("comment")))


def summary(observed: ObservedVm) -> dict[str, Any]:
    """What people see of the last deep observation (stored on the VM row as JSON)."""
    return {
        "node": observed.node, "name": observed.name, "cores": observed.cores, "memory_mb": observed.memory_mb,
        "disk_gb": observed.disk_gb, "status": observed.status, "pending": list(observed.pending_keys),
        "unmanaged_snapshots": [item.name for item in observed.snapshots if item.mark is None],
        "unmanaged_rules": sum(1 for item in observed.rules if item.mark is None),
        "firewall_enabled": observed.firewall_enabled, **_guest_summary(observed),
        "hotplug": observed.hotplug if observed.hotplug is not None else DEFAULT_HOTPLUG,
    }


def _guest_summary(observed: ObservedVm) -> dict[str, Any]:
    """The guest part of what people see: never a cloud-init value that could hold a secret."""
    found = observed.guest
    if found is None:
        return {}
    return {"tags": list(found.tags), "pool": observed.pool,
            "macs": [nic.mac for _index, nic in sorted(found.nics.items())],
            "disks": sorted(found.extra_disks), "cloud_init_drive": found.cloud_init_drive}
