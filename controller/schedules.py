"""Scheduled snapshots with retention: the controller job behind a VM's `snapshot_schedule`.

Each run looks at every VM with a schedule: when the newest of its scheduled snapshots is `every`
old (or there is none), it adds a snapshot row `<prefix>-YYYYMMDD-HHMMSS` (UTC) marked `scheduled`;
then it marks the oldest scheduled snapshots beyond `keep` for deletion. The reconciler takes and
deletes them in Proxmox like any other snapshot. The next run time is computed from the newest
scheduled snapshot's time, so a restart neither skips nor repeats one. Snapshots a user made
(`scheduled` false) are never deleted here; VMs in observe mode or being deleted are skipped.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller import audit, snapshots, vms
from controller.actor import CONTROLLER
from controller.specs import duration_seconds
from controller.store.models import VirtualMachine, VmSnapshot, utcnow


def snapshot_name(prefix: str, when: datetime) -> str:
    return f"{prefix}-{when:%Y%m%d-%H%M%S}"


def due(schedule: dict[str, Any], last: datetime | None, now: datetime) -> bool:
    return last is None or now - last >= timedelta(seconds=duration_seconds(str(schedule["every"])))


def run_due(session: Session, now: datetime | None = None) -> list[str]:
    """Take due snapshots and apply retention in one transaction; returns the ids of the VMs changed."""
    now = now or utcnow()
    changed: list[str] = []
    query = select(VirtualMachine).where(VirtualMachine.snapshot_schedule.is_not(None),
                                         VirtualMachine.deletion_requested.is_(False))
    for vm in session.scalars(query):
        schedule = vm.snapshot_schedule
        if not schedule or vm.management == "observe":
            continue
        if _run_one(session, vm, schedule, now):
            changed.append(vm.id)
    return changed


def _run_one(session: Session, vm: VirtualMachine, schedule: dict[str, Any], now: datetime) -> bool:
    prefix = str(schedule.get("prefix") or "auto")
    rows = list(session.scalars(select(VmSnapshot).where(VmSnapshot.vm_id == vm.id)
                                .order_by(VmSnapshot.created_at, VmSnapshot.name)))
    ours = [row for row in rows if row.scheduled and row.name.startswith(prefix + "-")]
    last = max((row.created_at for row in ours), default=None)
    touched = False
    if due(schedule, last, now):
        name = snapshot_name(prefix, now)
        if all(row.name != name for row in rows):
            row = VmSnapshot(vm_id=vm.id, name=name, description=f"scheduled every {schedule['every']}",
                             created_at=now, updated_at=now, sync_status="pending", scheduled=True)
            session.add(row)
            session.flush()
            ours.append(row)
            audit.record(session, CONTROLLER, "create_snapshot", snapshots.RESOURCE, row.id,
                         {"vm_id": vm.id, "vm_name": vm.name, "snapshot_name": name, "scheduled": True},
                         owner_id=vm.owner_id)
            touched = True
    live = [row for row in ours if not row.deletion_requested]
    keep = int(schedule.get("keep") or 1)
    for row in live[: max(0, len(live) - keep)]:
        snapshots.mark_for_deletion(row)
        audit.record(session, CONTROLLER, "delete_snapshot", snapshots.RESOURCE, row.id,
                     {"vm_id": vm.id, "vm_name": vm.name, "snapshot_name": row.name, "scheduled": True,
                      "reason": f"retention: keep {keep}"}, owner_id=vm.owner_id)
        touched = True
    if touched:
        vms.mark_changed(vm)
    return touched
