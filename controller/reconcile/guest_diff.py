"""The diff of a VM's guest fields (issue 7): pure, like controller/reconcile/diff.py, which calls it.

Rules: tags are a case-insensitive set (order is never drift) and always keep `pvem`; a NIC's MAC that
the spec leaves out is observed, never drift; extra disks are added and grown, and a disk pvem attached
that left the spec is detached (`delete=scsiN`: Proxmox keeps it as unusedN); cloud-init is edited in
place (config keys, then a regenerate of the drive), never by re-cloning; the description keeps pvem's
mark beside the user's text; the VM moves to its pool when that differs.
"""

from __future__ import annotations

from controller.proxmox.guest_config import (
    encode_sshkeys,
    free_cloud_init_slot,
    ipconfig_string,
    nic_string,
    parse_ipconfig,
)
from controller.proxmox.marks import MARK_TAG, description_with_mark
from controller.reconcile.model import Action, DesiredVm, ObservedVm, Policy

CLOUD_INIT_CONFIG = ("ciuser", "cipassword", "sshkeys", "nameserver", "searchdomain")


def guest_changes(desired: DesiredVm, observed: ObservedVm, policy: Policy) -> dict[str, object]:
    """Config keys to write for the guest fields; a None value deletes (detaches) the key."""
    want, seen = desired.guest, observed.guest
    if want is None or seen is None:
        return {}
    changes: dict[str, object] = {}
    tags = sorted({tag.lower() for tag in want.tags} | {MARK_TAG})
    if sorted(set(seen.tags)) != tags:
        changes["tags"] = ";".join(tags)
    if seen.description != (want.description or "").strip():
        changes["description"] = description_with_mark(desired.id, want.description or "")
    if seen.onboot != want.start_on_boot:
        changes["onboot"] = want.start_on_boot
    if seen.agent != want.agent:
        changes["agent"] = "1" if want.agent else "0"
    changes.update(_nic_changes(desired, observed, policy))
    for index, disk in enumerate(want.disks):
        key = f"scsi{index + 1}"
        if key not in seen.extra_disks:
            changes[key] = f"{disk.get('storage') or policy.storage}:{disk['size_gb']}"
    for key in detached_disks(desired, observed):
        changes[key] = None
    changes.update(_cloud_init_changes(desired, observed, policy))
    return changes


def _nic_changes(desired: DesiredVm, observed: ObservedVm, policy: Policy) -> dict[str, object]:
    assert desired.guest is not None and observed.guest is not None
    networks, nics = desired.guest.networks, observed.guest.nics
    if networks is None:
        return {}
    changes: dict[str, object] = {}
    for index, net in enumerate(networks):
        seen = nics.get(index)
        bridge = net.get("bridge") or policy.bridge
        model, vlan, mac = net.get("model", "virtio"), net.get("vlan"), net.get("mac")
        firewall = net.get("firewall", True)
        same = seen is not None and (seen.model, seen.bridge, seen.vlan, seen.firewall) == (
            model, bridge, vlan, firewall)
        if not same or (mac and seen is not None and seen.mac != mac.upper()):
            changes[f"net{index}"] = nic_string(model, mac or (seen.mac if seen else None), bridge, vlan, firewall)
    for index in nics:
        if index >= len(networks):
            changes[f"net{index}"] = None
    return changes


def detached_disks(desired: DesiredVm, observed: ObservedVm) -> list[str]:
    """Extra disks pvem attached (it recorded their size) that are no longer in the spec."""
    assert desired.guest is not None and observed.guest is not None
    wanted = {f"scsi{index + 1}" for index in range(len(desired.guest.disks))}
    return sorted(key for key in observed.guest.extra_disks if key in desired.guest.applied_disks and key not in wanted)


def _cloud_init_changes(desired: DesiredVm, observed: ObservedVm, policy: Policy) -> dict[str, object]:
    assert desired.guest is not None and observed.guest is not None
    want, seen = desired.guest, observed.guest
    ci = want.cloud_init
    if ci is None:
        return {}
    changes: dict[str, object] = {}
    if seen.cloud_init_drive is None:
        changes[free_cloud_init_slot(seen.drive_keys)] = f"{policy.storage}:cloudinit"
    if (ci.get("user") or None) != seen.ciuser:
        changes["ciuser"] = ci.get("user")
    keys = tuple(ci.get("ssh_keys") or ())
    if keys != seen.sshkeys:
        changes["sshkeys"] = encode_sshkeys(list(keys)) if keys else None
    entries = [ipconfig_string(entry) for entry in ci.get("ip_config") or ()]
    for index, text in enumerate(entries):
        if parse_ipconfig(text) != seen.ipconfig.get(index, {}):
            changes[f"ipconfig{index}"] = text or None
    for index in seen.ipconfig:
        if index >= len(entries):
            changes[f"ipconfig{index}"] = None
    servers = tuple(ci.get("nameservers") or ())
    if servers != seen.nameservers:
        changes["nameserver"] = " ".join(servers) or None
    if (ci.get("search_domain") or None) != seen.searchdomain:
        changes["searchdomain"] = ci.get("search_domain")
    if want.cloud_init_digest != want.applied_cloud_init and (want.password or seen.has_password):
        changes["cipassword"] = want.password  # Proxmox keeps a hash: sent when the spec's digest moved
    return changes


def needs_regenerate(desired: DesiredVm, changes: dict[str, object]) -> bool:
    want = desired.guest
    if want is None or want.cloud_init is None:
        return False
    touched = any(key in CLOUD_INIT_CONFIG or key.startswith(("ipconfig", "ide", "sata")) for key in changes)
    return touched or want.cloud_init_digest != want.applied_cloud_init


def guest_actions(desired: DesiredVm, observed: ObservedVm, changes: dict[str, object]) -> list[Action]:
    """What follows the config write: the cloud-init regenerate, extra disk growth, a pool move."""
    want, seen = desired.guest, observed.guest
    if want is None or seen is None:
        return []
    actions: list[Action] = []
    if needs_regenerate(desired, changes):
        actions.append(Action("cloudinit_regenerate", {"digest": want.cloud_init_digest}))
    for index, disk in enumerate(want.disks):
        key = f"scsi{index + 1}"
        present = seen.extra_disks.get(key)
        if present is None:
            continue
        known = max(present.get("size_gb") or 0, want.applied_disks.get(key, 0))
        if known and known < disk["size_gb"]:
            actions.append(Action("disk_resize", {"disk_key": key, "size_gb": disk["size_gb"]}))
    if want.pool is not None and observed.pool != want.pool:
        actions.append(Action("pool_move", {"pool": want.pool}))
    return actions


def guest_before(observed: ObservedVm, key: str) -> object:
    """What Proxmox held for a guest config key a write is about to change (drift audits); None if unknown.
    Never a secret: the cloud-init password is only ever known to be set."""
    seen = observed.guest
    if seen is None:
        return None
    simple: dict[str, object] = {"tags": list(seen.tags), "description": seen.description, "onboot": seen.onboot,
                                 "agent": seen.agent, "ciuser": seen.ciuser, "sshkeys": list(seen.sshkeys),
                                 "nameserver": " ".join(seen.nameservers) or None, "searchdomain": seen.searchdomain,
                                 "cipassword": "(set)" if seen.has_password else None}
    if key in simple:
        return simple[key]
    if key.startswith("net") and key[3:].isdigit():
        nic = seen.nics.get(int(key[3:]))
        return nic.raw if nic else None
    if key.startswith("ipconfig") and key[8:].isdigit():
        return seen.ipconfig.get(int(key[8:]))
    disk = seen.extra_disks.get(key)
    return dict(disk) if disk else None
