"""Observation: the bulk listing (one call for the whole cluster) and deep reads of one VM (three GETs).

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
from controller.proxmox.normalize import memory_to_mb, pending_changes, to_bool, to_int, vm_config_from_api
from controller.reconcile.impact import DEFAULT_HOTPLUG
from controller.reconcile.model import DesiredVm, ObservedRule, ObservedSnapshot, ObservedVm

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
    """The last bulk `GET /cluster/resources` (VMs and nodes), shared by the workers, the full pass and stats.

    One listing serves many readers: a refresh already in flight is waited for, not repeated, so a burst of
    workers missing the same listing costs one request. How fresh a reader needs it depends on the question:
    a hit is always usable (the deep read that follows fails if the VM moved or went, and looks again); a miss
    is confirmed with a listing taken after it, except for a VM pvem never provisioned, whose create Proxmox
    refuses if the vmid is taken meanwhile. The mapping returned is never mutated: a refresh replaces it.
    """

    NODES_MAX_AGE = 60.0  # nodes join and leave rarely; only creates and migrations ask

    def __init__(self, client: ProxmoxClient, max_age: float = 1.0) -> None:
        self.client = client
        self.max_age = max_age
        self._vms: dict[int, ListedVm] = {}
        self._node_items: list[dict[str, Any]] = []
        self._taken_at = float("-inf")  # when the current listing was requested (monotonic)
        self._stale_before = float("-inf")  # invalidate(): listings requested before this are not trusted
        self._refreshing = False
        self._nodes: set[str] = set()
        self._nodes_taken_at = float("-inf")
        self._lock = threading.Condition()

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

    def refresh(self, newer_than: float | None = None) -> dict[int, ListedVm]:
        """List the cluster; with `newer_than` (monotonic), a listing requested since then is reused instead."""
        with self._lock:
            while True:
                if newer_than is not None and self._taken_at >= max(newer_than, self._stale_before):
                    return self._vms
                if not self._refreshing:
                    break
                self._lock.wait(timeout=5.0)
            self._refreshing = True
        try:
            started = time.monotonic()
            listed, nodes = self.client.list_resources()
        except BaseException:
            with self._lock:
                self._refreshing = False
                self._lock.notify_all()
            raise
        vms = {vm.vmid: vm for vm in listed}
        with self._lock:
            self._vms, self._node_items, self._taken_at = vms, nodes, started
            self._nodes = {str(item["node"]) for item in nodes if item.get("node")}
            self._nodes_taken_at = started
            self._refreshing = False
            self._lock.notify_all()
            return vms

    def fresh(self) -> bool:
        """Whether the listing is younger than `max_age` and nothing invalidated it since."""
        with self._lock:
            return self._taken_at >= self._stale_before and time.monotonic() - self._taken_at <= self.max_age

    def vms(self) -> dict[int, ListedVm]:
        """A listing at most `max_age` old (refreshed if needed)."""
        if self.fresh():
            with self._lock:
                return self._vms
        return self.refresh(newer_than=time.monotonic() - self.max_age)

    def latest(self) -> tuple[dict[int, ListedVm], list[dict[str, Any]], float] | None:
        """The last listing whatever its age (VMs, node items, when it was requested), or None before the first."""
        with self._lock:
            if self._taken_at == float("-inf"):
                return None
            return self._vms, self._node_items, self._taken_at

    def locate(self, vmid: int, confirm_miss: bool = True) -> ListedVm | None:
        """Where the vmid is, by the last listing. A miss is confirmed with a listing taken after it unless
        `confirm_miss` is False (a VM never provisioned: creating it is how the miss gets confirmed)."""
        with self._lock:
            never, trusted = self._taken_at == float("-inf"), self._taken_at >= self._stale_before
            vms = self._vms
        if never or not (trusted or not confirm_miss):
            vms = self.refresh(newer_than=time.monotonic())
        found = vms.get(vmid)
        if found is not None or not confirm_miss:
            return found
        return self.refresh(newer_than=time.monotonic()).get(vmid)

    def invalidate(self) -> None:
        with self._lock:
            self._stale_before = time.monotonic()

    def taken_vmids(self) -> set[int]:
        return set(self.vms())


def power_status(status: dict[str, Any]) -> str:
    if status.get("status") == "running":
        return "paused" if status.get("qmpstatus") in ("paused", "suspended") else "running"
    return "stopped"


def observe_vm(client: ProxmoxClient, listed: ListedVm, full: bool = True, *, trust_listed_status: bool = False,
               firewall_options: bool = True) -> ObservedVm:
    """Deep read of one VM: its config with pending values (one GET .../pending has both), snapshots, rules.

    The power state comes from GET .../status/current unless `trust_listed_status` (the listing just said
    running or stopped, and nothing here depends on telling paused from running); the firewall options are
    read only when `firewall_options` or the VM has firewall rules. Without `full`, config and power only.
    """
    node, vmid = listed.node, listed.vmid
    items = client.vm_pending(node, vmid)
    current = {str(item["key"]): item.get("value") for item in items if "value" in item}
    config = vm_config_from_api(current)
    lock_key = current.get("lock")
    if trust_listed_status and listed.status in ("running", "stopped"):
        status_name, lock = listed.status, str(lock_key) if lock_key else None
        uptime = listed.uptime
    else:
        status = client.vm_status(node, vmid)
        status_name, lock = power_status(status), status.get("lock") or (str(lock_key) if lock_key else None)
        uptime = to_int(status.get("uptime"))
    base = ObservedVm(vmid=vmid, node=node, mark=mark_of(config.description), name=config.name,
                      cores=config.cores, memory_mb=config.memory_mb, disk_key=config.disk_key,
                      disk_gb=config.disk_gb, status=status_name, lock=lock, digest=config.digest,
                      hotplug=_hotplug(config.raw))
    if not full or base.mark is None:
        return base
    pending = pending_changes(items)
    rules, _digest = client.firewall_rules(node, vmid)
    options = client.firewall_options(node, vmid) if firewall_options or rules else {}
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
        uptime=uptime,
    )


def _hotplug(raw: dict[str, Any]) -> str | None:
    value = raw.get("hotplug")
    return None if value is None else str(value)

def created_vm(desired: DesiredVm, storage_disk_key: str = "scsi0") -> ObservedVm:
    """What a plain create (POST /nodes/{node}/qemu, as ProxmoxClient.create_vm sends it) leaves in Proxmox once
    its task succeeded: the VM as desired, stopped, with pvem's mark and nothing else. Used instead of
    reading the VM back right after creating it."""
    return ObservedVm(vmid=desired.vmid, node=desired.node, mark=desired.id, name=desired.name,
                      cores=desired.cores, memory_mb=desired.memory_mb, disk_key=storage_disk_key,
                      disk_gb=desired.disk_gb, status="stopped")


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
