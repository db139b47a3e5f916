"""What the API answers: the contract's objects and envelopes, as pydantic models (for OpenAPI) and as
fast row -> dict functions (for responses). The models document the dicts; a test checks they agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from controller.guest import answer_fields as guest_fields
from controller.quotas import Usage
from controller.specs import PowerState, SyncStatus
from controller.store.models import ApiToken, AuditLog, FirewallRule, StatsSample, User, VirtualMachine, VmSnapshot

T = TypeVar("T")


def timestamp(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a `Z`, to the second, as the contract shows (2024-01-15T10:30:00Z)."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


class ErrorOut(BaseModel):
    error: str
    code: int


def envelope(data: Any, message: str | None = None) -> dict[str, Any]:
    return {"success": True, "data": data, "message": message}


def user_dict(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "email": user.email, "role": user.role}


def vm_dict(vm: VirtualMachine) -> dict[str, Any]:
    return {
        "id": vm.id, "vmid": vm.vmid, "name": vm.name, "status": vm.status, "cpu_cores": vm.cpu_cores,
        "memory_mb": vm.memory_mb, "disk_gb": vm.disk_gb, "node": vm.node, "owner_id": vm.owner_id,
        "created_at": timestamp(vm.created_at), "updated_at": timestamp(vm.updated_at),
        "power_state": vm.power_state, "generation": vm.generation,
        "observed_generation": vm.observed_generation, "sync_status": vm.sync_status,
        "last_error": vm.last_error, "last_synced_at": timestamp(vm.last_synced_at),
        "restart_pending": vm.restart_requests > vm.restarts_done,
        "reboot_required": vm.reboot_required, "observed": vm.observed or {},
        "labels": vm.labels or {}, "apply_set": vm.apply_set, **guest_fields(vm),
        "ip_addresses": list(vm.ip_addresses or []), "current_task": vm.last_upid,
        "management": vm.management or "enforce", "reboot_policy": vm.reboot_policy or "never",
        "snapshot_schedule": vm.snapshot_schedule, "drift": list(vm.drift or []),
    }


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
