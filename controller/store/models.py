"""The tables: users, desired+observed state of VMs, snapshots and firewall rules, audit, stats.

Every managed row has two halves. Spec columns (desired) are written only by the API layer's domain
calls; status columns (observed) only by the reconciler. `generation` is bumped with every spec write
of a VM or of its snapshots and rules, in the same transaction; `observed_generation` is set when a
reconcile pass has made Proxmox match that generation.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-cased
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Accounts (issue 12): a disabled user can neither log in nor use any token; every token issued
    # (JWT `iat`) or created (API token) before `tokens_valid_after` is revoked (password change).
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    tokens_valid_after: Mapped[datetime | None] = mapped_column(default=None)
    # Quotas over the VMs the user owns; None is unlimited.
    max_vms: Mapped[int | None] = mapped_column(Integer, default=None)
    max_cpu_cores: Mapped[int | None] = mapped_column(Integer, default=None)
    max_memory_mb: Mapped[int | None] = mapped_column(Integer, default=None)
    max_disk_gb: Mapped[int | None] = mapped_column(Integer, default=None)


class ApiToken(Base):
    """A long-lived API token for automation: only the SHA-256 of the secret is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(8), default="write")  # read | write
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class RevokedToken(Base):
    """A JWT revoked before its expiry (logout); the row can go once the token has expired anyway."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class LoginThrottle(Base):
    """Failed-login counts per key (a keyed hash of the normalised email, or of the client address),
    shared by every API replica. A window opens at the first failure and lasts auth.login_window_seconds."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class VirtualMachine(Base):
    __tablename__ = "virtual_machines"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_vm_owner_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    vmid: Mapped[int] = mapped_column(Integer, unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    # spec (desired)
    name: Mapped[str] = mapped_column(String(255))
    node: Mapped[str] = mapped_column(String(64))
    cpu_cores: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    disk_gb: Mapped[int] = mapped_column(Integer)
    power_state: Mapped[str] = mapped_column(String(16), default="stopped")
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The manifest apply set that created the VM (None: created through the REST API). Only VMs of a
    # set are pruned by an apply of that set.
    apply_set: Mapped[str | None] = mapped_column(String(63), default=None, index=True)
    restart_requests: Mapped[int] = mapped_column(Integer, default=0)  # one-shot: honoured once each
    # guest fields (issue 7; controller/guest.py owns their forms). The cloud-init password is kept apart from
    # the rest of cloud_init so that nothing that shows a VM's spec can show it by accident.
    template_name: Mapped[str | None] = mapped_column(String(255), default=None)
    template_vmid: Mapped[int | None] = mapped_column(Integer, default=None)
    clone_mode: Mapped[str | None] = mapped_column(String(8), default=None)
    cloud_init_spec: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)
    cloud_init_password: Mapped[str | None] = mapped_column(Text, default=None)
    disks: Mapped[list[Any]] = mapped_column(JSON, default=list)
    networks: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True), default=None)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    pool: Mapped[str | None] = mapped_column(String(255), default=None)
    start_on_boot: Mapped[bool] = mapped_column(Boolean, default=False)
    agent: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    # Day-2 operations (issue 9): enforce | observe; never | auto; {every, keep, prefix} or None.
    management: Mapped[str] = mapped_column(String(16), default="enforce")
    reboot_policy: Mapped[str] = mapped_column(String(16), default="never")
    snapshot_schedule: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # pvem turns the VM's firewall on when it has rules; False for an import whose firewall was off (kept off).
    enable_firewall: Mapped[bool] = mapped_column(Boolean, default=True)
    deletion_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    generation: Mapped[int] = mapped_column(Integer, default=1)

    # status (observed)
    status: Mapped[str] = mapped_column(String(16), default="unknown")
    observed_generation: Mapped[int] = mapped_column(Integer, default=0)
    sync_status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    last_synced_at: Mapped[datetime | None] = mapped_column(default=None)
    observed_node: Mapped[str | None] = mapped_column(String(64), default=None)
    restarts_done: Mapped[int] = mapped_column(Integer, default=0)
    last_upid: Mapped[str | None] = mapped_column(String(255), default=None)
    provisioned: Mapped[bool] = mapped_column(Boolean, default=False)  # seen in Proxmox, created or adopted
    reboot_required: Mapped[bool] = mapped_column(Boolean, default=False)
    applied_disk_gb: Mapped[int | None] = mapped_column(Integer, default=None)
    migrated_generation: Mapped[int | None] = mapped_column(Integer, default=None)
    error_generation: Mapped[int | None] = mapped_column(Integer, default=None)  # permanent error at this gen
    observed: Mapped[dict[str, Any]] = mapped_column(default=dict)  # last deep observation, for people
    drift: Mapped[list[Any]] = mapped_column(JSON, default=list)  # observe mode: [{field, desired, observed}]
    last_observed_at: Mapped[datetime | None] = mapped_column(default=None)
    # guest status (issue 7)
    ip_addresses: Mapped[list[Any]] = mapped_column(JSON, default=list)  # from the guest agent
    ip_addresses_at: Mapped[datetime | None] = mapped_column(default=None)
    applied_disks: Mapped[dict[str, Any]] = mapped_column(default=dict)  # scsiN -> size Proxmox confirmed
    applied_cloud_init: Mapped[str | None] = mapped_column(String(64), default=None)  # digest regenerated
    cloud_init_applied_at: Mapped[datetime | None] = mapped_column(default=None)  # regenerated while running

    @property
    def template(self) -> int | str | None:
        """The template as given: a vmid (int) or a name."""
        return self.template_vmid if self.template_vmid is not None else self.template_name

    @template.setter
    def template(self, value: int | str | None) -> None:
        self.template_vmid = value if isinstance(value, int) else None
        self.template_name = value if isinstance(value, str) else None

    @property
    def cloud_init(self) -> dict[str, Any] | None:
        """The whole cloud-init spec, password included: for the domain's comparisons only, never for answers."""
        if self.cloud_init_spec is None:
            return None
        found = dict(self.cloud_init_spec)
        if self.cloud_init_password is not None:
            found["password"] = self.cloud_init_password
        return found

    @cloud_init.setter
    def cloud_init(self, value: dict[str, Any] | None) -> None:
        if value is None:
            self.cloud_init_spec, self.cloud_init_password = None, None
            return
        rest = dict(value)
        self.cloud_init_password = rest.pop("password", None)
        self.cloud_init_spec = rest


class DeletedVm(Base):
    """A tombstone: the VM's row is gone (destroyed in Proxmox); a repeated DELETE still answers 200."""

    __tablename__ = "deleted_vms"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(36), index=True)
    vmid: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    deleted_at: Mapped[datetime] = mapped_column(default=utcnow)


class VmSnapshot(Base):
    __tablename__ = "vm_snapshots"
    __table_args__ = (UniqueConstraint("vm_id", "name", name="uq_snapshot_vm_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    vm_id: Mapped[str] = mapped_column(ForeignKey("virtual_machines.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    # spec
    name: Mapped[str] = mapped_column(String(40))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    rollback_requests: Mapped[int] = mapped_column(Integer, default=0)
    deletion_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Taken by the VM's snapshot_schedule: only these are ever deleted by its retention.
    scheduled: Mapped[bool] = mapped_column(Boolean, default=False)

    # status
    sync_status: Mapped[str] = mapped_column(String(16), default="pending")
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    rollbacks_done: Mapped[int] = mapped_column(Integer, default=0)
    last_upid: Mapped[str | None] = mapped_column(String(255), default=None)
    provisioned: Mapped[bool] = mapped_column(Boolean, default=False)


class FirewallRule(Base):
    __tablename__ = "firewall_rules"
    # Unique: moves renumber in two steps (controller.firewall.renumber) so no flush ever holds a duplicate.
    __table_args__ = (UniqueConstraint("vm_id", "position", name="uq_firewall_rules_vm_position"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    vm_id: Mapped[str] = mapped_column(ForeignKey("virtual_machines.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    # spec
    position: Mapped[int] = mapped_column(Integer)
    direction: Mapped[str] = mapped_column(String(8))
    action: Mapped[str] = mapped_column(String(8))
    protocol: Mapped[str | None] = mapped_column(String(8), default=None)
    port: Mapped[int | None] = mapped_column(Integer, default=None)
    source: Mapped[str | None] = mapped_column(String(64), default=None)
    destination: Mapped[str | None] = mapped_column(String(64), default=None)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    comment: Mapped[str | None] = mapped_column(String(255), default=None)

    # status
    sync_status: Mapped[str] = mapped_column(String(16), default="pending")
    last_error: Mapped[str | None] = mapped_column(Text, default=None)


class ClusterNode(Base):
    """The Proxmox nodes the controller last listed, so the API can name them without asking Proxmox."""

    __tablename__ = "cluster_nodes"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str | None] = mapped_column(String(16), default=None)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditLog(Base):
    """Append-only. `seq` orders records; `id` is the public UUID."""

    __tablename__ = "audit_logs"
    __table_args__ = (
        Index("ix_audit_user", "user_id", "seq"),
        Index("ix_audit_owner", "owner_id", "seq"),
        Index("ix_audit_resource", "resource_id"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)
    actor: Mapped[str] = mapped_column(String(16), default="user")  # user | controller | system
    user_id: Mapped[str | None] = mapped_column(String(36), default=None)
    # The owner of the resource acted on: lets a user see the controller's work on their VMs.
    owner_id: Mapped[str | None] = mapped_column(String(36), default=None)
    action: Mapped[str] = mapped_column(String(64), index=True)
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str | None] = mapped_column(String(36), default=None)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ip_address: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ClusterTemplate(Base):
    """The cluster's template VMs, refreshed by the controller from its bulk listing (the API never asks
    Proxmox). `disk_gb` and `has_cloud_init` come from the template's config, read when it is new or changed."""

    __tablename__ = "cluster_templates"

    vmid: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str | None] = mapped_column(String(255), default=None, index=True)
    node: Mapped[str] = mapped_column(String(64))
    disk_gb: Mapped[int | None] = mapped_column(Integer, default=None)
    has_cloud_init: Mapped[bool] = mapped_column(Boolean, default=False)
    listed_disk_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)  # change detection
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class StatsSample(Base):
    """One sample of system figures; `source` is `host` (psutil) or `cluster` (Proxmox)."""

    __tablename__ = "stats_samples"
    __table_args__ = (Index("ix_stats_source_taken", "source", "taken_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))
    taken_at: Mapped[datetime] = mapped_column(default=utcnow)
    cpu_usage: Mapped[float] = mapped_column()
    memory_usage: Mapped[float] = mapped_column()
    disk_usage: Mapped[float] = mapped_column()
    network_rx: Mapped[float] = mapped_column()  # KB/s
    network_tx: Mapped[float] = mapped_column()  # KB/s
    rx_bytes: Mapped[int] = mapped_column(BigInteger, default=0)  # raw counters, for the next rate
    tx_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ControllerLease(Base):
    """Leader election between controller replicas: one row per lease `name`, held by `holder` until
    `expires_at`. `epoch` grows by one with every change of holder; the leader's status and audit writes
    check it in their own transaction (fencing), so a former leader that was paused cannot write."""

    __tablename__ = "controller_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(255), default=None)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    acquired_at: Mapped[datetime | None] = mapped_column(default=None)
    renewed_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)

class Event(Base):
    """The change feed: one row per change a client may want to hear about (append-only, pruned by age).

    `seq` orders the feed and is the SSE `id:`; `kind` is e.g. `vm.changed`, `vm.synced`, `stats`
    (controller/events/kinds.py); `owner_id` is the VM owner's, for tenancy without a join.
    """

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_created_at", "created_at"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    vm_id: Mapped[str | None] = mapped_column(String(36), default=None)
    owner_id: Mapped[str | None] = mapped_column(String(36), default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FeedCursor(Base):
    """A named position in the feed: `webhooks` (fanned out up to here), `pruned` (deleted up to here)."""

    __tablename__ = "feed_cursors"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)


class Webhook(Base):
    """A subscriber URL. The secret signs deliveries (HMAC-SHA256) and is never returned by the API."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    secret: Mapped[str] = mapped_column(String(255))
    start_seq: Mapped[int] = mapped_column(Integer, default=0)  # only feed events after creation
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event for one webhook: the exact body (so every retry carries the same signature), and its fate."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_webhook", "webhook_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(32))
    event_seq: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    response_status: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
