"""Pydantic specs of a VM's guest fields: template clone, cloud-init, extra disks, NICs, tags, pool.

They are part of `VmCreate` / `VmSettable` (controller/specs.py), so the REST API, manifests and the
OpenAPI document all share them. Shapes follow Proxmox's own rules (tag syntax, VLAN range, NIC models).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator


class Spec(BaseModel):
    # As controller.specs.Spec (not imported: specs.py imports this module).
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


CloneMode = Literal["full", "linked"]
NicModel = Literal["virtio", "e1000", "vmxnet3", "rtl8139"]
MAX_DISKS = 29  # scsi1..scsi29 (scsi0 is the boot disk; scsi30 is Proxmox's last)
MAX_NICS = 32
MAX_SSH_KEYS = 64
# Proxmox's pve-tag format: letters, digits, '_', then also '-', '+' and '.'.
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_+.-]*$")
_BRIDGE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$")
_STORAGE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_POOL = re.compile(r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+){0,2}$")
_MAC = re.compile(r"^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$")
_SEARCH_DOMAIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_CI_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
SSH_KEY_TYPES = ("ssh-rsa", "ssh-dss", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                 "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")
_KEY_BODY = re.compile(r"^AAAA[A-Za-z0-9+/]+={0,3}$")


def check_tag(value: str) -> str:
    if not _TAG.match(value) or len(value) > 128:
        raise ValueError(f"tag {value!r} is not a Proxmox tag: letters, digits, '_', '-', '+' or '.', "
                         "not starting with '-', '+' or '.'")
    return value


def check_ssh_key(value: str) -> str:
    parts = value.split()
    if len(parts) < 2 or parts[0] not in SSH_KEY_TYPES or not _KEY_BODY.match(parts[1]):
        raise ValueError("must be an OpenSSH public key: '<type> <base64> [comment]', type one of "
                         + ", ".join(SSH_KEY_TYPES))
    return " ".join(parts)


def _cidr(value: str, version: int) -> str:
    try:
        network = ipaddress.ip_interface(value)
    except ValueError:
        raise ValueError(f"must be an IPv{version} address in CIDR form (for example "
                         f"{'192.0.2.10/24' if version == 4 else '2001:db8::10/64'})") from None
    if network.version != version or "/" not in value:
        raise ValueError(f"must be an IPv{version} address in CIDR form")
    return value


def _address(value: str, version: int) -> str:
    try:
        found = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"must be an IPv{version} address") from None
    if found.version != version:
        raise ValueError(f"must be an IPv{version} address")
    return value


class IpConfig(Spec):
    """One NIC's cloud-init addressing (Proxmox `ipconfigN`)."""

    ipv4: str | None = Field(None, description="`dhcp` or a CIDR such as 192.0.2.10/24.")
    gateway4: str | None = None
    ipv6: str | None = Field(None, description="`dhcp`, `auto` (SLAAC) or a CIDR.")
    gateway6: str | None = None

    @field_validator("ipv4")
    @classmethod
    def _ipv4(cls, value: str | None) -> str | None:
        return value if value in (None, "dhcp") else _cidr(str(value), 4)

    @field_validator("ipv6")
    @classmethod
    def _ipv6(cls, value: str | None) -> str | None:
        return value if value in (None, "dhcp", "auto") else _cidr(str(value), 6)

    @field_validator("gateway4")
    @classmethod
    def _gw4(cls, value: str | None) -> str | None:
        return None if value is None else _address(value, 4)

    @field_validator("gateway6")
    @classmethod
    def _gw6(cls, value: str | None) -> str | None:
        return None if value is None else _address(value, 6)


class CloudInit(Spec):
    """Cloud-init settings. `password` is write-only. In an update, keys left out keep their value and a key
    set to null is cleared."""

    # Passwords are taken exactly as typed.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    user: Annotated[str, StringConstraints(strip_whitespace=True)] | None = None
    password: str | None = Field(None, min_length=1, max_length=1024,
                                 description="Write-only: sent to Proxmox, never returned.")
    ssh_keys: list[str] | None = Field(None, max_length=MAX_SSH_KEYS, description="OpenSSH public keys.")
    ip_config: list[IpConfig] | None = Field(None, max_length=MAX_NICS,
                                             description="One entry per NIC, in order (ipconfig0, ipconfig1...).")
    nameservers: list[str] | None = Field(None, max_length=3)
    search_domain: Annotated[str, StringConstraints(strip_whitespace=True)] | None = None

    @field_validator("user")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        if value is not None and not _CI_USER.match(value):
            raise ValueError("must be a user name: a letter or '_', then letters, digits, '_', '.' or '-'")
        return value

    @field_validator("ssh_keys")
    @classmethod
    def _keys(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [check_ssh_key(key.strip()) for key in value]

    @field_validator("nameservers")
    @classmethod
    def _nameservers(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for item in value:
            try:
                ipaddress.ip_address(item.strip())
            except ValueError:
                raise ValueError(f"nameserver {item!r} is not an IP address") from None
        return [item.strip() for item in value]

    @field_validator("search_domain")
    @classmethod
    def _search(cls, value: str | None) -> str | None:
        if value is not None and not _SEARCH_DOMAIN.match(value):
            raise ValueError("must be a DNS domain name")
        return value


class DiskSpec(Spec):
    """An extra data disk; the list's order gives scsi1, scsi2, ..."""

    size_gb: Annotated[int, Field(ge=1, le=65_536, strict=True)]
    storage: str | None = Field(None, description="Proxmox storage; default: proxmox.storage.")

    @field_validator("storage")
    @classmethod
    def _storage(cls, value: str | None) -> str | None:
        if value is not None and not _STORAGE.match(value):
            raise ValueError("must be a Proxmox storage id")
        return value


class NetworkSpec(Spec):
    """A NIC; the list's order gives net0, net1, ..."""

    bridge: str | None = Field(None, description="Default: proxmox.bridge.")
    model: NicModel = "virtio"
    vlan: Annotated[int, Field(ge=1, le=4094, strict=True)] | None = None
    firewall: Annotated[bool, Field(strict=True)] = True
    mac: str | None = Field(None, description="Optional; otherwise Proxmox's generated MAC is kept.")

    @field_validator("bridge")
    @classmethod
    def _bridge(cls, value: str | None) -> str | None:
        if value is not None and not _BRIDGE.match(value):
            raise ValueError("must be a Linux bridge name such as vmbr0")
        return value

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _MAC.match(value):
            raise ValueError("must be a MAC address such as BC:24:11:12:34:56")
        if int(value[:2], 16) & 1:
            raise ValueError("must be a unicast MAC address (first octet even)")
        return value.upper()


def check_pool(value: str | None) -> str | None:
    if value is not None and not _POOL.match(value):
        raise ValueError("must be a Proxmox pool id: letters, digits, '_', '-' or '.'")
    return value


def canonical_tags(tags: list[str] | None) -> list[str] | None:
    """Tags as pvem stores them: lower case, de-duplicated, sorted, without pvem's own `pvem` tag."""
    if tags is None:
        return None
    return sorted({check_tag(tag.strip()).lower() for tag in tags if tag.strip()} - {"pvem"})


TemplateRef = int | Annotated[str, StringConstraints(min_length=1, max_length=255, strip_whitespace=True)]
