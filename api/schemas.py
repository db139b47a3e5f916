"""What the API answers: the contract's objects and envelopes, as pydantic models (for OpenAPI) and as
fast row -> dict functions (for responses). The models document the dicts; a test checks they agree.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from controller.quotas import Usage
from controller.specs import PowerState, SyncStatus
from controller.store.models import ApiToken, AuditLog, FirewallRule, StatsSample, User, VirtualMachine, VmSnapshot

T = TypeVar("T")


def timestamp(value: datetime | str | None) -> str | None:
    """ISO 8601 UTC with a `Z`, to the second, as the contract shows (2024-01-15T10:30:00Z).

    Also takes SQLite's stored UTC text ("2024-01-15 10:30:00.123456"), for reads that skip decoding."""
    if value is None:
        return None
    if isinstance(value, str):
        return f"{value[:10]}T{value[11:19]}Z"
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # isoformat is C and several times faster than strftime; the store hands out UTC values already.
    return value.replace(tzinfo=None, microsecond=0).isoformat() + "Z"


class UserOut(BaseModel):
    id: str
    username: str
    email: str
    role: str


class AuthOut(BaseModel):
    token: str
    user: UserOut


class TokenOut(BaseModel):
    id: str
    name: str
    scope: str = Field(description="read (GET only) or write")
    created_at: str
    expires_at: str | None
    last_used_at: str | None = Field(description="Updated at most once a minute")


class TokenCreatedOut(TokenOut):
    token: str = Field(description="The secret, `pvem_...`: shown only in this answer; send it as "
                                   "Authorization: Bearer")


class LogoutOut(BaseModel):
    revoked: bool


class QuotaOut(BaseModel):
    max_vms: int | None
    max_cpu_cores: int | None
    max_memory_mb: int | None
    max_disk_gb: int | None


class UsageOut(BaseModel):
    vms: int
    cpu_cores: int
    memory_mb: int
    disk_gb: int


class AdminUserOut(UserOut):
    disabled: bool
    created_at: str
    quota: QuotaOut = Field(description="null: unlimited")
    usage: UsageOut = Field(description="What the user's VMs (not being deleted) add up to")


class VmOut(BaseModel):
    id: str
    vmid: int
    name: str
    status: str = Field(description="Observed power state: running, stopped, paused, or unknown before "
                                    "Proxmox has been observed.")
    cpu_cores: int
    memory_mb: int
    disk_gb: int
    node: str
    owner_id: str
    created_at: str
    updated_at: str
    power_state: PowerState = Field(description="Desired power state.")
    generation: int
    observed_generation: int
    sync_status: SyncStatus
    last_error: str | None
    last_synced_at: str | None
    restart_pending: bool
    reboot_required: bool = Field(description="Proxmox holds changes that apply at the next reboot.")
    observed: dict[str, Any] = Field(description="The last deep observation (node, sizes, pending keys, "
                                                 "snapshots and rules pvem does not manage).")
    labels: dict[str, str] = Field(description="Free-form labels (filter with ?label_selector=k=v).")
    apply_set: str | None = Field(description="The manifest apply set that created the VM; null when it "
                                              "was created through the REST API.")
    template: int | str | None = Field(description="The template cloned at creation (name or vmid).")
    clone_mode: str | None = Field(description="full or linked (null: not cloned).")
    cloud_init: dict[str, Any] | None = Field(description="Cloud-init settings without the password, with "
                                                          "`password_set: true/false`.")
    disks: list[dict[str, Any]] = Field(description="Extra data disks (scsi1...): size_gb, storage.")
    networks: list[dict[str, Any]] | None = Field(description="NICs (net0...): bridge, model, vlan, firewall, "
                                                              "mac; null: the default single NIC.")
    tags: list[str] = Field(description="Proxmox tags (lower case, sorted; `pvem` is added in Proxmox).")
    pool: str | None
    start_on_boot: bool
    agent: bool
    description: str | None
    ip_addresses: list[str] = Field(description="Addresses the guest agent reports (no loopback or "
                                                "link-local); empty when the agent does not answer.")
    current_task: str | None = Field(description="The Proxmox task (UPID) pvem is waiting for, such as a long "
                                                 "clone; null when none.")
    management: str = Field(description="enforce (pvem corrects Proxmox) or observe (pvem only reports drift)")
    reboot_policy: str = Field(description="never (changes needing a reboot wait for a restart) or auto")
    snapshot_schedule: dict[str, Any] | None = Field(description="{every, keep, prefix}, or null")
    drift: list[dict[str, Any]] = Field(description="Observe mode: [{field, desired, observed}] where Proxmox "
                                                    "differs from the spec (spec field names)")


class SnapshotOut(BaseModel):
    id: str
    vm_id: str
    name: str
    description: str | None
    created_at: str
    sync_status: SyncStatus
    last_error: str | None
    rollback_pending: bool
    scheduled: bool = Field(description="Taken by the VM's snapshot_schedule (only these are pruned by it)")


class RuleOut(BaseModel):
    id: str
    vm_id: str
    direction: str
    action: str
    protocol: str | None
    port: int | None
    source: str | None
    destination: str | None
    enabled: bool
    position: int
    comment: str | None
    created_at: str
    updated_at: str
    sync_status: SyncStatus
    last_error: str | None


class StatsOut(BaseModel):
    cpu_usage: float
    memory_usage: float
    disk_usage: float
    network_rx: float = Field(description="KB/s")
    network_tx: float = Field(description="KB/s")
    timestamp: str
    source: str = Field(description="cluster (Proxmox) or host (this machine, until Proxmox is observed)")
    nodes: list[dict[str, Any]] | None = Field(None, description="Per-node figures (cluster samples only).")
    controller: dict[str, Any] | None = Field(None, description="This controller host's figures (psutil).")


class AuditOut(BaseModel):
    id: str
    user_id: str | None
    action: str
    resource_type: str
    resource_id: str | None
    details: dict[str, Any]
    ip_address: str | None
    created_at: str
    actor: str


class HealthOut(BaseModel):
    status: str
    timestamp: str


class DeletedOut(BaseModel):
    deleted: bool


class Envelope(BaseModel, Generic[T]):
    success: bool = True
    data: T
    message: str | None = None


class PaginationOut(BaseModel):
    limit: int = Field(description="The page size asked for (or the default, 100, with only `continue`).")
    continue_: str | None = Field(alias="continue", description="Pass as ?continue= for the next page; "
                                  "null on the last page. Opaque: a keyset cursor, not an offset.")


class Paged(BaseModel, Generic[T]):
    """A list answer. `pagination` is there when the request asked for a page (`limit` or `continue`)."""

    success: bool = True
    data: T
    message: str | None = None
    pagination: PaginationOut | None = None


class ProblemOut(BaseModel):
    field: str
    message: str


class ErrorOut(BaseModel):
    error: str
    code: int
    field: str | None = Field(None, description="400: the (first) field that failed validation")
    details: list[ProblemOut] | None = Field(None, description="400: every problem found, one per field")
    document: int | None = Field(None, description="manifests: 0-based index of the document at fault")
    line: int | None = Field(None, description="manifests: 1-based line of the problem in the request body")
    column: int | None = Field(None, description="manifests: 1-based column of the problem")
    request_id: str | None = Field(None, description="500: the request id to quote in a report")


class CheckOut(BaseModel):
    ok: bool
    error: str | None = None


class ReadyOut(BaseModel):
    status: str = Field(description="ok, or unavailable (HTTP 503)")
    timestamp: str
    checks: dict[str, CheckOut] = Field(description="One entry per check (database, proxmox, controller...); "
                                                    "checks may add their own details beside ok")


def envelope(data: Any, message: str | None = None) -> dict[str, Any]:
    return {"success": True, "data": data, "message": message}


def paged(data: Any, limit: int | None, token: str | None, include: bool = True) -> dict[str, Any]:
    """The list envelope; with `include`, a `pagination` object beside `data` (the next cursor or null)."""
    body = envelope(data)
    if include:
        body["pagination"] = {"limit": limit, "continue": token}
    return body


def user_dict(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "email": user.email, "role": user.role}


def _or_empty(value: Any) -> Any:
    return value or {}


# The VM's answer fields, in order: (field, the VirtualMachine columns it is made of, how to make it from
# their values; None: the one column's value as it is). vm_dict (ORM rows) goes through this table; the hot
# list/get have the database render the same answer (api.vm_json, kept equal by tests/api/test_vm_json.py).
# Extend here, in api.vm_json, and in VmOut.
def _list_or_empty(value: Any) -> Any:
    """A JSON list column; [] for null."""
    return [] if value is None else value


def _shown_cloud_init(spec: Any, password: str | None) -> dict[str, Any] | None:
    """cloud_init as answers show it: the stored keys (never the password) and `password_set`."""
    if spec is None:
        return None
    return {**spec, "password_set": bool(password)}


VM_FIELDS: tuple[tuple[str, tuple[str, ...], Callable[..., Any] | None], ...] = (
    ("id", ("id",), None),
    ("vmid", ("vmid",), None),
    ("name", ("name",), None),
    ("status", ("status",), None),
    ("cpu_cores", ("cpu_cores",), None),
    ("memory_mb", ("memory_mb",), None),
    ("disk_gb", ("disk_gb",), None),
    ("node", ("node",), None),
    ("owner_id", ("owner_id",), None),
    ("created_at", ("created_at",), timestamp),
    ("updated_at", ("updated_at",), timestamp),
    ("power_state", ("power_state",), None),
    ("generation", ("generation",), None),
    ("observed_generation", ("observed_generation",), None),
    ("sync_status", ("sync_status",), None),
    ("last_error", ("last_error",), None),
    ("last_synced_at", ("last_synced_at",), timestamp),
    ("restart_pending", ("restart_requests", "restarts_done"), lambda requests, done: requests > done),
    ("reboot_required", ("reboot_required",), None),
    ("observed", ("observed",), _or_empty),
    ("labels", ("labels",), _or_empty),
    ("apply_set", ("apply_set",), None),
    # issue 7's guest fields (the cloud-init password never: `password_set` instead)
    ("template", ("template_vmid", "template_name"), lambda vmid, name: vmid if vmid is not None else name),
    ("clone_mode", ("clone_mode",), None),
    ("cloud_init", ("cloud_init_spec", "cloud_init_password"), _shown_cloud_init),
    ("disks", ("disks",), _list_or_empty),
    ("networks", ("networks",), None),
    ("tags", ("tags",), _list_or_empty),
    ("pool", ("pool",), None),
    ("start_on_boot", ("start_on_boot",), None),
    ("agent", ("agent",), None),
    ("description", ("description",), None),
    ("ip_addresses", ("ip_addresses",), _list_or_empty),
    ("current_task", ("last_upid",), None),
    # issue 9's day-2 fields
    ("management", ("management",), lambda value: value or "enforce"),
    ("reboot_policy", ("reboot_policy",), lambda value: value or "never"),
    ("snapshot_schedule", ("snapshot_schedule",), None),
    ("drift", ("drift",), _list_or_empty),
)
VM_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys(column for _f, columns, _c in VM_FIELDS for column in columns))


def _compile_row_dict(fields: tuple[tuple[str, tuple[str, ...], Callable[..., Any] | None], ...],
                      columns: tuple[str, ...]) -> Callable[[Any], dict[str, Any]]:
    """One generated function `row -> {field: value}` for the table above: a dict display with no
    per-field calls for plain columns (some three times faster than a loop over getters)."""
    namespace: dict[str, Any] = {}
    items = []
    for index, (field, used, convert) in enumerate(fields):
        arguments = ", ".join(f"row[{columns.index(column)}]" for column in used)
        if convert is None:
            items.append(f"{field!r}: {arguments}")
        else:
            namespace[f"convert{index}"] = convert
            items.append(f"{field!r}: convert{index}({arguments})")
    exec(f"def row_dict(row):\n    return {{{', '.join(items)}}}\n", namespace)  # generated from VM_FIELDS
    return namespace["row_dict"]


vm_row_dict = _compile_row_dict(VM_FIELDS, VM_COLUMNS)
vm_row_dict.__doc__ = "A VM's answer from a row holding VM_COLUMNS in order (a tuple or a Core Row)."


def vm_dict(vm: VirtualMachine) -> dict[str, Any]:
    return vm_row_dict(tuple(getattr(vm, column) for column in VM_COLUMNS))


def snapshot_dict(snapshot: VmSnapshot) -> dict[str, Any]:
    return {
        "id": snapshot.id, "vm_id": snapshot.vm_id, "name": snapshot.name,
        "description": snapshot.description, "created_at": timestamp(snapshot.created_at),
        "sync_status": snapshot.sync_status, "last_error": snapshot.last_error,
        "rollback_pending": snapshot.rollback_requests > snapshot.rollbacks_done,
        "scheduled": bool(snapshot.scheduled),
    }


def rule_dict(rule: FirewallRule) -> dict[str, Any]:
    return {
        "id": rule.id, "vm_id": rule.vm_id, "direction": rule.direction, "action": rule.action,
        "protocol": rule.protocol, "port": rule.port, "source": rule.source, "destination": rule.destination,
        "enabled": rule.enabled, "position": rule.position, "comment": rule.comment,
        "created_at": timestamp(rule.created_at), "updated_at": timestamp(rule.updated_at),
        "sync_status": rule.sync_status, "last_error": rule.last_error,
    }


def stats_dict(sample: StatsSample) -> dict[str, Any]:
    return {
        "cpu_usage": sample.cpu_usage, "memory_usage": sample.memory_usage, "disk_usage": sample.disk_usage,
        "network_rx": sample.network_rx, "network_tx": sample.network_tx,
        "timestamp": timestamp(sample.taken_at), "source": sample.source,
        "nodes": sample.details.get("nodes"), "controller": sample.details.get("controller"),
    }


def audit_dict(entry: AuditLog) -> dict[str, Any]:
    return {
        "id": entry.id, "user_id": entry.user_id, "action": entry.action,
        "resource_type": entry.resource_type, "resource_id": entry.resource_id, "details": entry.details,
        "ip_address": entry.ip_address, "created_at": timestamp(entry.created_at), "actor": entry.actor,
    }


def token_dict(token: ApiToken) -> dict[str, Any]:
    return {"id": token.id, "name": token.name, "scope": token.scope, "created_at": timestamp(token.created_at),
            "expires_at": timestamp(token.expires_at), "last_used_at": timestamp(token.last_used_at)}


def admin_user_dict(user: User, usage: Usage) -> dict[str, Any]:
    return {**user_dict(user), "disabled": user.disabled, "created_at": timestamp(user.created_at),
            "quota": {key: getattr(user, key) for key in ("max_vms", "max_cpu_cores", "max_memory_mb",
                                                           "max_disk_gb")},
            "usage": usage.as_dict()}
