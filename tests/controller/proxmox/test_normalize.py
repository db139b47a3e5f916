"""Normalisation of Proxmox's loosely typed answers, table by table."""

from __future__ import annotations

from typing import Any

import pytest

from controller.proxmox.normalize import (
    GIB,
    MIB,
    ObservedVm,
    boot_disk_key,
    bytes_to_gb,
    bytes_to_mb,
    memory_to_mb,
    observed_vm_from_resource,
    parse_disk,
    pending_changes,
    size_to_gb,
    to_bool,
    to_int,
    vm_config_from_api,
)


@pytest.mark.parametrize(("value", "expected"), [
    (4, 4), ("4", 4), (" 4 ", 4), ("-1", -1), (4.0, 4), ("4.0", 4), (True, 1), (False, 0),
    (None, None), ("", None), ("4.5", None), (4.5, None), ("four", None), ("4G", None), ([4], None),
])
def test_to_int(value: object, expected: int | None) -> None:
    result = to_int(value)
    assert result == expected
    assert result is None or type(result) is int


@pytest.mark.parametrize(("value", "expected"), [
    (1, True), ("1", True), (True, True), ("yes", True), ("on", True),
    (0, False), ("0", False), (False, False), ("no", False),
    (None, None), ("", None), ("maybe", None),
])
def test_to_bool(value: object, expected: bool | None) -> None:
    assert to_bool(value) is expected


@pytest.mark.parametrize(("size", "expected"), [
    ("12G", 12), ("12g", 12), ("512M", 1), ("1024M", 1), ("1025M", 2), ("1T", 1024), ("1.5G", 2),
    ("1048576K", 1), (str(GIB), 1), ("0", 0), (GIB * 3, 3), (GIB * 3 + 1, 4),
])
def test_size_to_gb_rounds_up(size: str | int, expected: int) -> None:
    assert size_to_gb(size) == expected


@pytest.mark.parametrize("bad", ["", "G", "12X", "twelve", "-1G"])
def test_size_to_gb_refuses_garbage(bad: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        size_to_gb(bad)


@pytest.mark.parametrize(("value", "mb", "gb"), [
    (2 * GIB, 2048, 2), (512 * MIB, 512, 1), (int(2.5 * GIB), 2560, 3), (GIB - 1, 1024, 1),
    (34359738368, 32768, 32), (int(31.6 * GIB), 32358, 32),
    (int(32.4 * GIB), 33178, 32), ("2147483648", 2048, 2), (0, 0, 0), (None, None, None),
])
def test_bytes_to_mb_and_gb_round_to_nearest(value: object, mb: int | None, gb: int | None) -> None:
    assert bytes_to_mb(value) == mb
    assert bytes_to_gb(value) == gb


@pytest.mark.parametrize(("value", "expected"), [
    ("local-lvm:vm-100-disk-0,size=32G,iothread=1",
     {"volume": "local-lvm:vm-100-disk-0", "storage": "local-lvm", "size_gb": 32, "media": "disk",
      "size": "32G", "iothread": "1"}),
    ("file=local:100/vm-100-disk-0.qcow2,size=512M",
     {"volume": "local:100/vm-100-disk-0.qcow2", "storage": "local", "size_gb": 1, "media": "disk", "size": "512M"}),
    ("local:iso/debian.iso,media=cdrom,size=600M",
     {"volume": "local:iso/debian.iso", "storage": "local", "size_gb": 1, "media": "cdrom", "size": "600M"}),
    ("none,media=cdrom", {"volume": "none", "storage": None, "size_gb": None, "media": "cdrom"}),
    ("local-lvm:vm-100-disk-1", {"volume": "local-lvm:vm-100-disk-1", "storage": "local-lvm", "size_gb": None,
                                 "media": "disk"}),
])
def test_parse_disk(value: str, expected: dict[str, Any]) -> None:
    assert parse_disk(value) == expected


@pytest.mark.parametrize(("cfg", "expected"), [
    ({"scsi0": "local-lvm:vm-1-disk-0,size=8G"}, "scsi0"),
    ({"ide0": "local:iso/x.iso,media=cdrom", "virtio0": "local-lvm:vm-1-disk-0,size=8G"}, "virtio0"),
    ({"ide0": "none,media=cdrom", "sata0": "local-lvm:vm-1-disk-0,size=8G"}, "sata0"),
    ({"ide2": "local-lvm:vm-1-disk-0,size=8G"}, None),
    ({"scsi0": "", "ide0": "local-lvm:vm-1-disk-0,size=8G"}, "ide0"),
    ({}, None),
])
def test_boot_disk_key(cfg: dict[str, Any], expected: str | None) -> None:
    assert boot_disk_key(cfg) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("2048", 2048), (2048, 2048), ("current=4096", 4096), ("current=4096,foo=1", 4096), (None, None), ("x", None),
])
def test_memory_to_mb(value: object, expected: int | None) -> None:
    assert memory_to_mb(value) == expected


def test_pending_changes() -> None:
    items: list[dict[str, Any]] = [
        {"key": "cores", "value": 2, "pending": "4"},
        {"key": "name", "value": "web1"},
        {"key": "net1", "value": "virtio,bridge=vmbr1", "delete": 1},
        {"key": "memory", "pending": "4096"},
    ]
    assert pending_changes(items) == {"cores": "4", "net1": None, "memory": "4096"}


RESOURCE = {"id": "qemu/100", "type": "qemu", "vmid": 100, "name": "web1", "node": "pve1", "status": "running",
            "template": 0, "maxcpu": 2, "maxmem": 2147483648, "maxdisk": 34359738368, "netin": 1200, "netout": 300,
            "tags": "web;pvem"}


@pytest.mark.parametrize(("item", "expected"), [
    (RESOURCE, ObservedVm(vmid=100, node="pve1", name="web1", status="running", cores=2, memory_mb=2048,
                          disk_gb=32, tags="pvem;web", lock=None, netin=1200, netout=300, template=False,
                          maxdisk_bytes=34359738368)),
    ({"id": "qemu/101", "node": "pve2", "status": "stopped", "template": 1, "lock": "backup", "maxcpu": "4",
      "maxmem": "1073741824", "maxdisk": 0},
     ObservedVm(vmid=101, node="pve2", name=None, status="stopped", cores=4, memory_mb=1024, disk_gb=0, tags=None,
                lock="backup", netin=0, netout=0, template=True, maxdisk_bytes=0)),
    ({"vmid": 103, "node": "pve1", "status": "stopped", "pool": "team-a"},
     ObservedVm(vmid=103, node="pve1", name=None, status="stopped", cores=None, memory_mb=None, disk_gb=None,
                tags=None, lock=None, netin=0, netout=0, template=False, pool="team-a")),
    ({"vmid": 102, "node": "pve1", "status": "unknown"},
     ObservedVm(vmid=102, node="pve1", name=None, status="unknown", cores=None, memory_mb=None, disk_gb=None,
                tags=None, lock=None, netin=0, netout=0, template=False)),
])
def test_observed_vm_from_resource(item: dict[str, Any], expected: ObservedVm) -> None:
    assert observed_vm_from_resource(item) == expected


def test_observed_vm_needs_a_vmid() -> None:
    with pytest.raises(ValueError, match="without a vmid"):
        observed_vm_from_resource({"node": "pve1"})


@pytest.mark.parametrize(("cfg", "expected"), [
    ({"name": "web1", "cores": 2, "memory": "2048", "scsi0": "local-lvm:vm-100-disk-0,size=32G",
      "description": "hi\npvem:id=x", "tags": "web,Pvem", "digest": "abc",
      "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0", "onboot": "1"},
     {"name": "web1", "cores": 2, "memory_mb": 2048, "disk_key": "scsi0", "disk_gb": 32,
      "description": "hi\npvem:id=x", "tags": "pvem;web", "digest": "abc",
      "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0", "onboot": True}),
    ({"cores": "4", "memory": "current=1024", "ide2": "none,media=cdrom", "virtio0": "local-lvm:vm-1-disk-0,size=1T",
      "onboot": 0},
     {"name": None, "cores": 4, "memory_mb": 1024, "disk_key": "virtio0", "disk_gb": 1024, "description": None,
      "tags": None, "digest": None, "net0": None, "onboot": False}),
    ({}, {"name": None, "cores": None, "memory_mb": None, "disk_key": None, "disk_gb": None, "description": None,
          "tags": None, "digest": None, "net0": None, "onboot": None}),
])
def test_vm_config_from_api(cfg: dict[str, Any], expected: dict[str, Any]) -> None:
    config = vm_config_from_api(cfg)
    assert {key: getattr(config, key) for key in expected} == expected
    assert config.raw == cfg
