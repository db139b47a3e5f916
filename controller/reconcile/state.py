"""The reconciler's side of the store: read desired state, write status. Nothing else writes status.

Status writes are targeted UPDATEs of status columns only, so they never overwrite a spec change the
API made meanwhile; "synced" is compare-and-set on the generation the pass worked from.

Fencing: each of the writer's transactions first runs `fence(session)` (the controller lease's check
that this process still leads at its epoch, see controller.lease), so a former leader writes nothing.

Group commit: the hot path's writes (set_vm, record, synced) share transactions with other workers'
(controller.reconcile.batch); a call still returns only once its writes are committed.

Deferred records: the outcome of a Proxmox write (its audit record and status columns) may be held back
(`record(..., defer=True)`) to ride on that VM's next status transaction, typically the intent of its next
write or the final "synced", instead of costing a transaction of its own. The reconciler writes them out
(`flush`) before it reads the VM's row again, waits long, or ends its attempt.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import Update, and_, bindparam, delete, select, update
from sqlalchemy.orm import Session

from controller import audit, events
from controller.actor import CONTROLLER
from controller.guest import desired_guest
from controller.reconcile.batch import GroupCommit
from controller.reconcile.model import DesiredRule, DesiredSnapshot, DesiredVm
from controller.store import Store
from controller.store.models import DeletedVm, FirewallRule, VirtualMachine, VmSnapshot, utcnow

T = TypeVar("T")


def _snapshot(row: VmSnapshot) -> DesiredSnapshot:
    return DesiredSnapshot(id=row.id, name=row.name, description=row.description, deleting=row.deletion_requested,
                           rollback_pending=row.rollback_requests > row.rollbacks_done,
                           provisioned=row.provisioned, scheduled=row.scheduled)


def _rule(row: FirewallRule) -> DesiredRule:
    return DesiredRule(id=row.id, position=row.position, direction=row.direction, action=row.action,
                       protocol=row.protocol, port=row.port, source=row.source, destination=row.destination,
                       enabled=row.enabled, comment=row.comment)


def _desired(row: VirtualMachine, snapshots: list[VmSnapshot], rules: list[FirewallRule]) -> DesiredVm:
    return DesiredVm(
        id=row.id, vmid=row.vmid, name=row.name, node=row.node, cores=row.cpu_cores, memory_mb=row.memory_mb,
        disk_gb=row.disk_gb, power_state=row.power_state, restart_pending=row.restart_requests > row.restarts_done,
        deleting=row.deletion_requested, generation=row.generation, observed_generation=row.observed_generation,
        provisioned=row.provisioned, applied_disk_gb=row.applied_disk_gb, migrated_generation=row.migrated_generation,
        snapshots=tuple(_snapshot(item) for item in snapshots), rules=tuple(_rule(item) for item in rules),
        guest=desired_guest(row),
        management=row.management or "enforce", reboot_policy=row.reboot_policy,
        enable_firewall=row.enable_firewall is not False,
    )


def load_vm(session: Session, vm_id: str) -> tuple[DesiredVm, VirtualMachine] | None:
    row = session.get(VirtualMachine, vm_id)
    if row is None:
        return None
    snapshots = list(session.scalars(select(VmSnapshot).where(VmSnapshot.vm_id == vm_id)
                                     .order_by(VmSnapshot.created_at)))
    rules = list(session.scalars(select(FirewallRule).where(FirewallRule.vm_id == vm_id)
                                 .order_by(FirewallRule.position)))
    return _desired(row, snapshots, rules), row


def load_all(session: Session) -> list[tuple[DesiredVm, VirtualMachine]]:
    """Every VM with its snapshots and rules: three queries, whatever the fleet size."""
    rows = list(session.scalars(select(VirtualMachine)))
    snapshots: dict[str, list[VmSnapshot]] = defaultdict(list)
    for snapshot in session.scalars(select(VmSnapshot).order_by(VmSnapshot.created_at)):
        snapshots[snapshot.vm_id].append(snapshot)
    rules: dict[str, list[FirewallRule]] = defaultdict(list)
    for rule in session.scalars(select(FirewallRule).order_by(FirewallRule.position)):
        rules[rule.vm_id].append(rule)
    return [(_desired(row, snapshots[row.id], rules[row.id]), row) for row in rows]


def load_many(session: Session, ids: list[str]) -> list[tuple[DesiredVm, VirtualMachine]]:
    """Some VMs with their snapshots and rules: three queries per 500 ids."""
    out: list[tuple[DesiredVm, VirtualMachine]] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows = list(session.scalars(select(VirtualMachine).where(VirtualMachine.id.in_(chunk))))
        snapshots: dict[str, list[VmSnapshot]] = defaultdict(list)
        for snapshot in session.scalars(select(VmSnapshot).where(VmSnapshot.vm_id.in_(chunk))
                                        .order_by(VmSnapshot.created_at)):
            snapshots[snapshot.vm_id].append(snapshot)
        rules: dict[str, list[FirewallRule]] = defaultdict(list)
        for rule in session.scalars(select(FirewallRule).where(FirewallRule.vm_id.in_(chunk))
                                    .order_by(FirewallRule.position)):
            rules[rule.vm_id].append(rule)
        out += [(_desired(row, snapshots[row.id], rules[row.id]), row) for row in rows]
    return out


# What the full pass compares with the listing, one row per VM: (id, vmid, name, node, cores, memory_mb,
# power_state, synced (in sync at the current generation), reboot_required, migrated, last_observed_at).
PASS_COLUMNS = (VirtualMachine.id, VirtualMachine.vmid, VirtualMachine.name, VirtualMachine.node,
                VirtualMachine.cpu_cores, VirtualMachine.memory_mb, VirtualMachine.power_state,
                VirtualMachine.sync_status, VirtualMachine.generation, VirtualMachine.observed_generation,
                VirtualMachine.deletion_requested, VirtualMachine.reboot_required,
                VirtualMachine.migrated_generation, VirtualMachine.last_observed_at)


def pass_rows(session: Session) -> list[Any]:
    """Every VM as PASS_COLUMNS tuples: one Core query, no ORM objects."""
    return list(session.execute(select(*PASS_COLUMNS)))


def mark_observed(session: Session, ids: list[str], when: datetime) -> None:
    """Record a deep observation that found nothing to change (one UPDATE per 500 VMs)."""
    for start in range(0, len(ids), 500):
        session.execute(update(VirtualMachine).where(VirtualMachine.id.in_(ids[start:start + 500]))
                        .values(last_observed_at=when))


def ids_to_poll(session: Session) -> list[tuple[str, bool]]:
    """The database poll's one query (one scan of the table): (id, spec changed since a permanent error) for
    VMs whose spec moved past what was observed, that are mid-operation (cheap: no Proxmox), or that are
    parked on a permanent error whose spec has changed since (the change deserves a prompt try)."""
    changed = and_(VirtualMachine.error_generation.is_not(None),
                   VirtualMachine.error_generation != VirtualMachine.generation)
    query = select(VirtualMachine.id, changed).where(
        (VirtualMachine.generation != VirtualMachine.observed_generation)
        | VirtualMachine.sync_status.in_(("pending", "syncing", "deleting"))
        | VirtualMachine.last_upid.is_not(None)
        | changed
    )
    return [(vm_id, bool(moved)) for vm_id, moved in session.execute(query)]


def spec_generation(session: Session, vm_id: str) -> int | None:
    return session.scalar(select(VirtualMachine.generation).where(VirtualMachine.id == vm_id))


def node_and_generation(session: Session, vm_id: str) -> tuple[str, int | None]:
    """Where a worker's attempt goes (the observed node, else the desired one; "" for a row gone) and the spec
    generation it starts from: one Core query."""
    found = session.execute(select(VirtualMachine.observed_node, VirtualMachine.node, VirtualMachine.generation)
                            .where(VirtualMachine.id == vm_id)).first()
    if found is None:
        return "", None
    return found.observed_node or found.node, found.generation


# Status columns the VM object (GET /api/vms/{id}) does not show: writing only these emits no event.
HIDDEN_STATUS = frozenset({"last_upid", "provisioned", "applied_disk_gb", "migrated_generation", "error_generation",
                           "last_observed_at"})
# The status columns "synced" (and observe mode) write, as one UPDATE built once (bound per VM: b_id, b_<column>).
_OBSERVATION_COLUMNS = ("observed_generation", "sync_status", "last_error", "last_synced_at", "status",
                        "observed_node", "reboot_required", "observed", "last_observed_at", "error_generation",
                        "provisioned", "drift")
_OBSERVED = (update(VirtualMachine)
             .where(VirtualMachine.id == bindparam("b_id"), VirtualMachine.generation == bindparam("b_generation"))
             .values(**{column: bindparam(f"b_{column}") for column in _OBSERVATION_COLUMNS}))
_BECAME_SYNCED = _OBSERVED.where(VirtualMachine.sync_status != "synced")


@lru_cache(maxsize=64)
def _vm_update(columns: tuple[str, ...]) -> Update:
    """The UPDATE of these columns of one VM, built once per set of columns (bound as b_id, b_<column>)."""
    return update(VirtualMachine).where(VirtualMachine.id == bindparam("b_id")).values(
        **{column: bindparam(f"b_{column}") for column in columns})


def _set_columns(session: Session, vm_id: str, values: dict[str, Any]) -> None:
    """Plain values into status columns of one VM: a Core statement on the session's connection (no ORM
    bookkeeping, no statement built per call)."""
    session.connection().execute(_vm_update(tuple(sorted(values))),
                                 {"b_id": vm_id, **{f"b_{key}": value for key, value in values.items()}})


# session.info key of the audit rows a transaction writes in one INSERT (StatusWriter._insert_audit).
AUDIT_ROWS = "pvem_audit_rows"
# Audit records that are also feed events.
AUDIT_EVENTS = {"drift_corrected": events.VM_DRIFT}


@dataclass(frozen=True)
class _Record:
    """An audit record of a VM and its status columns, written together (StatusWriter.record)."""

    action: str
    owner_id: str
    details: dict[str, Any]
    values: dict[str, Any]
    at: datetime


class StatusWriter:
    """Short transactions that record what the reconciler saw and did, and audit it."""

    def __init__(self, store: Store, fence: Callable[[Session], None] | None = None) -> None:
        self.store = store
        self.fence = fence
        self._deferred: dict[str, list[_Record]] = {}  # per VM id, see record(defer=True)
        self._deferred_lock = threading.Lock()
        self._group = GroupCommit(store, fence, finish=self._insert_audit)

    def _take_deferred(self, vm_id: str) -> list[_Record]:
        if not self._deferred:
            return []
        with self._deferred_lock:
            return self._deferred.pop(vm_id, [])

    def _grouped(self, vm_id: str, fn: Callable[[Session], T]) -> T:
        """fn(session) after the VM's deferred records, in a transaction shared with other workers' writes
        (controller.reconcile.batch): the hot path's writes (intents, outcomes, synced, UPIDs)."""
        held = self._take_deferred(vm_id)

        def writes(session: Session) -> T:
            for item in held:
                self._write_record(session, vm_id, item)
            return fn(session)

        return self._group.run(writes)

    @contextmanager
    def write(self, vm_id: str | None = None) -> Iterator[Session]:
        """A fenced write transaction: refused (controller.lease.Fenced) unless this process leads. With
        `vm_id`, that VM's deferred records are written first in it."""
        with self.store.write() as session:
            if self.fence is not None:
                self.fence(session)
            if vm_id is not None:
                for item in self._take_deferred(vm_id):
                    self._write_record(session, vm_id, item)
                self._insert_audit(session)  # before anything the block adds: records stay in order
            yield session

    def set_vm(self, vm_id: str, **values: Any) -> None:
        def writes(session: Session) -> None:
            _set_columns(session, vm_id, values)
            if set(values) - HIDDEN_STATUS:
                events.emit(session, events.VM_CHANGED, vm_id)

        self._grouped(vm_id, writes)

    def record(self, vm_id: str, action: str, owner_id: str, details: dict[str, Any], values: dict[str, Any],
               defer: bool = False) -> None:
        """An audit record of the VM and its status columns, in one transaction. With `defer` (the outcome of
        a Proxmox write), held back until this VM's next status transaction or `flush(vm_id)`."""
        item = _Record(action, owner_id, details, values, utcnow())
        if defer:
            with self._deferred_lock:
                self._deferred.setdefault(vm_id, []).append(item)
            return
        self._grouped(vm_id, lambda session: self._write_record(session, vm_id, item))

    def flush(self, vm_id: str) -> None:
        """Write the VM's deferred records now, if it has any."""
        if vm_id in self._deferred:
            self._grouped(vm_id, lambda _session: None)

    @staticmethod
    def _write_record(session: Session, vm_id: str, item: _Record) -> None:
        if item.values:
            _set_columns(session, vm_id, item.values)
            if set(item.values) - HIDDEN_STATUS:
                events.emit(session, events.VM_CHANGED, vm_id, item.owner_id)
        session.info.setdefault(AUDIT_ROWS, []).append(audit.new_entry(
            CONTROLLER, item.action, "virtual_machine", vm_id, item.details, owner_id=item.owner_id, at=item.at))

    @staticmethod
    def _insert_audit(session: Session) -> None:
        """The audit rows _write_record queued on the session, as one Core INSERT (no ORM unit of work)."""
        rows = session.info.pop(AUDIT_ROWS, None)
        if rows:
            session.connection().execute(audit.INSERT, rows)

    def set_snapshot(self, snapshot_id: str, **values: Any) -> None:
        with self.write() as session:
            session.execute(update(VmSnapshot).where(VmSnapshot.id == snapshot_id).values(**values))
            vm_id = session.scalar(select(VmSnapshot.vm_id).where(VmSnapshot.id == snapshot_id))
            if vm_id:
                events.emit(session, events.VM_CHANGED, vm_id)

    def synced(self, vm: DesiredVm, observed: dict[str, Any], status: str | None, node: str | None,
               reboot_required: bool) -> bool:
        """Record convergence if the spec is still the generation this pass worked from."""
        def writes(session: Session) -> bool:
            recorded = self._record_observation(session, vm, observed, status, node, reboot_required, drift=[])
            if recorded and vm.snapshots:  # (none: no statement to send)
                session.execute(update(VmSnapshot).where(VmSnapshot.vm_id == vm.id)
                                .values(sync_status="synced", last_error=None, provisioned=True))
            if recorded and vm.rules:
                session.execute(update(FirewallRule).where(FirewallRule.vm_id == vm.id)
                                .values(sync_status="synced", last_error=None))
            return recorded

        return self._grouped(vm.id, writes)

    def observed_only(self, vm: DesiredVm, observed: dict[str, Any], status: str | None, node: str | None,
                      reboot_required: bool, drift: list[dict[str, Any]]) -> bool:
        """Observe mode: record what was seen and the drift from the spec (compare-and-set on the generation);
        snapshots and rules keep their own sync status, since nothing was applied."""
        with self.write(vm.id) as session:
            return self._record_observation(session, vm, observed, status, node, reboot_required, drift)

    @staticmethod
    def _record_observation(session: Session, vm: DesiredVm, observed: dict[str, Any], status: str | None,
                            node: str | None, reboot_required: bool, drift: list[dict[str, Any]]) -> bool:
        """The VM's status row as synced at the generation this pass worked from (compare-and-set), and its
        events; False when the spec moved meanwhile."""
        now = utcnow()
        params = {"b_id": vm.id, "b_generation": vm.generation, "b_observed_generation": vm.generation,
                  "b_sync_status": "synced", "b_last_error": None, "b_last_synced_at": now,
                  "b_status": status or "unknown", "b_observed_node": node, "b_reboot_required": reboot_required,
                  "b_observed": observed, "b_last_observed_at": now, "b_error_generation": None,
                  "b_provisioned": True, "b_drift": drift}
        conn = session.connection()
        # First as a transition to synced (one statement on the way to convergence), else as a row already synced.
        became = conn.execute(_BECAME_SYNCED, params)
        if not became.rowcount and not conn.execute(_OBSERVED, params).rowcount:
            return False
        events.emit(session, events.VM_CHANGED, vm.id)
        if became.rowcount:
            events.emit(session, events.VM_SYNCED, vm.id)
        return True

    def forget_vm(self, vm: DesiredVm, owner_id: str, name: str) -> None:
        """The Proxmox VM is gone: drop the row (snapshots and rules cascade) and leave a tombstone."""
        with self.write(vm.id) as session:
            for snapshot_id, snapshot_name in session.execute(
                    select(VmSnapshot.id, VmSnapshot.name).where(VmSnapshot.vm_id == vm.id)):
                events.emit(session, events.SNAPSHOT_DELETED, vm.id, owner_id,
                            {"snapshot_id": snapshot_id, "name": snapshot_name})
            events.emit(session, events.VM_DELETED, vm.id, owner_id, {"name": name, "vmid": vm.vmid})
            session.execute(delete(FirewallRule).where(FirewallRule.vm_id == vm.id))
            session.execute(delete(VmSnapshot).where(VmSnapshot.vm_id == vm.id))
            session.execute(delete(VirtualMachine).where(VirtualMachine.id == vm.id))
            session.merge(DeletedVm(id=vm.id, owner_id=owner_id, vmid=vm.vmid, name=name, deleted_at=utcnow()))
            audit.record(session, CONTROLLER, "vm_removed", "virtual_machine", vm.id,
                         {"vm_name": name, "vmid": vm.vmid}, owner_id=owner_id)

    def forget_snapshot(self, snapshot_id: str) -> None:
        with self.write() as session:
            found = session.execute(select(VmSnapshot.vm_id, VmSnapshot.name)
                                    .where(VmSnapshot.id == snapshot_id)).first()
            session.execute(delete(VmSnapshot).where(VmSnapshot.id == snapshot_id))
            if found is not None:
                events.emit(session, events.SNAPSHOT_DELETED, found.vm_id,
                            payload={"snapshot_id": snapshot_id, "name": found.name})
                events.emit(session, events.VM_CHANGED, found.vm_id)

    def audit(self, action: str, vm_id: str, owner_id: str, details: dict[str, Any],
              resource_type: str = "virtual_machine", resource_id: str | None = None) -> None:
        with self.write(vm_id) as session:
            audit.record(session, CONTROLLER, action, resource_type, resource_id or vm_id, details,
                         owner_id=owner_id)
            if action in AUDIT_EVENTS:
                events.emit(session, AUDIT_EVENTS[action], vm_id, owner_id, details)
