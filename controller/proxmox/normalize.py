"""Proxmox's loosely typed answers turned into plain Python values and two small dataclasses. Pure, no I/O.

This module owns the translation of what Proxmox returns into what the diff compares. Proxmox sends
`cores` as an int after a create and as a string after an update, `memory` always as a string (or as a
property string `current=2048` on newer releases), disk sizes as `12G`/`512M`/`1T`, booleans as 1, "1"
or "0", and tags in whatever order and separators were last written. Everything leaves here in one form.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from controller.proxmox.marks import join_tags

KIB = 1024
MIB = 1024**2
GIB = 1024**3
_SIZE_UNITS = {"": 1, "B": 1, "K": KIB, "M": MIB, "G": GIB, "T": 1024**4, "P": 1024**5}
_SIZE_RE = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>[KMGTPB]?)\s*$", re.IGNORECASE)
# The boot disk, in the order PVE's own tools look for one.
DISK_KEYS = ("scsi0", "virtio0", "sata0", "ide0")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def to_int(value: object) -> int | None:
    """An int from 4, "4", " 4 ", 4.0 or True; None for None, "" and anything that is not a whole number."""
    if isinstance(value, int):  # bool too: True is 1
        return int(value)
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, (str, bytes)):
        text = value.decode() if isinstance(value, bytes) else value
        text = text.strip()
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        if re.fullmatch(r"[+-]?\d+\.0*", text):
            return int(float(text))
    return None


def to_bool(value: object) -> bool | None:
    """True/False from PVE's 1, "1", "0", 0, "yes"...; None when unset or unreadable."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def size_to_bytes(size: str | int) -> int:
    """Bytes in a PVE size string: "12G", "512M", "1T", "1024K"; a bare number is bytes."""
    if isinstance(size, int):
        return size
    found = _SIZE_RE.match(size)
    if found is None:
        raise ValueError(f"not a size: {size!r}")
    return math.ceil(float(found.group("n")) * _SIZE_UNITS[found.group("unit").upper()])


def size_to_gb(size: str | int) -> int:
    """Whole GiB in a PVE size string, rounded up ("512M" is 1): a disk never shrinks, so never round down."""
    return math.ceil(size_to_bytes(size) / GIB)


def _round_half_up(number: int, unit: int) -> int:
    # Integer arithmetic: round() would round 2.5 GiB down to 2 (banker's rounding) and floats lose bytes.
    return (number + unit // 2) // unit


def bytes_to_mb(value: object) -> int | None:
    """Bytes (int or numeric string) to MiB, rounded to the nearest whole MiB."""
    number = to_int(value)
    return None if number is None else _round_half_up(number, MIB)


def bytes_to_gb(value: object) -> int | None:
    """Bytes to GiB rounded to the nearest whole GiB, as /cluster/resources' maxdisk and maxmem need."""
    number = to_int(value)
    return None if number is None else _round_half_up(number, GIB)


def parse_property_string(value: str, default_key: str) -> dict[str, str]:
    """PVE's `a,k=v,k2=v2` format; the leading bare item goes under `default_key`."""
    out: dict[str, str] = {}
    for part in value.split(","):
        if not part:
            continue
        key, sep, val = part.partition("=")
        if sep:
            out[key.strip()] = val.strip()
        else:
            out.setdefault(default_key, part.strip())
    return out


def parse_disk(value: str) -> dict[str, Any]:
    """A drive string: {"volume", "storage", "size_gb", "media", <other options as strings>}.

    "local-lvm:vm-100-disk-0,size=32G,iothread=1" gives volume "local-lvm:vm-100-disk-0", storage
    "local-lvm", size_gb 32, media "disk", iothread "1". size_gb is None when the string has no size.
    """
    props: dict[str, Any] = parse_property_string(value, "file")
    volume = props.pop("file", "")
    props["volume"] = volume
    props["storage"] = volume.split(":", 1)[0] if ":" in volume else None
    props["size_gb"] = size_to_gb(props["size"]) if props.get("size") else None
    props["media"] = props.get("media", "disk")
    return props


def is_disk(value: object) -> bool:
    """True for a drive string that is a disk: not a CD-ROM, not an empty drive."""
    if not isinstance(value, str) or not value:
        return False
    parsed = parse_disk(value)
    return parsed["media"] != "cdrom" and parsed["volume"] not in ("", "none", "cdrom")


def memory_to_mb(value: object) -> int | None:
    """`memory` as an int: "2048", 2048, or the newer property string "current=2048"."""
    number = to_int(value)
    if number is not None or not isinstance(value, str):
        return number
    return to_int(parse_property_string(value, "current").get("current"))


def pending_changes(items: list[dict[str, Any]]) -> dict[str, Any]:
    """From GET .../pending: key -> the pending value, or None for a pending delete; keys without either left out."""
    changes: dict[str, Any] = {}
    for item in items:
        if to_bool(item.get("delete")):
            changes[str(item["key"])] = None
        elif "pending" in item:
            changes[str(item["key"])] = item["pending"]
    return changes


@dataclass(frozen=True)
class ObservedVm:
    """One VM as the bulk /cluster/resources read shows it."""

    vmid: int
    node: str
    name: str | None
    status: str
    cores: int | None
    memory_mb: int | None
    disk_gb: int | None
    tags: str | None
    lock: str | None
    netin: int
    netout: int
    template: bool
    pool: str | None = None
    maxdisk_bytes: int | None = None
    uptime: int | None = None


def observed_vm_from_resource(item: dict[str, Any]) -> ObservedVm:
    """An ObservedVm from one /cluster/resources?type=vm item (maxcpu, maxmem and maxdisk in bytes)."""
    vmid = to_int(item.get("vmid"))
    if vmid is None:
        vmid = to_int(str(item.get("id", "")).rpartition("/")[2])
    if vmid is None:
        raise ValueError(f"resource item without a vmid: {item!r}")
    name = item.get("name")
    return ObservedVm(
        vmid=vmid,
        node=str(item.get("node") or ""),
        name=str(name) if name else None,
        status=str(item.get("status") or "unknown"),
        cores=to_int(item.get("maxcpu")),
        memory_mb=bytes_to_mb(item.get("maxmem")),
        disk_gb=bytes_to_gb(item.get("maxdisk")),
        tags=join_tags(item.get("tags")),
        lock=str(item["lock"]) if item.get("lock") else None,
        netin=to_int(item.get("netin")) or 0,
        netout=to_int(item.get("netout")) or 0,
        template=bool(to_bool(item.get("template"))),
        pool=str(item["pool"]) if item.get("pool") else None,
        maxdisk_bytes=to_int(item.get("maxdisk")),
        uptime=to_int(item.get("uptime")),
    )


@dataclass(frozen=True)
class VmConfig:
    """A VM's current config (GET .../config) in comparable form; `raw` keeps every key as Proxmox sent it."""

    name: str | None
    cores: int | None
    memory_mb: int | None
    disk_key: str | None
    disk_gb: int | None
    description: str | None
    tags: str | None
    digest: str | None
    net0: str | None
    onboot: bool | None
    raw: dict[str, Any] = field(default_factory=dict)


def boot_disk_key(cfg: dict[str, Any]) -> str | None:
    """The first of scsi0, virtio0, sata0, ide0 that holds a disk (CD-ROMs do not count)."""
    return next((key for key in DISK_KEYS if is_disk(cfg.get(key))), None)


def vm_config_from_api(cfg: dict[str, Any]) -> VmConfig:
    """A VmConfig from GET /nodes/{node}/qemu/{vmid}/config."""
    disk_key = boot_disk_key(cfg)
    disk_gb = parse_disk(str(cfg[disk_key]))["size_gb"] if disk_key else None
    name, description, net0, digest = (cfg.get(k) for k in ("name", "description", "net0", "digest"))
    return VmConfig(
        name=str(name) if name else None,
        cores=to_int(cfg.get("cores")),
        memory_mb=memory_to_mb(cfg.get("memory")),
        disk_key=disk_key,
        disk_gb=disk_gb,
        description=str(description) if description is not None else None,
        tags=join_tags(cfg.get("tags")),
        digest=str(digest) if digest else None,
        net0=str(net0) if net0 else None,
        onboot=to_bool(cfg.get("onboot")),
        raw=dict(cfg),
    )
