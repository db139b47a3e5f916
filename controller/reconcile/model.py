"""The reconciler's vocabulary: desired state (from the store), observed state (from Proxmox), actions.

Plain frozen dataclasses, no I/O: `diff.plan()` turns a (desired, observed) pair into actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controller.proxmox.guest_config import GuestConfig


@dataclass(frozen=True)
class DesiredSnapshot:
    id: str
    name: str
    description: str | None
    deleting: bool = False
    rollback_pending: bool = False
    provisioned: bool = False
    scheduled: bool = False  # taken by the VM's snapshot_schedule


@dataclass(frozen=True)
class DesiredRule:
    id: str
    position: int
    direction: str
    action: str
    protocol: str | None = None
    port: int | None = None
    source: str | None = None
    destination: str | None = None
    enabled: bool = True
    comment: str | None = None


@dataclass(frozen=True)
class DesiredGuest:
    """The guest fields of a VM's spec (issue 7), as the reconciler needs them; see controller/guest.py."""

    template: int | str | None = None
    clone_mode: str = "full"
    cloud_init: dict[str, Any] | None = None  # without the password
    password: str | None = None
    cloud_init_digest: str | None = None  # of cloud_init + password: what a regenerate must have applied
    applied_cloud_init: str | None = None  # the digest Proxmox last regenerated the drive from
    disks: tuple[dict[str, Any], ...] = ()  # {size_gb, storage}
    applied_disks: dict[str, int] = field(default_factory=dict)  # scsiN -> size pvem attached or grew it to
    networks: tuple[dict[str, Any], ...] | None = None
    tags: tuple[str, ...] = ()
    pool: str | None = None
    start_on_boot: bool = False
    agent: bool = True
    description: str | None = None


@dataclass(frozen=True)
class DesiredVm:
    id: str
    vmid: int
    name: str
    node: str
    cores: int
    memory_mb: int
    disk_gb: int
    power_state: str = "stopped"
    restart_pending: bool = False
    deleting: bool = False
    generation: int = 1
    observed_generation: int = 0
    provisioned: bool = False  # pvem has seen this VM exist in Proxmox (created or adopted)
    applied_disk_gb: int | None = None  # the size of the last resize Proxmox confirmed
    migrated_generation: int | None = None  # generation whose migration Proxmox confirmed
    snapshots: tuple[DesiredSnapshot, ...] = ()
    rules: tuple[DesiredRule, ...] = ()
    guest: DesiredGuest | None = None  # None: a VM without guest fields (tests building DesiredVm by hand)
    management: str = "enforce"  # enforce | observe (observe: never write, report drift)
    reboot_policy: str | None = None  # never | auto; None: the controller's default (Policy.reboot_policy)
    enable_firewall: bool = True  # False: an imported VM whose firewall was off stays off


@dataclass(frozen=True)
class ObservedSnapshot:
    name: str
    description: str | None
    mark: str | None  # the pvem snapshot id in its description, if pvem made it


@dataclass(frozen=True)
class ObservedRule:
    pos: int
    type: str  # in | out
    action: str  # ACCEPT | DROP | REJECT
    proto: str | None
    dport: str | None
    source: str | None
    dest: str | None
    enable: bool
    comment: str | None
    mark: str | None  # the pvem rule id in its comment, if pvem made it


@dataclass(frozen=True)
class ObservedVm:
    """What Proxmox says about one vmid. Config values already include pending (not yet applied) ones."""

    vmid: int
    node: str
    mark: str | None  # the pvem VM id in the description; None: not pvem's
    name: str | None = None
    cores: int | None = None
    memory_mb: int | None = None
    disk_key: str | None = None
    disk_gb: int | None = None
    status: str = "stopped"  # running | stopped | paused
    lock: str | None = None
    pending_keys: tuple[str, ...] = ()
    snapshots: tuple[ObservedSnapshot, ...] = ()
    rules: tuple[ObservedRule, ...] = ()
    firewall_enabled: bool = False
    digest: str | None = None  # the config digest, sent with config writes
    guest: GuestConfig | None = None  # the guest config with pending values applied (full observations)
    pool: str | None = None  # from the bulk listing
    uptime: int | None = None  # seconds, from status/current
    hotplug: str | None = None  # the config's `hotplug` option (None: PVE's default, network,disk,usb)


@dataclass(frozen=True)
class Action:
    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # readable in test failure output
        inner = ", ".join(f"{key}={value!r}" for key, value in self.params.items())
        return f"{self.kind}({inner})"


@dataclass(frozen=True)
class Policy:
    on_missing: str = "recreate"  # recreate | report
    reboot_policy: str = "never"  # never | auto
    shutdown_timeout: int = 60
    storage: str = "local-lvm"  # proxmox.storage: extra disks and cloud-init drives without their own
    bridge: str = "vmbr0"  # proxmox.bridge: NICs without their own
    max_concurrent_reboots: int = 1  # automatic reboots in flight at once, fleet-wide
