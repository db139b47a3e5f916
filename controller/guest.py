"""The guest fields of a VM's spec in the domain: their stored forms, merges, checks and redaction.

Used by controller/vms.py (REST) and the manifest plan alike, so both treat `template`, `clone_mode`,
`cloud_init`, `disks`, `networks`, `tags`, `pool`, `start_on_boot`, `agent` and `description` the same.
The cloud-init password leaves this module only towards the reconciler: answers, exports, plans and
audit records get `password_set` (and `password_changed`), never the value.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.errors import Conflict, Invalid
from controller.reconcile.model import DesiredGuest
from controller.specs import VmCreate
from controller.store.models import ClusterTemplate, VirtualMachine

GUEST_FIELDS = ("template", "clone_mode", "cloud_init", "disks", "networks", "tags", "pool", "start_on_boot",
                "agent", "description")
FIXED_FIELDS = ("template", "clone_mode")
DEFAULTS: dict[str, Any] = {"disks": [], "tags": [], "start_on_boot": False, "agent": True}
REDACTED = "(write-only)"


def _invalid(message: str, field: str) -> Invalid:
    """A 400 naming the field, with `details` as validation errors carry them."""
    return Invalid(message, field=field, details=[{"field": field, "message": message}])


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _cloud_init_form(value: dict[str, Any]) -> dict[str, Any]:
    found = _compact(value)
    if "ip_config" in found:
        found["ip_config"] = [_compact(dict(item)) for item in found["ip_config"]]
    return found


def stored_form(key: str, value: Any) -> Any:
    """A requested value (from model_dump) in the form its column keeps."""
    if value is None:
        return DEFAULTS.get(key)
    if key == "cloud_init":
        return _cloud_init_form(value)
    if key == "disks":
        return [_compact(dict(item)) for item in value]
    if key == "networks":
        return [{"bridge": item.get("bridge"), "model": item.get("model", "virtio"), "vlan": item.get("vlan"),
                 "firewall": item.get("firewall", True), "mac": item.get("mac")} for item in value]
    return value


def merge_cloud_init(current: dict[str, Any] | None, given: dict[str, Any] | None) -> dict[str, Any] | None:
    """A partial cloud_init merged over the stored one: keys left out stay, keys given as null are cleared."""
    if given is None:
        return None
    merged = dict(current or {})
    for key, value in given.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return _cloud_init_form(merged)


def create_columns(spec: VmCreate) -> dict[str, Any]:
    """The guest columns of a new VM."""
    values = spec.model_dump(include=set(GUEST_FIELDS))
    columns = {key: stored_form(key, values[key]) for key in GUEST_FIELDS}
    if columns["template"] is not None and columns["clone_mode"] is None:
        columns["clone_mode"] = "full"
    return columns


def requested_values(vm: VirtualMachine, requested: dict[str, Any]) -> dict[str, Any]:
    """Requested guest values (model_dump(exclude_unset=True)) in stored form, merged where the issue says so.
    Raises Conflict for a fixed field that would change and Invalid for a disk that would shrink."""
    found: dict[str, Any] = {}
    for key in GUEST_FIELDS:
        if key not in requested:
            continue
        value = requested[key]
        if key == "cloud_init":
            found[key] = merge_cloud_init(vm.cloud_init, value)
        elif key == "clone_mode" and value is None:
            found[key] = vm.clone_mode
        else:
            found[key] = stored_form(key, value)
    for key in FIXED_FIELDS:
        if key in found and found[key] != getattr(vm, key):
            shown = getattr(vm, key)
            raise Conflict(f"{key} is fixed at creation (this VM's is {shown!r}); create a new VM to change it")
    if "disks" in found:
        check_disks_growth(vm.disks or [], found["disks"])
    return found


def check_disks_growth(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
    for index, (before, after) in enumerate(zip(old, new, strict=False)):
        if after["size_gb"] < before["size_gb"]:
            raise _invalid(f"cannot shrink disk {index} (scsi{index + 1}) from {before['size_gb']} GB to "
                           f"{after['size_gb']} GB (Proxmox disks only grow)", f"disks[{index}].size_gb")


def shown_cloud_init(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """cloud_init as answers show it: without the password, with `password_set`."""
    if value is None:
        return None
    shown = {key: item for key, item in value.items() if key != "password"}
    shown["password_set"] = bool(value.get("password"))
    return shown


def redact_change(key: str, change: dict[str, Any]) -> dict[str, Any]:
    """A {"old", "new"} change safe to audit or answer."""
    if key != "cloud_init":
        return change
    old, new = change["old"] or {}, change["new"] or {}
    return {"old": shown_cloud_init(change["old"]), "new": shown_cloud_init(change["new"]),
            "password_changed": old.get("password") != new.get("password")}


def redact_changes(changes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {key: redact_change(key, change) for key, change in changes.items()}


def answer_fields(vm: VirtualMachine) -> dict[str, Any]:
    """The guest fields of a VM's answer (and of its audited spec)."""
    return {
        "template": vm.template, "clone_mode": vm.clone_mode, "cloud_init": shown_cloud_init(vm.cloud_init),
        "disks": list(vm.disks or []), "networks": vm.networks, "tags": list(vm.tags or []), "pool": vm.pool,
        "start_on_boot": vm.start_on_boot, "agent": vm.agent, "description": vm.description,
    }


def export_fields(vm: VirtualMachine) -> dict[str, Any]:
    """The guest fields of an exported manifest: set ones only, never the password (a re-apply keeps it)."""
    values: dict[str, Any] = {}
    if vm.template is not None:
        values["template"] = vm.template
        values["clone_mode"] = vm.clone_mode or "full"
    if vm.cloud_init_spec is not None:
        values["cloud_init"] = dict(vm.cloud_init_spec)
    values["disks"] = [dict(item) for item in vm.disks or []]
    if vm.networks is not None:
        values["networks"] = [_compact(dict(item)) for item in vm.networks]
    values["tags"] = list(vm.tags or [])
    if vm.pool is not None:
        values["pool"] = vm.pool
    values["start_on_boot"] = vm.start_on_boot
    values["agent"] = vm.agent
    if vm.description is not None:
        values["description"] = vm.description
    return values


# ------------------------------------------------------------------ templates


def find_template(session: Session, ref: int | str) -> tuple[bool, ClusterTemplate | None]:
    """(whether the inventory knows any template, the template `ref` names if listed)."""
    known = session.scalar(select(ClusterTemplate.vmid).limit(1)) is not None
    if isinstance(ref, int):
        return known, session.get(ClusterTemplate, ref)
    return known, session.scalars(select(ClusterTemplate).where(ClusterTemplate.name == ref)
                                  .order_by(ClusterTemplate.vmid)).first()


def check_template(session: Session, spec: VmCreate) -> int | None:
    """At create: 400 for a template the inventory does not list (when it lists any) or one whose boot disk is
    bigger than `disk_gb`. Returns the disk size to use when `disk_gb` was left out (the template's)."""
    if spec.template is None:
        return None
    known, template = find_template(session, spec.template)
    if template is None:
        if known:
            names = ", ".join(sorted(f"{row.name or '?'} ({row.vmid})" for row in session.scalars(
                select(ClusterTemplate)))[:20])
            raise _invalid(f"{spec.template!r} is not a template in the Proxmox cluster (templates: {names})",
                           "template")
        return None
    if template.disk_gb is not None:
        if "disk_gb" not in spec.model_fields_set:
            return max(template.disk_gb, 1)
        if spec.disk_gb < template.disk_gb:
            raise _invalid(f"is {spec.disk_gb} GB, smaller than the {template.disk_gb} GB boot disk of template "
                           f"{spec.template!r} (disks only grow)", "disk_gb")
    return None


# ------------------------------------------------------------------ reconciler


def cloud_init_digest(vm: VirtualMachine) -> str | None:
    """A digest of the whole cloud-init spec, password included (never stored in clear beside the VM's status)."""
    if vm.cloud_init is None:
        return None
    text = json.dumps(vm.cloud_init, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{vm.id}:{text}".encode()).hexdigest()


def desired_guest(vm: VirtualMachine) -> DesiredGuest:
    return DesiredGuest(
        template=vm.template, clone_mode=vm.clone_mode or "full", cloud_init=vm.cloud_init_spec,
        password=vm.cloud_init_password, cloud_init_digest=cloud_init_digest(vm),
        applied_cloud_init=vm.applied_cloud_init, disks=tuple(vm.disks or ()),
        applied_disks={str(key): int(value) for key, value in (vm.applied_disks or {}).items()},
        networks=tuple(vm.networks) if vm.networks is not None else None, tags=tuple(vm.tags or ()),
        pool=vm.pool, start_on_boot=bool(vm.start_on_boot), agent=bool(vm.agent), description=vm.description,
    )
