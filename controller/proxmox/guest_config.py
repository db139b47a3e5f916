"""A VM's guest config in Proxmox terms, both ways: config keys -> spec-shaped values, and spec -> keys. Pure.

This module owns the wire forms of the guest fields: `ciuser`, `cipassword`, `sshkeys` (URL-encoded,
newline-joined), `ipconfigN` (`ip=...,gw=...,ip6=...,gw6=...`), `nameserver` (space-separated),
`searchdomain`, `netN` (`virtio=MAC,bridge=...,tag=...,firewall=1`), extra disks `scsiN`, `tags`,
`onboot`, `agent`, and the cloud-init drive. `guest_from_config` is the one mapping from a Proxmox config
to spec fields (the reconciler's diff uses it; an import of existing VMs can use it too).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from controller.proxmox.marks import split_tags, strip_mark
from controller.proxmox.normalize import boot_disk_key, parse_disk, parse_property_string, to_bool

NIC_MODELS = ("virtio", "e1000", "e1000e", "vmxnet3", "rtl8139", "e1000-82540em", "e1000-82544gc",
              "e1000-82545em", "i82551", "i82557b", "i82559er", "ne2k_isa", "ne2k_pci", "pcnet")
CLOUD_INIT_KEYS = ("ciuser", "cipassword", "sshkeys", "nameserver", "searchdomain")
_NET_KEY = re.compile(r"^net(\d+)$")
_IPCONFIG_KEY = re.compile(r"^ipconfig(\d+)$")
_SCSI_KEY = re.compile(r"^scsi(\d+)$")
_DRIVE_KEY = re.compile(r"^(ide|sata|scsi|virtio)(\d+)$")
CLOUD_INIT_SLOTS = ("ide2", "ide0", "ide1", "ide3", "sata0", "sata1")


@dataclass(frozen=True)
class Nic:
    model: str
    mac: str | None
    bridge: str | None
    vlan: int | None
    firewall: bool
    raw: str = ""


@dataclass(frozen=True)
class GuestConfig:
    """The guest-related part of a VM config, parsed."""

    tags: tuple[str, ...] = ()
    description: str = ""  # without pvem's mark
    onboot: bool = False
    agent: bool = False
    nics: dict[int, Nic] = field(default_factory=dict)
    extra_disks: dict[str, dict[str, Any]] = field(default_factory=dict)  # scsiN (N >= 1) -> parsed drive
    cloud_init_drive: str | None = None  # the config key holding the cloud-init drive
    ciuser: str | None = None
    sshkeys: tuple[str, ...] = ()
    nameservers: tuple[str, ...] = ()
    searchdomain: str | None = None
    ipconfig: dict[int, dict[str, str]] = field(default_factory=dict)
    has_password: bool = False
    drive_keys: tuple[str, ...] = ()  # every drive slot in use (ideN, sataN, scsiN, virtioN)


def is_cloud_init_drive(value: object) -> bool:
    if not isinstance(value, str):
        return False
    volume = parse_disk(value)["volume"]
    return volume.endswith("cloudinit") or "-cloudinit" in volume


def parse_nic(value: str) -> Nic:
    props = parse_property_string(value, "model")
    model, mac = "virtio", None
    for name in NIC_MODELS:
        if name in props:
            model, mac = name, props[name] or None
            break
    else:
        if "model" in props:
            model, mac = props["model"], props.get("macaddr")
    vlan = props.get("tag")
    return Nic(model=model, mac=mac.upper() if mac else None, bridge=props.get("bridge"),
               vlan=int(vlan) if vlan and vlan.isdigit() else None, firewall=bool(to_bool(props.get("firewall"))),
               raw=value)


def nic_string(model: str, mac: str | None, bridge: str, vlan: int | None, firewall: bool) -> str:
    parts = [f"{model}={mac}" if mac else model, f"bridge={bridge}"]
    if vlan is not None:
        parts.append(f"tag={vlan}")
    parts.append(f"firewall={int(firewall)}")
    return ",".join(parts)


def parse_ipconfig(value: str) -> dict[str, str]:
    props = parse_property_string(value, "ip")
    names = {"ip": "ipv4", "gw": "gateway4", "ip6": "ipv6", "gw6": "gateway6"}
    return {names[key]: val for key, val in props.items() if key in names and val}


def ipconfig_string(entry: dict[str, Any]) -> str:
    names = (("ipv4", "ip"), ("gateway4", "gw"), ("ipv6", "ip6"), ("gateway6", "gw6"))
    return ",".join(f"{wire}={entry[key]}" for key, wire in names if entry.get(key))


def encode_sshkeys(keys: list[str]) -> str:
    """Proxmox wants `sshkeys` URL-encoded (every reserved character, spaces as %20), one key per line."""
    return urllib.parse.quote("\n".join(keys), safe="")


def decode_sshkeys(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    text = urllib.parse.unquote(value)
    return tuple(" ".join(line.split()) for line in text.splitlines() if line.strip())


def agent_enabled(value: object) -> bool:
    """`agent` is `1`, `0` or a property string `enabled=1,fstrim_cloned_disks=1`."""
    if value is None:
        return False
    props = parse_property_string(str(value), "enabled")
    return bool(to_bool(props.get("enabled")))


def guest_from_config(cfg: dict[str, Any]) -> GuestConfig:
    """The guest fields of a VM config (GET .../config, pending values already applied)."""
    boot = boot_disk_key(cfg)
    nics, ipconfig, disks = {}, {}, {}
    cloud_init_drive = None
    for key, value in cfg.items():
        if (found := _NET_KEY.match(key)) and value:
            nics[int(found.group(1))] = parse_nic(str(value))
        elif (found := _IPCONFIG_KEY.match(key)) and value:
            ipconfig[int(found.group(1))] = parse_ipconfig(str(value))
        elif _DRIVE_KEY.match(key) and is_cloud_init_drive(value):
            cloud_init_drive = key
        elif (found := _SCSI_KEY.match(key)) and key != boot and value:
            parsed = parse_disk(str(value))
            if parsed["media"] != "cdrom" and parsed["volume"] not in ("", "none"):
                disks[key] = parsed
    nameserver = cfg.get("nameserver")
    return GuestConfig(
        tags=tuple(split_tags(cfg.get("tags"))), description=strip_mark(cfg.get("description")),
        onboot=bool(to_bool(cfg.get("onboot"))), agent=agent_enabled(cfg.get("agent")), nics=nics,
        extra_disks=disks, cloud_init_drive=cloud_init_drive,
        ciuser=str(cfg["ciuser"]) if cfg.get("ciuser") else None,
        sshkeys=decode_sshkeys(cfg.get("sshkeys")),
        nameservers=tuple(str(nameserver).split()) if nameserver else (),
        searchdomain=str(cfg["searchdomain"]) if cfg.get("searchdomain") else None,
        ipconfig=ipconfig, has_password=bool(cfg.get("cipassword")),
        drive_keys=tuple(sorted(key for key, value in cfg.items() if _DRIVE_KEY.match(key) and value)),
    )


def spec_fields_from_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """A Proxmox config as pvem spec fields (tags without `pvem`, NICs with their MACs, disks with sizes);
    for adopting or importing existing VMs. The password cannot be read back (Proxmox keeps a hash)."""
    found = guest_from_config(cfg)
    cloud_init: dict[str, Any] = {}
    if found.ciuser:
        cloud_init["user"] = found.ciuser
    if found.sshkeys:
        cloud_init["ssh_keys"] = list(found.sshkeys)
    if found.ipconfig:
        cloud_init["ip_config"] = [found.ipconfig.get(index, {}) for index in range(max(found.ipconfig) + 1)]
    if found.nameservers:
        cloud_init["nameservers"] = list(found.nameservers)
    if found.searchdomain:
        cloud_init["search_domain"] = found.searchdomain
    disk_keys = sorted(found.extra_disks, key=lambda key: int(key[4:]))
    return {
        "tags": sorted(set(found.tags) - {"pvem"}), "description": found.description or None,
        "start_on_boot": found.onboot, "agent": found.agent,
        "networks": [{"bridge": nic.bridge, "model": nic.model, "vlan": nic.vlan, "firewall": nic.firewall,
                      "mac": nic.mac} for _index, nic in sorted(found.nics.items())] or None,
        "disks": [{"size_gb": found.extra_disks[key]["size_gb"], "storage": found.extra_disks[key]["storage"]}
                  for key in disk_keys],
        "cloud_init": cloud_init or None,
    }


def free_cloud_init_slot(used: tuple[str, ...]) -> str:
    """The config key to add a cloud-init drive on (ide2, as Proxmox's GUI does, unless it is taken)."""
    return next((slot for slot in CLOUD_INIT_SLOTS if slot not in used), "ide3")
