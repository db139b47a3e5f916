"""What a change does to the guest: `none`, `live`, `reboot`, `stop` or `destructive`. Pure, no I/O.

One set of rules serves both sides: the manifest plan labels each change with `change_impact`, and
the reconciler decides from `pending_needs_reboot` whether Proxmox's pending keys wait for a reboot
(and so whether `reboot_policy: auto` reboots). The plan a user reads and the actions taken therefore
cannot disagree.

- none: no effect on the guest (labels, tags, description, pvem's own settings).
- live: applied with the guest running (disk grow, name, firewall rules, snapshots taken, hotplugged
  devices, online migration, any change to a stopped VM, starting it).
- reboot: takes effect when the guest restarts (cores or memory of a running VM unless its `hotplug`
  setting makes them live, cloud-init changes).
- stop: the guest goes down (power_state stopped or paused, offline migration).
- destructive: data is lost (deleting the VM, deleting a snapshot, rolling back).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

IMPACTS = ("none", "live", "reboot", "stop", "destructive")
LABELS = {"none": "no guest impact", "live": "live", "reboot": "needs reboot", "stop": "stops the guest",
          "destructive": "destroys data"}
# PVE's default when a VM's config has no `hotplug` key.
DEFAULT_HOTPLUG = "network,disk,usb"
# Spec field -> the Proxmox config key it is written to, and the hotplug feature that makes it live.
CONFIG_KEYS = {"name": "name", "cpu_cores": "cores", "memory_mb": "memory"}
HOTPLUG_FEATURE = {"cores": "cpu", "memory": "memory"}
# Keys that a running guest only picks up when it restarts, unless hotplugged.
REBOOT_KEYS = ("cores", "memory")
# pvem's own settings and guest metadata: nothing happens to the guest.
NO_IMPACT = ("metadata.labels", "metadata.apply_set", "spec.management", "spec.reboot_policy",
             "spec.snapshot_schedule", "spec.tags", "spec.description", "spec.pool", "spec.start_on_boot")


def worst(impacts: Iterable[str]) -> str:
    found = [IMPACTS.index(impact) for impact in impacts if impact in IMPACTS]
    return IMPACTS[max(found)] if found else "none"


def hotplug_features(hotplug: str | None) -> set[str]:
    """PVE's `hotplug` option as a set: `1` means network,disk,usb; `0` nothing."""
    text = DEFAULT_HOTPLUG if hotplug is None else str(hotplug).strip()
    if text == "1":
        text = DEFAULT_HOTPLUG
    if text in ("0", ""):
        return set()
    return {part.strip().lower() for part in text.split(",") if part.strip()}


def config_key_impact(key: str, running: bool, hotplug: str | None) -> str:
    """The impact of changing one Proxmox config key on a VM that is (or is not) running."""
    if not running:
        return "live"
    if key in REBOOT_KEYS:
        return "live" if HOTPLUG_FEATURE[key] in hotplug_features(hotplug) else "reboot"
    if key == "cloud-init" or key.startswith(("ci", "ipconfig", "sshkeys", "nameserver", "searchdomain")):
        return "reboot"  # cloud-init: read by the guest at boot
    return "live"


def pending_needs_reboot(pending_keys: Iterable[str], hotplug: str | None) -> list[str]:
    """The pending config keys that only a reboot applies (what `reboot_required` and `auto` act on)."""
    return [key for key in pending_keys if config_key_impact(key, True, hotplug) == "reboot"]


def change_impact(field: str, old: Any, new: Any, observed: Mapping[str, Any] | None, action: str) -> str:
    """The impact of one manifest plan change on the VM as last observed (`observed`: its status summary)."""
    if action == "create":
        return "none"  # no guest exists yet
    if action == "delete":
        return "destructive"
    if field in NO_IMPACT or field.startswith(("metadata.", "spec.snapshot_schedule")):
        return "none"
    status = str((observed or {}).get("status") or "unknown")
    running = status in ("running", "paused", "unknown")
    key = field.removeprefix("spec.")
    if key in CONFIG_KEYS:
        return config_key_impact(CONFIG_KEYS[key], running, (observed or {}).get("hotplug"))
    if key == "power_state":
        if new in ("stopped", "paused") and running and old != new:
            return "stop"
        return "live"
    if key.startswith("snapshots["):
        if new is None:
            return "destructive"  # a snapshot deleted
        return "live"
    if key.startswith("cloud_init"):
        return "reboot" if running else "live"
    return "live"  # disk grow, node (online migration), firewall rules, devices
