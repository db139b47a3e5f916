"""The apply plan: what a set of manifests would change, object by object, field by field.

Planning only reads. Each object gets an action (`create | update | delete | unchanged`) and a list
of `Change(field, old, new)`; the write-side details (which snapshot rows to add, which rules to
rewrite) ride along for `apply.execute`, so a dry run and a real apply compute the very same plan.
Firewall rules are compared by position: rule i of the manifest is rule i of the VM.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller import cluster, firewall, guest, vms
from controller.errors import Conflict, Invalid
from controller.firewall_specs import RuleSpec
from controller.manifests.model import ManifestInvalid, Problem, VmManifest
from controller.reconcile.impact import change_impact, worst
from controller.specs import SnapshotCreate, VmCreate
from controller.store.models import FirewallRule, VirtualMachine, VmSnapshot

Action = Literal["create", "update", "delete", "unchanged"]
KIND = "VirtualMachine"


@dataclass(frozen=True)
class Change:
    field: str
    old: Any
    new: Any
    impact: str = "none"  # none | live | reboot | stop | destructive (controller.reconcile.impact)

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "old": self.old, "new": self.new, "impact": self.impact}


@dataclass
class PlannedObject:
    name: str
    action: Action
    document: int | None
    vm: VirtualMachine | None = None
    changes: list[Change] = field(default_factory=list)
    # write-side details for apply.execute
    create_spec: VmCreate | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # VM column -> new value
    snapshots_new: list[SnapshotCreate] = field(default_factory=list)
    snapshots_gone: list[VmSnapshot] = field(default_factory=list)
    snapshot_descriptions: list[tuple[VmSnapshot, str | None]] = field(default_factory=list)
    rules_new: list[tuple[int, RuleSpec]] = field(default_factory=list)
    rules_rewritten: list[tuple[FirewallRule, RuleSpec]] = field(default_factory=list)
    rules_gone: list[FirewallRule] = field(default_factory=list)

    @property
    def touches_proxmox(self) -> bool:
        """Anything but labels and the apply set (pvem's own metadata) changes what the reconciler must converge."""
        return any(change.field not in ("metadata.labels", "metadata.apply_set") for change in self.changes)

    @property
    def impact(self) -> str:
        """The worst impact of the object's changes (a prune is destructive)."""
        if self.action == "delete":
            return "destructive"
        return worst(change.impact for change in self.changes)

    def classify(self) -> None:
        """Give each change its impact on the guest, from the VM's last observation."""
        vm = self.vm
        observed = dict(vm.observed or {}) if vm is not None else {}
        if vm is not None:
            observed.setdefault("status", vm.status)
            if vm.status not in (None, "unknown"):
                observed["status"] = vm.status
        management = self.fields.get("management", vm.management if vm is not None else None)
        if self.create_spec is not None:
            management = self.create_spec.management
        # In observe mode pvem acts on nothing: the plan must not promise what will not happen.
        self.changes = [Change(change.field, change.old, change.new,
                               "none" if management == "observe" else self._impact(change, observed))
                        for change in self.changes]

    def _impact(self, change: Change, observed: dict[str, Any]) -> str:
        if change.field == "spec.management" and change.old == "observe" and self.vm is not None:
            # Back to enforce: pvem corrects the drift it reported, and that is what happens to the guest.
            return worst(change_impact(f"spec.{item.get('field')}", item.get("observed"), item.get("desired"),
                                       observed, self.action) for item in self.vm.drift or [])
        return change_impact(change.field, change.old, change.new, observed, self.action)

    def as_dict(self) -> dict[str, Any]:
        vm = self.vm
        return {"kind": KIND, "name": self.name, "action": self.action, "document": self.document,
                "id": vm.id if vm is not None else None, "vmid": vm.vmid if vm is not None else None,
                "impact": self.impact, "changes": [change.as_dict() for change in self.changes]}


def rule_values(rule: FirewallRule | RuleSpec) -> dict[str, Any]:
    return {key: getattr(rule, key) for key in firewall.SPEC_FIELDS}


def compact(values: dict[str, Any]) -> dict[str, Any]:
    """A rule or snapshot as a person would write it: unset (None) fields left out."""
    return {key: value for key, value in values.items() if value is not None}


def snapshot_values(name: str, description: str | None) -> dict[str, Any]:
    return compact({"name": name, "description": description})


def plan(session: Session, owner_id: str, manifests: list[VmManifest], apply_set: str | None = None,
         prune: bool = False, default_node: str | None = None, adopt: bool = False,
         warnings: list[str] | None = None, reboot_policy_default: str = "never") -> list[PlannedObject]:
    """The plan for `manifests` applied by `owner_id`; with `prune`, also the deletions of the apply set's
    VMs no longer listed; with `adopt`, listed VMs outside the apply set become members (without it, each
    is a warning appended to `warnings`). Raises ManifestInvalid (all problems) or Conflict; writes nothing."""
    existing = {vm.name: vm for vm in session.scalars(
        select(VirtualMachine).where(VirtualMachine.owner_id == owner_id))}
    children = Children.load(session, [existing[m.name].id for m in manifests if m.name in existing])
    problems: list[Problem] = []
    planned: list[PlannedObject] = []
    known_nodes = cluster.known_nodes(session)
    for manifest in manifests:
        vm = existing.get(manifest.name)
        node = manifest.spec.node if "node" in manifest.spec.model_fields_set else None
        if node is not None and (vm is None or node != vm.node):
            try:
                cluster.check_node(session, node, known=known_nodes)
            except Invalid as exc:
                problems.append(Problem(manifest.document, "spec.node", exc.message.removeprefix("node: "),
                                        manifest.name))
        if vm is None:
            planned.append(_plan_create(manifest, default_node, problems, reboot_policy_default))
            _check_template(session, manifest, planned[-1], problems)
        elif vm.deletion_requested:
            raise Conflict(f"document {manifest.document} ({manifest.name}): the virtual machine is still being "
                           "deleted; apply again once it is gone")
        else:
            item = _plan_update(vm, manifest, children, problems)
            if apply_set is not None and vm.apply_set != apply_set:
                if adopt:
                    item.fields["apply_set"] = apply_set
                    item.changes.append(Change("metadata.apply_set", vm.apply_set, apply_set))
                    item.action = "update"
                elif warnings is not None:
                    warnings.append(f"{vm.name} exists outside apply set {apply_set}: --adopt makes it a member")
            planned.append(item)
    if problems:
        raise ManifestInvalid(problems)
    if prune:
        listed = {manifest.name for manifest in manifests}
        for vm in sorted(existing.values(), key=lambda vm: vm.name):
            if vm.apply_set == apply_set and not vm.deletion_requested and vm.name not in listed:
                planned.append(PlannedObject(vm.name, "delete", None, vm=vm))
    for item in planned:
        item.classify()
    return planned


@dataclass
class Children:
    """The snapshots and rules of the VMs a plan looks at, read in two queries (not two per VM)."""

    snapshots: dict[str, list[VmSnapshot]]
    rules: dict[str, list[FirewallRule]]

    @classmethod
    def load(cls, session: Session, vm_ids: list[str]) -> Children:
        children = cls({vm_id: [] for vm_id in vm_ids}, {vm_id: [] for vm_id in vm_ids})
        if vm_ids:
            for snapshot in session.scalars(select(VmSnapshot).where(VmSnapshot.vm_id.in_(vm_ids))
                                            .order_by(VmSnapshot.created_at, VmSnapshot.name)):
                children.snapshots[snapshot.vm_id].append(snapshot)
            for rule in session.scalars(select(FirewallRule).where(FirewallRule.vm_id.in_(vm_ids))
                                        .order_by(FirewallRule.position, FirewallRule.created_at)):
                children.rules[rule.vm_id].append(rule)
        return children


def _plan_create(manifest: VmManifest, default_node: str | None, problems: list[Problem],
                 reboot_policy_default: str = "never") -> PlannedObject:
    spec = manifest.spec
    values = spec.model_dump(exclude_unset=True, exclude={"snapshots", "firewall"})
    values.setdefault("reboot_policy", reboot_policy_default)
    create = VmCreate(name=manifest.name, labels=manifest.labels or {}, **values)
    node = create.node or default_node
    if node is None:
        problems.append(Problem(manifest.document, "spec.node",
                                "field required (no proxmox.default_node is configured)", manifest.name))
    create = create.model_copy(update={"node": node})
    changes = [Change("metadata.labels", None, create.labels)] if create.labels else []
    changes += [Change(f"spec.{key}", None, getattr(create, key))
                for key in ("node", "cpu_cores", "memory_mb", "disk_gb", "power_state")]
    guest_values = guest.create_columns(create)
    changes += [Change(f"spec.{key}", None, guest.shown_cloud_init(value) if key == "cloud_init" else value)
                for key, value in guest_values.items() if key in values]
    changes += [Change(f"spec.{key}", None, values[key]) for key in ("management", "reboot_policy", "snapshot_schedule")
                if key in spec.model_fields_set and values.get(key) is not None]
    snapshots = spec.snapshots or []
    rules = spec.firewall or []
    changes += [Change(f"spec.snapshots[{snap.name}]", None, snapshot_values(snap.name, snap.description))
                for snap in snapshots]
    changes += [Change(f"spec.firewall[{index}]", None, compact(rule_values(rule))) for index, rule in enumerate(rules)]
    return PlannedObject(manifest.name, "create", manifest.document, changes=changes, create_spec=create,
                         snapshots_new=list(snapshots), rules_new=list(enumerate(rules)))


def _check_template(session: Session, manifest: VmManifest, item: PlannedObject, problems: list[Problem]) -> None:
    """An unknown template (or a boot disk smaller than its) is the document's problem, found before writing."""
    if item.create_spec is None:
        return
    try:
        guest.check_template(session, item.create_spec)
    except Invalid as exc:
        problems.append(Problem(manifest.document, f"spec.{exc.field}" if exc.field else "spec",
                                exc.message.removeprefix(f"{exc.field}: "), manifest.name))


def _plan_update(vm: VirtualMachine, manifest: VmManifest, children: Children,
                 problems: list[Problem]) -> PlannedObject:
    item = PlannedObject(manifest.name, "unchanged", manifest.document, vm=vm)
    requested = manifest.spec.model_dump(exclude_unset=True, exclude={"snapshots", "firewall"})
    if manifest.labels is not None:
        requested["labels"] = manifest.labels
    if manifest.spec.snapshot_schedule is not None:  # with its defaults (prefix), as the row holds it
        requested["snapshot_schedule"] = manifest.spec.snapshot_schedule.model_dump()
    if "disk_gb" in requested:
        try:
            vms.check_disk_growth(vm, requested["disk_gb"])
        except Invalid as exc:
            problems.append(Problem(manifest.document, "spec.disk_gb",
                                    exc.message.removeprefix("disk_gb: "), manifest.name))
            requested.pop("disk_gb")
    try:
        requested.update(guest.requested_values(vm, requested))
    except Invalid as exc:
        problems.append(Problem(manifest.document, f"spec.{exc.field}" if exc.field else "spec",
                                exc.message.removeprefix(f"{exc.field}: "), manifest.name))
        requested = {key: value for key, value in requested.items() if key not in guest.GUEST_FIELDS}
    except Conflict as exc:
        raise Conflict(f"document {manifest.document} ({manifest.name}): {exc.message}") from exc
    for key, change in vms.field_changes(vm, requested).items():
        item.fields[key] = change["new"]
        shown = guest.redact_change(key, change)
        item.changes.append(Change("metadata.labels" if key == "labels" else f"spec.{key}",
                                   shown["old"], shown["new"]))
    if manifest.spec.snapshots is not None:
        _plan_snapshots(children.snapshots[vm.id], manifest, item)
    if manifest.spec.firewall is not None:
        _plan_rules(children.rules[vm.id], manifest.spec.firewall, item)
    if item.changes:
        item.action = "update"
    return item


def _plan_snapshots(rows: list[VmSnapshot], manifest: VmManifest, item: PlannedObject) -> None:
    rows = [row for row in rows if not row.scheduled]  # taken by the schedule: never declared, never pruned
    current = {row.name: row for row in rows if not row.deletion_requested}
    leaving = {row.name for row in rows if row.deletion_requested}
    wanted = {snap.name: snap for snap in manifest.spec.snapshots or ()}
    for name, snap in wanted.items():
        row = current.get(name)
        if row is None:
            if name in leaving:
                raise Conflict(f"document {manifest.document} ({manifest.name}): snapshot {name!r} is still being "
                               "deleted; apply again once it is gone")
            item.snapshots_new.append(snap)
            item.changes.append(Change(f"spec.snapshots[{name}]", None, snapshot_values(name, snap.description)))
        elif row.description != snap.description:
            item.snapshot_descriptions.append((row, snap.description))
            item.changes.append(Change(f"spec.snapshots[{name}].description", row.description, snap.description))
    for name, row in current.items():
        if name not in wanted:
            item.snapshots_gone.append(row)
            item.changes.append(Change(f"spec.snapshots[{name}]", snapshot_values(name, row.description), None))


def _plan_rules(rows: list[FirewallRule], wanted: list[RuleSpec], item: PlannedObject) -> None:
    for index in range(max(len(rows), len(wanted))):
        row = rows[index] if index < len(rows) else None
        rule = wanted[index] if index < len(wanted) else None
        if row is None and rule is not None:
            item.rules_new.append((index, rule))
            item.changes.append(Change(f"spec.firewall[{index}]", None, compact(rule_values(rule))))
        elif rule is None and row is not None:
            item.rules_gone.append(row)
            item.changes.append(Change(f"spec.firewall[{index}]", compact(rule_values(row)), None))
        elif row is not None and rule is not None:
            old, new = rule_values(row), rule_values(rule)
            if old != new:
                item.rules_rewritten.append((row, rule))
                item.changes += [Change(f"spec.firewall[{index}].{key}", old[key], new[key])
                                 for key in firewall.SPEC_FIELDS if old[key] != new[key]]
