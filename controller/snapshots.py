"""Snapshot desired state: create, delete requests and rollback requests, scoped to a visible VM.

Every write locks the VM's row first (see controller.vms), so rollback counters are never lost."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller import audit, pages
from controller.actor import Actor
from controller.errors import Conflict, NotFound
from controller.specs import SnapshotCreate
from controller.store.models import VmSnapshot, utcnow
from controller.vms import get_live_vm, get_vm, mark_changed

RESOURCE = "vm_snapshot"


def list_snapshots(session: Session, actor: Actor, vm_id: str) -> list[VmSnapshot]:
    vm = get_vm(session, actor, vm_id)
    query = select(VmSnapshot).where(VmSnapshot.vm_id == vm.id).order_by(VmSnapshot.created_at, VmSnapshot.name)
    return list(session.scalars(query))


def list_snapshots_page(session: Session, actor: Actor, vm_id: str,
                        page: pages.PageRequest) -> tuple[list[VmSnapshot], str | None]:
    """One keyset page of list_snapshots (same order) and the next cursor."""
    vm = get_vm(session, actor, vm_id)
    rows, token = pages.fetch(session, select(VmSnapshot).where(VmSnapshot.vm_id == vm.id),
                              (VmSnapshot.created_at, VmSnapshot.name), page, "snapshots")
    return [row[0] for row in rows], token


def _get(session: Session, vm_id: str, snapshot_id: str) -> VmSnapshot:
    # Callers hold the VM's row lock: re-read the snapshot so its counters are the latest committed ones.
    snapshot = session.get(VmSnapshot, snapshot_id, populate_existing=True)
    if snapshot is None or snapshot.vm_id != vm_id:
        raise NotFound("snapshot not found")
    return snapshot


def new_snapshot(vm_id: str, spec: SnapshotCreate) -> VmSnapshot:
    """A snapshot row waiting to be taken (the caller bumps the VM's generation)."""
    now = utcnow()
    return VmSnapshot(vm_id=vm_id, name=spec.name, description=spec.description, created_at=now, updated_at=now,
                      sync_status="pending")


def mark_for_deletion(snapshot: VmSnapshot) -> None:
    """The finalizer mark: the reconciler deletes it in Proxmox, then drops the row (caller bumps the VM)."""
    snapshot.deletion_requested, snapshot.sync_status, snapshot.updated_at = True, "deleting", utcnow()


def create_snapshot(session: Session, actor: Actor, vm_id: str, spec: SnapshotCreate) -> VmSnapshot:
    vm = get_live_vm(session, actor, vm_id)
    existing = session.scalar(select(VmSnapshot).where(VmSnapshot.vm_id == vm.id, VmSnapshot.name == spec.name))
    if existing is not None:
        state = " and is being deleted" if existing.deletion_requested else ""
        raise Conflict(f"a snapshot named {spec.name!r} already exists on this virtual machine{state}")
    snapshot = new_snapshot(vm.id, spec)
    session.add(snapshot)
    mark_changed(vm)
    session.flush()
    audit.record(session, actor, "create_snapshot", RESOURCE, snapshot.id,
                 {"vm_id": vm.id, "vm_name": vm.name, "snapshot_name": snapshot.name}, owner_id=vm.owner_id)
    return snapshot


def request_deletion(session: Session, actor: Actor, vm_id: str, snapshot_id: str) -> VmSnapshot:
    vm = get_vm(session, actor, vm_id, for_update=True)
    snapshot = _get(session, vm.id, snapshot_id)
    if snapshot.deletion_requested:
        return snapshot
    mark_for_deletion(snapshot)
    mark_changed(vm)
    audit.record(session, actor, "delete_snapshot", RESOURCE, snapshot.id,
                 {"vm_id": vm.id, "vm_name": vm.name, "snapshot_name": snapshot.name}, owner_id=vm.owner_id)
    return snapshot


def request_rollback(session: Session, actor: Actor, vm_id: str, snapshot_id: str) -> VmSnapshot:
    vm = get_live_vm(session, actor, vm_id)
    snapshot = _get(session, vm.id, snapshot_id)
    if snapshot.deletion_requested:
        raise Conflict("cannot roll back to a snapshot that is being deleted")
    snapshot.rollback_requests += 1
    snapshot.sync_status = "pending"
    snapshot.updated_at = utcnow()
    mark_changed(vm)
    audit.record(session, actor, "rollback_snapshot", RESOURCE, snapshot.id,
                 {"vm_id": vm.id, "vm_name": vm.name, "snapshot_name": snapshot.name}, owner_id=vm.owner_id)
    return snapshot
