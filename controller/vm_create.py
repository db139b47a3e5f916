"""Creating VMs: vmid allocation, and the two create paths.

API creates (`controller/create_queue.py` runs them in batches) are split in two: `prepare_create`
does what needs no database before the write lock; `place_create` does the reads under it (owner and
quota, node list, names, template, vmid) and queues the rows, which `write_creates` inserts once per
batch. Manifest applies create through `insert_vm` in their own transaction.

vmid allocation is serialised by a database lock on PostgreSQL (`lock_vmid_allocation`); SQLite's
write transactions already run one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, insert, inspect, select, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from controller import audit, cluster, guest, quotas
from controller.actor import Actor
from controller.errors import Conflict, Forbidden, Invalid
from controller.events import emit, kinds
from controller.specs import VmCreate
from controller.store.models import User, VirtualMachine, new_id, utcnow
from controller.vms import RESOURCE, _check_name_free, reader, spec_of

# pg_advisory_xact_lock key serialising vmid allocation (any constant unique to pvem: "pvem" in ASCII).
VMID_LOCK_KEY = 0x7076656D
_NAMES_TAKEN = select(VirtualMachine.owner_id, VirtualMachine.name).where(
    VirtualMachine.owner_id.in_(bindparam("owners", expanding=True)),
    VirtualMachine.name.in_(bindparam("names", expanding=True)))
_HIGHEST_VMID = select(func.max(VirtualMachine.vmid)).where(VirtualMachine.vmid >= bindparam("low"),
                                                             VirtualMachine.vmid <= bindparam("high"))


def lock_vmid_allocation(session: Session) -> None:
    """Serialise vmid allocation until the transaction ends: a PostgreSQL advisory transaction lock.
    (SQLite needs none: its write transactions already run one at a time.)"""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": VMID_LOCK_KEY})


def next_vmid(session: Session, vmid_min: int, vmid_max: int) -> int:
    """One above the highest vmid in use (Proxmox habit: ids are not reused soon), else the lowest gap."""
    highest = reader(session).scalar(_HIGHEST_VMID, {"low": vmid_min, "high": vmid_max})
    in_range = (VirtualMachine.vmid >= vmid_min, VirtualMachine.vmid <= vmid_max)
    if highest is None:
        return vmid_min
    if highest < vmid_max:
        return highest + 1
    expected = vmid_min
    for vmid in session.scalars(select(VirtualMachine.vmid).where(*in_range).order_by(VirtualMachine.vmid)):
        if vmid != expected:
            return expected
        expected += 1
    raise Conflict(f"no free vmid left in {vmid_min}..{vmid_max}")


class CreateBatch:
    """What the creates of one transaction share (`create_queue` runs many in one): one vmid allocator,
    the node list, each owner's quota row (none of which change inside the transaction), the names
    already taken (read once for all `creates`), and the rows, written together by `write_creates`."""

    def __init__(self, session: Session, vmid_range: tuple[int, int], creates: list[PreparedCreate]) -> None:
        self.creates = creates
        self.vmids = VmidAllocator(session, vmid_range)
        self.nodes: list[str] | None = None
        self.owners: dict[str, Any] = {}
        self.pending: dict[str, quotas.Usage] = {}
        self.taken: set[tuple[str, str]] | None = None
        self.vm_rows: list[dict[str, Any]] = []
        self.audit_rows: list[dict[str, Any]] = []

    def name_taken(self, session: Session, owner_id: str, name: str) -> bool:
        if self.taken is None:  # one query (on the owner+name index) for the names of the whole batch
            owners = {create.owner_id for create in self.creates} | {owner_id}
            names = {create.spec.name for create in self.creates} | {name}
            self.taken = {(str(owner), str(taken)) for owner, taken in reader(session).execute(
                _NAMES_TAKEN, {"owners": list(owners), "names": list(names)})}
        return (owner_id, name) in self.taken


@dataclass
class PreparedCreate:
    """A create built outside the write lock: the checks that need no database, the transient VM (its id,
    columns and defaults; the vmid is given under the lock) and its INSERT values."""

    actor: Actor
    spec: VmCreate
    owner_id: str
    for_other: bool  # an admin creating for `spec.owner_id`: that user's existence is checked under the lock
    vm: VirtualMachine
    row: dict[str, Any]


def prepare_create(actor: Actor, spec: VmCreate, default_node: str | None = None,
                   reboot_policy_default: str = "never") -> PreparedCreate:
    """What a create can check and build without the database (run it before taking the write lock)."""
    owner_id, for_other = actor.user_id, False
    if spec.owner_id is not None and spec.owner_id != actor.user_id:
        if not actor.is_admin:
            raise Forbidden("only admins may create virtual machines for other users")
        owner_id, for_other = spec.owner_id, True
    if owner_id is None:
        raise Invalid("an owner is required", field="owner_id")
    if spec.reboot_policy is None:
        spec = spec.model_copy(update={"reboot_policy": reboot_policy_default})
    vm = _new_vm(owner_id, spec, spec.node or default_node)
    vm.id = new_id()
    return PreparedCreate(actor, spec, owner_id, for_other, vm, _row_of(vm))


def place_create(session: Session, create: PreparedCreate, batch: CreateBatch) -> VirtualMachine:
    """The checks that read the database, then the create joins `batch` (written by `write_creates`).
    Every refusal (a DomainError) comes before the create joins, so a batch can go on without it."""
    spec, owner_id, vm = create.spec, create.owner_id, create.vm
    if create.for_other and session.get(User, owner_id) is None:
        raise Invalid("no such user", field="owner_id")
    disk_gb = spec.disk_gb + quotas.extra_disk_gb(spec.disks)
    quotas.check_growth(session, owner_id, vms=1, cpu_cores=spec.cpu_cores, memory_mb=spec.memory_mb,
                        disk_gb=disk_gb, owners=batch.owners, pending=batch.pending.get(owner_id))
    if spec.node is not None:
        if batch.nodes is None:
            batch.nodes = cluster.known_nodes(session)
        cluster.check_node(session, spec.node, known=batch.nodes)
    if not vm.node:
        raise Invalid("is required (no proxmox.default_node is configured)", field="node")
    if batch.name_taken(session, owner_id, spec.name):
        raise Conflict(f"a virtual machine named {spec.name!r} already exists")
    template_disk_gb = guest.check_template(session, spec)
    if template_disk_gb is not None:
        set_committed_value(vm, "disk_gb", template_disk_gb)
        create.row["disk_gb"] = template_disk_gb
    vmid = batch.vmids.take()
    set_committed_value(vm, "vmid", vmid)
    create.row["vmid"] = vmid
    assert batch.taken is not None
    batch.taken.add((owner_id, spec.name))
    batch.pending[owner_id] = batch.pending.get(owner_id, quotas.Usage()).add(
        1, spec.cpu_cores, spec.memory_mb, disk_gb)
    batch.vm_rows.append(create.row)
    batch.audit_rows.append(audit.new_entry(
        create.actor, "create_vm", RESOURCE, vm.id,
        {"vm_name": vm.name, "vmid": vmid, "node": vm.node, "spec": spec_of(vm)}, owner_id=owner_id))
    emit(session, kinds.VM_CREATED, vm.id, owner_id)
    return vm


def write_creates(session: Session, batch: CreateBatch) -> None:
    """The batch's rows: one multi-row INSERT each for the VMs and their audit records."""
    connection = session.connection()
    if batch.vm_rows:
        connection.execute(_INSERT_VM, batch.vm_rows)
        connection.execute(audit.INSERT, batch.audit_rows)
    batch.vm_rows, batch.audit_rows = [], []


def create_vm(
    session: Session, actor: Actor, spec: VmCreate, vmid_min: int, vmid_max: int,
    default_node: str | None = None, reboot_policy_default: str = "never",
) -> VirtualMachine:
    """Checks and writes one new VM (row, audit record, feed event) in `session`'s transaction."""
    create = prepare_create(actor, spec, default_node, reboot_policy_default)
    batch = CreateBatch(session, (vmid_min, vmid_max), [create])
    vm = place_create(session, create, batch)
    write_creates(session, batch)
    return vm


class VmidAllocator:
    """vmids for several creates in one transaction (a manifest apply): the first comes from `next_vmid`,
    the next ones count up from it, so a thousand creates cost one query, not a thousand. Valid because
    the allocation lock (`lock_vmid_allocation`, taken with the first) is held until the transaction ends."""

    def __init__(self, session: Session, vmid_range: tuple[int, int]) -> None:
        self.session, self.vmid_range = session, vmid_range
        self._next: int | None = None

    def take(self) -> int:
        if self._next is None:
            lock_vmid_allocation(self.session)
        if self._next is None or self._next > self.vmid_range[1]:
            vmid = next_vmid(self.session, *self.vmid_range)  # past the top: the lowest gap, as next_vmid finds
        else:
            vmid = self._next
        self._next = vmid + 1
        return vmid


_INSERT_VM = insert(VirtualMachine)
_VM_ATTRIBUTES = tuple((attr.key, attr.columns[0]) for attr in inspect(VirtualMachine).column_attrs)


def _row_of(vm: VirtualMachine) -> dict[str, Any]:
    """The INSERT values of a new (transient) VM; columns it leaves unset get their defaults, on the
    object too, so it reads back as the stored row would (the model has Python-side defaults only)."""
    values: dict[str, Any] = {}
    given = vm.__dict__
    for key, column in _VM_ATTRIBUTES:
        if key in given:
            value = given[key]
        else:
            default: Any = column.default
            value = None if default is None else default.arg(None) if default.is_callable else default.arg
            set_committed_value(vm, key, value)
        values[column.key] = value
    return values


def _new_vm(owner_id: str, spec: VmCreate, node: str | None, apply_set: str | None = None) -> VirtualMachine:
    """The transient VM a create spec describes (no id, no vmid yet)."""
    now = utcnow()
    vm = VirtualMachine(
        owner_id=owner_id, name=spec.name, node=node, cpu_cores=spec.cpu_cores, memory_mb=spec.memory_mb,
        disk_gb=spec.disk_gb, power_state=spec.power_state, labels=dict(spec.labels), apply_set=apply_set,
        management=spec.management, reboot_policy=spec.reboot_policy or "never",
        snapshot_schedule=spec.snapshot_schedule.model_dump() if spec.snapshot_schedule else None, drift=[],
        enable_firewall=True,
        generation=1, observed_generation=0, sync_status="pending", status="unknown", created_at=now,
        updated_at=now,
    )
    for key, value in guest.create_columns(spec).items():
        setattr(vm, key, value)
    return vm


def insert_vm(session: Session, owner_id: str, spec: VmCreate, vmids: VmidAllocator, default_node: str | None,
              apply_set: str | None = None, name_checked: bool = False) -> VirtualMachine:
    """A manifest apply's new VM (no audit: the caller records what it did), its vmid from the apply's
    allocator; the row is flushed with the apply's other rows (one multi-row INSERT). `name_checked`: the
    caller has already checked that the owner has no VM of this name, in this transaction (a manifest
    plan does). API creates go through `prepare_create`/`place_create` instead.

    Allocation is serialised (`lock_vmid_allocation`; SQLite: every write transaction), so the vmid is
    free unless one was taken outside the lock meanwhile: then the commit fails as a whole (409,
    nothing written)."""
    node = spec.node or default_node
    if not node:
        raise Invalid("is required (no proxmox.default_node is configured)", field="node")
    if not name_checked:
        _check_name_free(session, owner_id, spec.name)
    template_disk_gb = guest.check_template(session, spec)
    vm = _new_vm(owner_id, spec, node, apply_set)
    if template_disk_gb is not None:
        vm.disk_gb = template_disk_gb
    vm.id, vm.vmid = new_id(), vmids.take()
    session.add(vm)
    return vm
