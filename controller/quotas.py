"""Quotas: how much a user owns (VMs, CPU cores, memory, disk) and the check every write shares.

The REST create/update and manifest apply call `check` with the owner's usage after the change, in
the same transaction as the change, so a refused change writes nothing. Usage counts the owner's VMs
that are not being deleted. A quota is only enforced against growth: a user already over a lowered
quota may still shrink or keep what they have. VMs owned by admins are not limited (admins run the
cluster; give automation its own user account to bound it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Select, bindparam, func, select
from sqlalchemy.orm import Session

from controller.errors import QuotaExceeded
from controller.store.models import User, VirtualMachine

# quota column -> (usage field, words)
LIMITS = {
    "max_vms": ("vms", "virtual machines"),
    "max_cpu_cores": ("cpu_cores", "CPU cores"),
    "max_memory_mb": ("memory_mb", "MB of memory"),
    "max_disk_gb": ("disk_gb", "GB of disk"),
}


@dataclass
class Usage:
    vms: int = 0
    cpu_cores: int = 0
    memory_mb: int = 0
    disk_gb: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"vms": self.vms, "cpu_cores": self.cpu_cores, "memory_mb": self.memory_mb, "disk_gb": self.disk_gb}

    def add(self, vms: int = 0, cpu_cores: int = 0, memory_mb: int = 0, disk_gb: int = 0) -> Usage:
        return Usage(self.vms + vms, self.cpu_cores + cpu_cores, self.memory_mb + memory_mb, self.disk_gb + disk_gb)


def _usage_query() -> Select:  # type: ignore[type-arg, unused-ignore]
    return select(VirtualMachine.owner_id, func.count(VirtualMachine.id), func.coalesce(func.sum(
        VirtualMachine.cpu_cores), 0), func.coalesce(func.sum(VirtualMachine.memory_mb), 0),
        func.coalesce(func.sum(VirtualMachine.disk_gb), 0)).where(
        VirtualMachine.deletion_requested.is_(False)).group_by(VirtualMachine.owner_id)


def extra_disk_gb(disks: Iterable[Any] | None) -> int:
    """The size of a VM's extra data disks (`disks`: dicts or DiskSpecs with `size_gb`), which count
    toward `max_disk_gb` like the boot disk."""
    return sum(int(disk["size_gb"] if isinstance(disk, dict) else disk.size_gb) for disk in disks or ())


def _extra_disks(session: Session, owner_id: str | None = None) -> dict[str, int]:
    """owner -> GB of extra disks on their VMs (not being deleted)."""
    query = select(VirtualMachine.owner_id, VirtualMachine.disks).where(VirtualMachine.deletion_requested.is_(False))
    if owner_id is not None:
        query = query.where(VirtualMachine.owner_id == owner_id)
    totals: dict[str, int] = {}
    for owner, disks in session.execute(query):
        totals[str(owner)] = totals.get(str(owner), 0) + extra_disk_gb(disks)
    return totals


def usage_of(session: Session, owner_id: str) -> Usage:
    row = session.execute(_usage_query().where(VirtualMachine.owner_id == owner_id)).first()
    usage = Usage(*(int(row[index]) for index in range(1, 5))) if row else Usage()
    return usage.add(disk_gb=_extra_disks(session, owner_id).get(owner_id, 0))


def usage_by_owner(session: Session) -> dict[str, Usage]:
    extra = _extra_disks(session)
    return {str(row[0]): Usage(*(int(row[index]) for index in range(1, 5))).add(disk_gb=extra.get(str(row[0]), 0))
            for row in session.execute(_usage_query())}


def quota_of(user: User) -> dict[str, int | None]:
    return {key: getattr(user, key) for key in LIMITS}


_OWNER = select(User.role, *(getattr(User, key) for key in LIMITS)).where(User.id == bindparam("owner_id"))
_OWNER_FOR_UPDATE = _OWNER.with_for_update()


def lock_owner(session: Session, owner_id: str) -> Row[Any] | None:
    """The owner's role and quotas (a Core row: this runs on every create), locked on PostgreSQL so two
    concurrent creates cannot both pass the check (SQLite's BEGIN IMMEDIATE already serialises writers)."""
    return session.connection().execute(_OWNER_FOR_UPDATE, {"owner_id": owner_id}).first()  # Core: no autoflush


def check(session: Session, owner_id: str, before: Usage, after: Usage,
          owner: User | Row[Any] | None = None) -> None:
    """Raises QuotaExceeded naming the first quota `after` would exceed (where it grows past `before`).

    Call `lock_owner` before reading `before` (and pass what it answered as `owner`)."""
    owner = owner or session.get(User, owner_id)
    if owner is None or owner.role == "admin":
        return
    for key, (field, words) in LIMITS.items():
        limit = getattr(owner, key)
        wanted, had = getattr(after, field), getattr(before, field)
        if limit is not None and wanted > limit and wanted > had:
            raise QuotaExceeded(f"quota exceeded: {key} is {limit} {words}; this change would make {wanted} "
                                f"(in use: {had})", quota=key)


def check_growth(session: Session, owner_id: str, vms: int = 0, cpu_cores: int = 0, memory_mb: int = 0,
                 disk_gb: int = 0, owners: dict[str, Any] | None = None, pending: Usage | None = None) -> None:
    """`owners`: owner rows already locked in this transaction (a batch of creates reads each once);
    `pending`: what this transaction adds that is not written yet (a batch's earlier creates)."""
    if owners is not None and owner_id in owners:
        owner = owners[owner_id]
    else:
        owner = lock_owner(session, owner_id)
        if owners is not None:
            owners[owner_id] = owner
    if not limited(owner):
        return  # nothing to enforce: skip the usage sum (this runs on every create)
    before = usage_of(session, owner_id)
    if pending is not None:
        before = before.add(**pending.as_dict())
    check(session, owner_id, before, before.add(vms, cpu_cores, memory_mb, disk_gb), owner=owner)


def limited(owner: User | Row[Any] | None) -> bool:
    """Whether any quota applies to `owner` (admins and users without quotas are unlimited)."""
    return owner is not None and owner.role != "admin" and any(getattr(owner, key) is not None for key in LIMITS)
