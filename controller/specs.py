"""Pydantic specs: what a client may ask for. One set of models serves the REST API and the manifests.

This module: the shared base (`Spec`, error messages), VMs, snapshots and imports; the guest fields
are in `guest_specs`, firewall rules in `firewall_specs`, accounts in `account_specs`.

Field rules follow Proxmox's own: VM names are DNS names, snapshot names start with a letter, disks
only grow. Unknown fields are rejected (a typo in desired state must not pass silently).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from controller.guest_specs import (
    MAX_DISKS,
    MAX_NICS,
    CloneMode,
    CloudInit,
    DiskSpec,
    NetworkSpec,
    TemplateRef,
    canonical_tags,
    check_pool,
)

PowerState = Literal["running", "stopped", "paused"]
Management = Literal["enforce", "observe"]
RebootPolicy = Literal["never", "auto"]
PowerAction = Literal["start", "stop", "restart", "pause", "unpause"]
SyncStatus = Literal["pending", "syncing", "synced", "error", "deleting"]

_DNS_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_NODE_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_SNAPSHOT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{1,39}$")
# Kubernetes' label syntax: an optional DNS-subdomain prefix and `/`, then a name of up to 63 characters.
_LABEL_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"^(?:[a-z0-9](?:[-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^(?:{_LABEL_NAME})?$")
MAX_LABELS = 64


_FRIENDLY = {"extra_forbidden": "unknown field", "missing": "field required",
             "model_type": "Input should be a valid dictionary", "model_attributes_type": "Input should be a "
             "valid dictionary"}


def error_messages(exc: ValidationError) -> list[tuple[tuple[str | int, ...], str]]:
    """pydantic's errors as (location, message) in words for people ("unknown field", not "extra_forbidden")."""
    found = []
    for error in exc.errors():
        message = _FRIENDLY.get(error.get("type", ""), error.get("msg", "invalid value"))
        found.append((tuple(error.get("loc", ())), message.removeprefix("Value error, ")))
    return found


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def check_vm_name(value: str) -> str:
    if len(value) > 253:
        raise ValueError("must be at most 253 characters")
    labels = value.split(".")
    if not all(_DNS_LABEL.match(label) for label in labels):
        raise ValueError(
            "must be a DNS name: letters, digits and '-' in dot-separated labels of 1 to 63 characters, "
            "each starting and ending with a letter or digit"
        )
    return value


def check_node_name(value: str) -> str:
    if not _NODE_NAME.match(value):
        raise ValueError("must be a Proxmox node name: letters, digits and '-', 1 to 63 characters")
    return value


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    if len(labels) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels")
    for key, value in labels.items():
        if not _LABEL_KEY.match(key):
            raise ValueError(f"label key {key!r} is not valid: an optional DNS prefix and '/', then 1 to 63 "
                             "letters, digits, '-', '_' or '.', starting and ending with a letter or digit")
        if not _LABEL_VALUE.match(value):
            raise ValueError(f"label {key!r} has an invalid value {value!r}: up to 63 letters, digits, '-', '_' "
                             "or '.', starting and ending with a letter or digit (or empty)")
    return labels


def parse_label_selector(text: str) -> dict[str, str]:
    """`tier=web,env=prod` -> {"tier": "web", "env": "prod"} (equality only, every pair must match)."""
    selector: dict[str, str] = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip().removeprefix("=")  # `k==v` is accepted as `k=v`
        if not sep or not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
            raise ValueError(f"{part!r} is not a label requirement; expected key=value[,key=value...]")
        selector[key] = value
    return selector


_DURATION = re.compile(r"^\s*(?P<n>\d+)\s*(?P<unit>[smhdw])\s*$", re.IGNORECASE)
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SCHEDULE_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,23}$")


def duration_seconds(text: str) -> int:
    """`30m`, `6h`, `1d`, `2w` (or `90s`) as seconds."""
    found = _DURATION.match(text)
    if found is None:
        raise ValueError("must be a duration such as 30m, 6h or 1d (units s, m, h, d, w)")
    return int(found.group("n")) * _DURATION_SECONDS[found.group("unit").lower()]


class SnapshotSchedule(BaseModel):
    """Scheduled snapshots: one every `every`, the newest `keep` kept, named `<prefix>-YYYYMMDD-HHMMSS` (UTC)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    every: str = Field(description="A duration: 30m, 6h, 1d (at least 1m).")
    keep: Annotated[int, Field(ge=1, le=100, strict=True)] = Field(description="How many of these to keep.")
    prefix: str = Field("auto", description="Name prefix: names are <prefix>-YYYYMMDD-HHMMSS (UTC).")

    @field_validator("every")
    @classmethod
    def _every(cls, value: str) -> str:
        if duration_seconds(value) < 60:
            raise ValueError("must be at least 1m")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _SCHEDULE_PREFIX.match(value):
            raise ValueError("must start with a letter, then letters, digits, '-' or '_', at most 24 characters")
        return value


VmName = Annotated[str, StringConstraints(min_length=1)]
Labels = Annotated[dict[str, str], AfterValidator(check_labels)]
Cores = Annotated[int, Field(ge=1, le=512, strict=True)]
MemoryMb = Annotated[int, Field(ge=16, le=4_194_304, strict=True)]
DiskGb = Annotated[int, Field(ge=1, le=65_536, strict=True)]


class GuestFields(Spec):
    """Guest fields shared by create, update and manifests (issue 7). On create, omitted ones take their
    defaults; on update and in manifests, omitted ones are left alone."""

    template: TemplateRef | None = Field(None, description="The template VM to clone, by name or vmid. Fixed "
                                                          "at creation.")
    clone_mode: CloneMode | None = Field(None, description="full (default) or linked. Fixed at creation.")
    cloud_init: CloudInit | None = Field(None, description="Cloud-init settings; a partial update merges, a key "
                                                          "set to null clears it. `password` is write-only.")
    disks: list[DiskSpec] | None = Field(None, max_length=MAX_DISKS,
                                         description="Extra data disks in order: scsi1, scsi2, ... Only grow; "
                                                     "a disk removed from the list is detached (kept as unusedN).")
    networks: list[NetworkSpec] | None = Field(None, max_length=MAX_NICS,
                                               description="NICs in order: net0, net1, ... Without it, one "
                                                           "virtio NIC on proxmox.bridge.")
    tags: list[str] | None = Field(None, max_length=64, description="Proxmox tags: a case-insensitive set; "
                                                                    "pvem's own `pvem` tag is always kept.")
    pool: str | None = Field(None, description="A Proxmox resource pool; the VM joins it and moves on change.")
    start_on_boot: Annotated[bool, Field(strict=True)] | None = Field(None, description="Proxmox `onboot`.")
    agent: Annotated[bool, Field(strict=True)] | None = Field(None, description="QEMU guest agent (default on).")
    description: str | None = Field(None, max_length=8192, description="Proxmox notes; pvem's mark is kept "
                                                                        "beside this text.")

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        return canonical_tags(value)

    @field_validator("pool")
    @classmethod
    def _pool(cls, value: str | None) -> str | None:
        return check_pool(value)

    @field_validator("template")
    @classmethod
    def _template(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and not 100 <= value <= 999_999_999:
            raise ValueError("a template vmid is between 100 and 999999999")
        return value


class VmCreate(GuestFields):
    name: VmName
    cpu_cores: Cores = 1
    memory_mb: MemoryMb = 512
    disk_gb: DiskGb = 10
    node: str | None = None
    power_state: PowerState = "stopped"
    labels: Labels = Field(default_factory=dict, description="Free-form key/value labels, filterable.")
    management: Management = Field("enforce", description="enforce: pvem corrects Proxmox; observe: pvem "
                                   "never writes, it reports drift.")
    reboot_policy: RebootPolicy | None = Field(None, description="never: changes that need a reboot wait for "
                                               "a restart; auto: pvem reboots. Default: controller.reboot_policy.")
    snapshot_schedule: SnapshotSchedule | None = None
    owner_id: str | None = Field(None, description="Admins only: create the VM for this user.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_vm_name(value)

    @field_validator("node")
    @classmethod
    def _node(cls, value: str | None) -> str | None:
        return None if value is None else check_node_name(value)


class VmSettable(GuestFields):
    """The VM fields an update may set; omitted ones are left alone. Shared by PUT and manifests."""

    cpu_cores: Cores | None = None
    memory_mb: MemoryMb | None = None
    disk_gb: DiskGb | None = None
    node: str | None = None
    power_state: PowerState | None = None
    management: Management | None = None
    reboot_policy: RebootPolicy | None = None
    snapshot_schedule: SnapshotSchedule | None = Field(None, description="null removes the schedule.")

    @field_validator("node", "cpu_cores", "memory_mb", "disk_gb", "power_state", "management", "reboot_policy")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must not be null")
        return value

    @field_validator("node")
    @classmethod
    def _node(cls, value: str) -> str:
        return check_node_name(value)


class VmUpdate(VmSettable):
    name: VmName | None = None
    labels: Labels | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError("must not be null")
        return check_vm_name(value)

    @field_validator("labels")
    @classmethod
    def _labels_not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must not be null")
        return value


class VmActionRequest(Spec):
    action: str = Field(description="One of start, stop, restart, pause, unpause.")


class SnapshotCreate(Spec):
    name: str
    description: str | None = Field(None, max_length=8192)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _SNAPSHOT_NAME.match(value):
            raise ValueError(
                "must start with a letter, then letters, digits, '-' or '_', 2 to 40 characters"
            )
        if value.lower() == "current":
            raise ValueError("'current' is reserved by Proxmox")
        return value


class VmImportRequest(Spec):
    vmid: Annotated[int, Field(ge=1, le=999_999_999, strict=True)] = Field(description="The Proxmox VM id.")
    owner_id: str | None = Field(None, description="Import for this user (default: the calling admin).")
    management: Management = Field("enforce", description="observe: pvem only watches the imported VM.")
