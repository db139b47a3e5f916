"""VM desired state: reads, updates, power actions and deletion requests, with tenancy and audit
(creating VMs is `controller/vm_create.py`).

Only spec columns are written here. Each spec change bumps `generation` and sets `sync_status` to
`pending` in the same transaction; the reconciler writes the status half.

Concurrency (several API replicas on PostgreSQL): every spec write first locks the VM's row
(`SELECT ... FOR UPDATE`, through `get_live_vm` or `get_vm(for_update=True)`), so generation bumps and
the restart and rollback counters are never lost. SQLite serialises writers anyway (BEGIN IMMEDIATE).
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from controller import audit, cluster, guest, pages, quotas
from controller.actor import Actor
from controller.errors import Conflict, Invalid, NotFound
from controller.specs import VmUpdate
from controller.store.models import DeletedVm, VirtualMachine, utcnow

RESOURCE = "virtual_machine"
SPEC_FIELDS = ("name", "cpu_cores", "memory_mb", "disk_gb", "node", "power_state", "labels", "management",
               "reboot_policy", "snapshot_schedule")
# action -> (desired power state required first or None, resulting desired power state or None)
ACTIONS: dict[str, tuple[tuple[str, ...] | None, str | None]] = {
    "start": (None, "running"),
    "stop": (None, "stopped"),
    "unpause": (("paused",), "running"),
    "pause": (("running",), "paused"),
    "restart": (("running",), None),
}


def visible(query: Any, actor: Actor) -> Any:
    return query if actor.is_admin else query.where(VirtualMachine.owner_id == actor.user_id)


def list_vms(session: Session, actor: Actor, name: str | None = None,
             labels: dict[str, str] | None = None) -> list[VirtualMachine]:
    """The VMs the actor may see, oldest first; `labels` keeps those carrying every given label."""
    query = visible(select(VirtualMachine), actor).order_by(VirtualMachine.created_at, VirtualMachine.vmid)
    if name is not None:
        query = query.where(VirtualMachine.name == name)
    found = list(session.scalars(query))
    return [vm for vm in found if matches_labels(vm, labels)] if labels else found


@functools.lru_cache(maxsize=64)
def _list_query(select_list: tuple[Any, ...], admin: bool, by_name: bool, with_labels: bool) -> Any:
    """The hot list's statement, built once per shape (its values are bound parameters)."""
    query = select(*select_list)
    if not admin:
        query = query.where(VirtualMachine.owner_id == bindparam("owner_id"))
    if by_name:
        query = query.where(VirtualMachine.name == bindparam("name"))
    if with_labels:
        query = query.add_columns(VirtualMachine.labels)
    return query


@functools.lru_cache(maxsize=64)
def _get_query(select_list: tuple[Any, ...], admin: bool) -> Any:
    query = select(*select_list).where(VirtualMachine.id == bindparam("vm_id"))
    return query if admin else query.where(VirtualMachine.owner_id == bindparam("owner_id"))


def list_vm_rows(session: Session | Connection, actor: Actor, select_list: tuple[Any, ...], name: str | None = None,
                 labels: dict[str, str] | None = None, page: pages.PageRequest = pages.ALL,
                 ) -> tuple[list[tuple[Any, ...]], str | None]:
    """As list_vms, but rows of `select_list` (column expressions: the API selects each VM's finished
    answer, api.vm_json), one Core query for the hot read path; with `page`, one keyset page and the
    next cursor. Pass the same tuple object each time: statements are cached by it."""
    query = _list_query(select_list, actor.is_admin, name is not None, bool(labels))
    params: dict[str, Any] = {} if actor.is_admin else {"owner_id": actor.user_id}
    if name is not None:
        params["name"] = name
    keep = None
    width = len(select_list)
    if labels:
        wanted = labels.items()

        def keep(row: Any) -> bool:
            have = row[width] or {}
            return all(have.get(key) == value for key, value in wanted)

    rows, token = pages.fetch(session, query, (VirtualMachine.created_at, VirtualMachine.vmid), page, "vms",
                              keep=keep, core=True, params=params, cache=True)
    return ([row[:width] for row in rows] if labels else rows), token


def get_vm_row(session: Session | Connection, actor: Actor, vm_id: str,
               select_list: tuple[Any, ...]) -> tuple[Any, ...]:
    """As get_vm, but one row of `select_list` (as list_vm_rows)."""
    query = _get_query(select_list, actor.is_admin)
    params = {"vm_id": vm_id} if actor.is_admin else {"vm_id": vm_id, "owner_id": actor.user_id}
    conn = session.connection() if isinstance(session, Session) else session
    row = conn.execute(query, params).first()
    if row is None:
        raise NotFound("virtual machine not found")
    return tuple(row)


def matches_labels(vm: VirtualMachine, selector: dict[str, str] | None) -> bool:
    # Filtered in Python: label JSON is not portably indexable, and a user's VM count is small.
    vm_labels = vm.labels or {}
    return all(vm_labels.get(key) == value for key, value in (selector or {}).items())


def get_vm(session: Session, actor: Actor, vm_id: str, for_update: bool = False) -> VirtualMachine:
    """The VM if the actor may see it; another user's VM is indistinguishable from a missing one.

    `for_update`: lock the row until the transaction ends and read its latest committed version."""
    if for_update:
        vm = session.get(VirtualMachine, vm_id, with_for_update=True, populate_existing=True)
    else:
        vm = session.get(VirtualMachine, vm_id)
    if vm is None or not (actor.is_admin or vm.owner_id == actor.user_id):
        raise NotFound("virtual machine not found")
    return vm


def get_live_vm(session: Session, actor: Actor, vm_id: str) -> VirtualMachine:
    """As get_vm (row locked: callers write), but refuses a VM that is being deleted."""
    vm = get_vm(session, actor, vm_id, for_update=True)
    if vm.deletion_requested:
        raise Conflict("virtual machine is being deleted")
    return vm


def lock_owner_vms(session: Session, owner_id: str) -> None:
    """Lock every VM row of one owner until the transaction ends (a manifest apply writes many at once)."""
    session.execute(select(VirtualMachine.id).where(VirtualMachine.owner_id == owner_id)
                    .order_by(VirtualMachine.id).with_for_update())


def mark_changed(vm: VirtualMachine) -> None:
    """A spec write: new generation, pending sync. Called for the VM's snapshots and rules too."""
    vm.generation += 1
    vm.updated_at = utcnow()
    if not vm.deletion_requested:
        vm.sync_status = "pending"


def mark_for_deletion(vm: VirtualMachine) -> None:
    """The finalizer mark: the reconciler destroys the Proxmox VM, then drops the row."""
    vm.deletion_requested = True
    mark_changed(vm)
    vm.sync_status = "deleting"


# Statements of every create, built once (their values are bound parameters).
_NAME_TAKEN = select(VirtualMachine.id).where(VirtualMachine.owner_id == bindparam("owner_id"),
                                              VirtualMachine.name == bindparam("name"))
def reader(session: Session) -> Session | Connection:
    """Where to run a query in `session`'s transaction: its Core connection when nothing is pending (no
    autoflush is needed, and the ORM's execute path costs ~0.1 ms a statement on every create), else
    the session itself."""
    return session if session.new or session.dirty or session.deleted else session.connection()


def _check_name_free(session: Session, owner_id: str, name: str, exclude_id: str | None = None) -> None:
    query = _NAME_TAKEN if not exclude_id else _NAME_TAKEN.where(VirtualMachine.id != exclude_id)
    if reader(session).scalar(query, {"owner_id": owner_id, "name": name}):
        raise Conflict(f"a virtual machine named {name!r} already exists")


def spec_of(vm: VirtualMachine) -> dict[str, Any]:
    return {**{field: getattr(vm, field) for field in SPEC_FIELDS}, **guest.answer_fields(vm)}


def check_disk_growth(vm: VirtualMachine, disk_gb: int) -> None:
    if disk_gb < vm.disk_gb:
        raise Invalid(f"cannot shrink the disk from {vm.disk_gb} GB to {disk_gb} GB (Proxmox disks only grow)",
                      field="disk_gb")


def field_changes(vm: VirtualMachine, requested: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{field: {"old", "new"}} for the requested values that differ from the VM's spec."""
    return {key: {"old": getattr(vm, key), "new": value}
            for key, value in requested.items() if getattr(vm, key) != value}


def apply_changes(session: Session, vm: VirtualMachine, changes: dict[str, dict[str, Any]]) -> None:
    """Writes spec changes (already validated) and bumps the generation when a Proxmox-facing field moved."""
    if "name" in changes:
        _check_name_free(session, vm.owner_id, changes["name"]["new"], exclude_id=vm.id)
    for key, change in changes.items():
        setattr(vm, key, change["new"])
    if set(changes) - {"labels"}:
        mark_changed(vm)
    else:
        vm.updated_at = utcnow()  # labels are pvem's own metadata: Proxmox has nothing to converge


def update_vm(session: Session, actor: Actor, vm_id: str, update: VmUpdate) -> VirtualMachine:
    vm = get_live_vm(session, actor, vm_id)
    requested = update.model_dump(exclude_unset=True)
    if update.snapshot_schedule is not None:  # with its defaults (prefix), as the row holds it
        requested["snapshot_schedule"] = update.snapshot_schedule.model_dump()
    if "disk_gb" in requested:
        check_disk_growth(vm, requested["disk_gb"])
    requested.update(guest.requested_values(vm, requested))
    if "node" in requested and requested["node"] != vm.node:
        cluster.check_node(session, requested["node"])
    changes = field_changes(vm, requested)
    if not changes:
        return vm
    growth = {key: change["new"] - change["old"] for key, change in changes.items()
              if key in ("cpu_cores", "memory_mb", "disk_gb")}
    if "disks" in changes:  # extra disks count toward max_disk_gb too
        growth["disk_gb"] = growth.get("disk_gb", 0) + quotas.extra_disk_gb(changes["disks"]["new"]) - \
            quotas.extra_disk_gb(changes["disks"]["old"])
    if any(value > 0 for value in growth.values()):
        quotas.check_growth(session, vm.owner_id, **growth)
    apply_changes(session, vm, changes)
    audit.record(session, actor, "update_vm", RESOURCE, vm.id,
                 {"vm_name": vm.name, "changes": guest.redact_changes(changes)}, owner_id=vm.owner_id)
    return vm


def request_action(session: Session, actor: Actor, vm_id: str, action: str) -> VirtualMachine:
    if action not in ACTIONS:
        raise Invalid(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}", field="action")
    vm = get_live_vm(session, actor, vm_id)
    required, result = ACTIONS[action]
    if required is not None and vm.power_state not in required:
        raise Conflict(f"cannot {action}: the virtual machine's desired power state is {vm.power_state}, "
                       f"{action} needs {' or '.join(required)}")
    before = vm.power_state
    if action == "restart":
        vm.restart_requests += 1
    elif result is not None:
        vm.power_state = result
    if action == "restart" or before != vm.power_state:
        mark_changed(vm)
    audit.record(session, actor, f"{action}_vm", RESOURCE, vm.id,
                 {"vm_name": vm.name, "action": action, "power_state": {"old": before, "new": vm.power_state}},
                 owner_id=vm.owner_id)
    return vm


def request_deletion(session: Session, actor: Actor, vm_id: str) -> VirtualMachine | None:
    """Finalizer-style: mark now; the reconciler destroys the Proxmox VM and then drops the row.

    Deleting again is not an error, even once the row is gone (None: already deleted).
    """
    tombstone = session.get(DeletedVm, vm_id)
    if tombstone is not None and (actor.is_admin or tombstone.owner_id == actor.user_id):
        return None
    vm = get_vm(session, actor, vm_id, for_update=True)
    if vm.deletion_requested:
        return vm
    mark_for_deletion(vm)
    audit.record(session, actor, "delete_vm", RESOURCE, vm.id, {"vm_name": vm.name, "vmid": vm.vmid},
                 owner_id=vm.owner_id)
    return vm
