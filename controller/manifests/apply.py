"""Server-side apply: validate, plan and write a set of manifests in the caller's single transaction.

`apply_manifests` is what `POST /api/manifests` calls. It writes nothing on a dry run, nothing at all
when any document is invalid (the caller's transaction rolls back), and nothing for objects already
as declared: no generation bump, no audit record. Each changed object gets one audit record naming
the apply set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from controller import audit, firewall, quotas, snapshots, vm_create, vms
from controller.actor import Actor
from controller.errors import Invalid
from controller.firewall_specs import RuleSpec
from controller.manifests.model import VmManifest
from controller.manifests.plan import PlannedObject, plan
from controller.reconcile.impact import IMPACTS
from controller.store.models import FirewallRule, VirtualMachine, utcnow

_APPLY_SET = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")


def check_apply_set(name: str | None, prune: bool) -> str | None:
    if name is not None and not _APPLY_SET.fullmatch(name):  # fullmatch: `$` would let "web\n" in
        raise Invalid("must be 1 to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or "
                      "digit", field="apply_set")
    if prune and name is None:
        raise Invalid("prune needs an apply_set: only VMs created by that apply set are ever pruned",
                      field="prune")
    return name


@dataclass(frozen=True)
class ApplyOptions:
    apply_set: str | None = None
    prune: bool = False
    dry_run: bool = False
    vmid_range: tuple[int, int] = (100, 999_999)
    default_node: str | None = None
    adopt: bool = False
    reboot_policy_default: str = "never"


@dataclass
class ApplyResult:
    objects: list[PlannedObject]
    options: ApplyOptions
    changed_vm_ids: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        """Objects per action and per impact (each object counted once, by its worst change)."""
        counts = dict.fromkeys(("create", "update", "delete", "unchanged"), 0)
        counts.update(dict.fromkeys(IMPACTS, 0))
        for item in self.objects:
            counts[item.action] += 1
            counts[item.impact] += 1
        return counts

    def message(self) -> str:
        counts = self.summary()
        if self.options.dry_run:
            return (f"Dry run: {counts['create']} to create, {counts['update']} to update, "
                    f"{counts['delete']} to delete, {counts['unchanged']} unchanged")
        return (f"Applied: {counts['create']} created, {counts['update']} updated, {counts['delete']} deleted, "
                f"{counts['unchanged']} unchanged")

    def as_dict(self) -> dict[str, Any]:
        summary = self.summary()
        return {"dry_run": self.options.dry_run, "apply_set": self.options.apply_set, "prune": self.options.prune,
                "adopt": self.options.adopt, "warnings": list(self.warnings),
                "changed": summary["unchanged"] != len(self.objects), "summary": summary,
                "objects": [item.as_dict() for item in self.objects]}


def apply_manifests(session: Session, actor: Actor, manifests: list[VmManifest],
                    options: ApplyOptions) -> ApplyResult:
    if actor.user_id is None:
        raise Invalid("manifests are applied on behalf of a user")
    if not options.dry_run:
        vms.lock_owner_vms(session, actor.user_id)  # the plan reads what it writes, with no writer in between
    warnings: list[str] = []
    objects = plan(session, actor.user_id, manifests, options.apply_set, options.prune, options.default_node,
                   adopt=options.adopt, warnings=warnings, reboot_policy_default=options.reboot_policy_default)
    check_quota(session, actor.user_id, objects)
    result = ApplyResult(objects, options, warnings=warnings)
    if options.dry_run:
        return result
    vmids = vm_create.VmidAllocator(session, options.vmid_range)  # one vmid query for all the creates
    for item in objects:
        if item.action == "unchanged":
            continue
        vm = _write(session, actor.user_id, item, options, vmids)
        audit.record(session, actor, f"{item.action}_vm", vms.RESOURCE, vm.id,
                     {"vm_name": vm.name, "vmid": vm.vmid, "via": "manifest", "apply_set": options.apply_set,
                      "document": item.document, "changes": [change.as_dict() for change in item.changes]},
                     owner_id=vm.owner_id)
        result.changed_vm_ids.append(vm.id)
    return result


def check_quota(session: Session, owner_id: str, objects: list[PlannedObject]) -> None:
    """The owner's usage once the whole plan is applied, against their quota (nothing written yet)."""
    quotas.lock_owner(session, owner_id)
    before = quotas.usage_of(session, owner_id)
    after = before
    for item in objects:
        if item.action == "create" and item.create_spec is not None:
            spec = item.create_spec
            after = after.add(1, spec.cpu_cores, spec.memory_mb, spec.disk_gb + quotas.extra_disk_gb(spec.disks))
        elif item.action == "delete" and item.vm is not None and not item.vm.deletion_requested:
            vm = item.vm
            after = after.add(-1, -vm.cpu_cores, -vm.memory_mb, -vm.disk_gb - quotas.extra_disk_gb(vm.disks))
        elif item.action == "update" and item.vm is not None:
            vm = item.vm
            after = after.add(0, *(item.fields.get(key, getattr(vm, key)) - getattr(vm, key)
                                   for key in ("cpu_cores", "memory_mb", "disk_gb")))
            if "disks" in item.fields:
                after = after.add(disk_gb=quotas.extra_disk_gb(item.fields["disks"]) - quotas.extra_disk_gb(vm.disks))
    quotas.check(session, owner_id, before, after)

def _write(session: Session, owner_id: str, item: PlannedObject, options: ApplyOptions,
           vmids: vm_create.VmidAllocator) -> VirtualMachine:
    if item.action == "create":
        assert item.create_spec is not None
        # the plan found the name free under this transaction's lock (lock_owner_vms)
        vm = vm_create.insert_vm(session, owner_id, item.create_spec, vmids, options.default_node,
                                 apply_set=options.apply_set, name_checked=True)
        item.vm = vm
        if item.rules_new or item.snapshots_new:
            session.flush()  # the VM's row before its rules' and snapshots' (their foreign keys)
    else:
        assert item.vm is not None
        vm = item.vm
    if item.action == "delete":
        vms.mark_for_deletion(vm)
        return vm

    now = utcnow()
    for key, value in item.fields.items():
        setattr(vm, key, value)
    for snapshot in item.snapshots_new:
        session.add(snapshots.new_snapshot(vm.id, snapshot))
    for snapshot_row, description in item.snapshot_descriptions:
        snapshot_row.description, snapshot_row.sync_status, snapshot_row.updated_at = description, "pending", now
    for snapshot_row in item.snapshots_gone:
        snapshots.mark_for_deletion(snapshot_row)
    for rule_row, rule in item.rules_rewritten:
        _set_rule(rule_row, rule, now)
    for rule_row in item.rules_gone:
        session.delete(rule_row)
    for position, rule in item.rules_new:
        session.add(_set_rule(FirewallRule(vm_id=vm.id, position=position, created_at=now), rule, now))
    if item.action == "update":
        if item.touches_proxmox:
            vms.mark_changed(vm)
        else:
            vm.updated_at = now
    if item.action != "create":  # new rows (VMs, their rules and snapshots) all go in the commit's flush;
        session.flush()          # changes to existing ones one VM at a time (rule positions are unique)
    return vm


def _set_rule(row: FirewallRule, rule: RuleSpec, now: Any) -> FirewallRule:
    for key in firewall.SPEC_FIELDS:
        setattr(row, key, getattr(rule, key))
    row.sync_status, row.updated_at = "pending", now
    return row
