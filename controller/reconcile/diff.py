"""The diff: a pure function `(desired, observed, policy) -> actions`. No I/O, no clock, no database.

The executor runs the actions, observes again and asks again, until the plan is empty. Each plan is
therefore only what is right *now*: a migration is planned alone (everything after it addresses
another node), and firewall rule edits one at a time (each shifts the positions of the others).
"""

from __future__ import annotations

from controller.proxmox.marks import rule_comment, strip_mark
from controller.reconcile.guest_diff import guest_actions, guest_changes
from controller.reconcile.impact import pending_needs_reboot
from controller.reconcile.model import Action, DesiredRule, DesiredVm, ObservedRule, ObservedVm, Policy


def plan(desired: DesiredVm, observed: ObservedVm | None, policy: Policy) -> list[Action]:
    if desired.deleting:
        return _plan_delete(desired, observed)
    if observed is None:
        if not desired.provisioned:
            return [Action("create")]
        if policy.on_missing == "recreate":
            return [Action("create", {"recreate": True})]
        return [Action("report_missing")]
    if observed.mark != desired.id:
        if not desired.provisioned:
            return [Action("reassign_vmid", {"taken_by": observed.name})]
        return [Action("conflict", {"message": f"vmid {desired.vmid} is held by a VM pvem did not create "
                                               f"({observed.name or 'unnamed'}); pvem will not touch it"})]
    if observed.lock:
        return [Action("wait_for_lock", {"lock": observed.lock})]
    if desired.node != observed.node and desired.migrated_generation != desired.generation:
        return [Action("migrate", {"target": desired.node, "online": observed.status != "stopped"})]

    actions: list[Action] = []
    changes = {**config_changes(desired, observed), **guest_changes(desired, observed, policy)}
    if changes:
        actions.append(Action("update_config", {"changes": changes}))
    if _needs_resize(desired, observed):
        actions.append(Action("resize", {"disk_key": observed.disk_key, "size_gb": desired.disk_gb}))
    actions += guest_actions(desired, observed, changes)
    actions += _plan_snapshots(desired, observed)
    rule_step = next_rule_step(desired.rules, observed.rules)
    if rule_step is not None:
        actions.append(rule_step)
    elif desired.rules and desired.enable_firewall and not observed.firewall_enabled:
        actions.append(Action("firewall_enable"))
    actions += _plan_power(desired, observed, policy)
    return actions


def config_changes(desired: DesiredVm, observed: ObservedVm) -> dict[str, object]:
    """Proxmox config keys whose value differs from the spec (name, cores, memory in MB)."""
    changes: dict[str, object] = {}
    if observed.name != desired.name:
        changes["name"] = desired.name
    if observed.cores != desired.cores:
        changes["cores"] = desired.cores
    if observed.memory_mb != desired.memory_mb:
        changes["memory"] = desired.memory_mb
    return changes


def _needs_resize(desired: DesiredVm, observed: ObservedVm) -> bool:
    if observed.disk_gb is None or observed.disk_key is None or observed.disk_gb >= desired.disk_gb:
        return False
    # Proxmox confirmed a resize to this size already (its listing can lag, or not model resize at all).
    return desired.applied_disk_gb is None or desired.applied_disk_gb < desired.disk_gb


def _plan_delete(desired: DesiredVm, observed: ObservedVm | None) -> list[Action]:
    if observed is None or observed.mark != desired.id:
        # Gone already, or the vmid now belongs to someone else's VM: either way ours is gone.
        return [Action("forget_vm")]
    if observed.lock:
        return [Action("wait_for_lock", {"lock": observed.lock})]
    actions = []
    if observed.status != "stopped":
        actions.append(Action("stop"))
    actions.append(Action("destroy"))
    return actions


def _plan_snapshots(desired: DesiredVm, observed: ObservedVm) -> list[Action]:
    present = {snapshot.name: snapshot for snapshot in observed.snapshots}
    wanted_ids = {snapshot.id for snapshot in desired.snapshots}
    rollbacks: list[Action] = []
    others: list[Action] = []
    for snapshot in desired.snapshots:
        seen = present.get(snapshot.name)
        ours = seen is not None and seen.mark == snapshot.id
        if snapshot.deleting:
            if ours:
                others.append(Action("snapshot_delete", {"snapshot_id": snapshot.id, "name": snapshot.name}))
            else:
                others.append(Action("snapshot_forget", {"snapshot_id": snapshot.id}))
        elif seen is None:
            others.append(Action("snapshot_create", {"snapshot_id": snapshot.id, "name": snapshot.name,
                                                     "description": snapshot.description}))
        elif not ours:
            others.append(Action("snapshot_conflict", {
                "snapshot_id": snapshot.id,
                "message": f"a snapshot named {snapshot.name!r} exists in Proxmox and pvem did not create it"}))
        elif snapshot.rollback_pending:
            rollbacks.append(Action("snapshot_rollback", {"snapshot_id": snapshot.id, "name": snapshot.name}))
        elif strip_mark(seen.description) != (snapshot.description or "").strip():
            others.append(Action("snapshot_describe", {"snapshot_id": snapshot.id, "name": snapshot.name,
                                                       "description": snapshot.description}))
    for seen in observed.snapshots:
        if seen.mark is not None and seen.mark not in wanted_ids:
            others.append(Action("snapshot_delete", {"snapshot_id": None, "name": seen.name}))
    return rollbacks + others


def _plan_power(desired: DesiredVm, observed: ObservedVm, policy: Policy) -> list[Action]:
    status, wanted = observed.status, desired.power_state
    if wanted == "running":
        if status == "stopped":
            return [Action("start", {"completes_restart": desired.restart_pending})]
        if status == "paused":
            return [Action("resume")]
        if desired.restart_pending:
            return [Action("reboot", {"reason": "restart requested"})]
        waiting = pending_needs_reboot(observed.pending_keys, observed.hotplug)
        if waiting and (desired.reboot_policy or policy.reboot_policy) == "auto":
            return [Action("reboot", {"reason": "apply pending changes: " + ", ".join(waiting), "automatic": True})]
        return []
    actions: list[Action] = []
    if desired.restart_pending:
        actions.append(Action("skip_restart"))  # desired state is no longer running: nothing to restart
    if wanted == "stopped":
        if status == "running":
            actions.append(Action("shutdown", {"timeout": policy.shutdown_timeout}))
        elif status == "paused":
            actions.append(Action("stop"))  # a paused guest cannot react to ACPI
    elif wanted == "paused":
        if status == "stopped":
            actions.append(Action("start", {"completes_restart": False}))
        elif status == "running":
            actions.append(Action("suspend"))
    return actions


def pve_rule(rule: DesiredRule) -> dict[str, object]:
    """A desired rule as Proxmox's firewall rule fields."""
    return {
        "type": "in" if rule.direction == "inbound" else "out",
        "action": rule.action.upper(),
        "proto": rule.protocol.lower() if rule.protocol else None,
        "dport": str(rule.port) if rule.port is not None else None,
        "source": rule.source,
        "dest": rule.destination,
        "enable": rule.enabled,
        "comment": rule_comment(rule.id, rule.comment),
    }


def _observed_fields(rule: ObservedRule) -> dict[str, object]:
    return {"type": rule.type, "action": rule.action.upper(), "proto": rule.proto.lower() if rule.proto else None,
            "dport": rule.dport, "source": rule.source, "dest": rule.dest, "enable": rule.enable,
            "comment": rule.comment}


def next_rule_step(desired: tuple[DesiredRule, ...], observed: tuple[ObservedRule, ...]) -> Action | None:
    """The next single edit that brings pvem's rules to positions 0..n-1 in the desired order.

    Rules without pvem's mark are never touched; they end up below pvem's block.
    """
    wanted = {rule.id for rule in desired}
    seen_marks: set[str] = set()
    for present in sorted(observed, key=lambda item: item.pos):
        if present.mark is None:
            continue
        if present.mark not in wanted or present.mark in seen_marks:
            return Action("rule_delete", {"pos": present.pos})
        seen_marks.add(present.mark)
    by_mark = {rule.mark: rule for rule in observed if rule.mark is not None}
    for index, rule in enumerate(sorted(desired, key=lambda item: item.position)):
        fields = pve_rule(rule)
        current = by_mark.get(rule.id)
        if current is None:
            return Action("rule_add", {"pos": index, "rule": fields, "rule_id": rule.id})
        if current.pos != index:
            return Action("rule_move", {"pos": current.pos, "moveto": index, "rule_id": rule.id})
        if _observed_fields(current) != fields:
            return Action("rule_update", {"pos": index, "rule": fields, "rule_id": rule.id})
    return None


def _rule_text(fields: dict[str, object]) -> str:
    parts = [str(fields.get("type")), str(fields.get("action")), str(fields.get("proto") or "any"),
             str(fields.get("dport") or "any")]
    for key in ("source", "dest"):
        if fields.get(key):
            parts.append(f"{key}={fields[key]}")
    if not fields.get("enable"):
        parts.append("disabled")
    return " ".join(parts)


def drift(desired: DesiredVm, observed: ObservedVm) -> list[dict[str, object]]:
    """Observe mode: where Proxmox differs from the spec, as {field, desired, observed} with spec field names.

    Scheduled snapshots do not count (they are taken on a schedule, not declared), nor do objects
    pvem does not manage (unmarked snapshots and rules)."""
    found: list[dict[str, object]] = []

    def differs(field: str, wanted: object, seen: object) -> None:
        if seen is not None and wanted != seen:
            found.append({"field": field, "desired": wanted, "observed": seen})

    differs("name", desired.name, observed.name)
    differs("node", desired.node, observed.node)
    differs("cpu_cores", desired.cores, observed.cores)
    differs("memory_mb", desired.memory_mb, observed.memory_mb)
    differs("disk_gb", desired.disk_gb, observed.disk_gb)
    differs("power_state", desired.power_state, observed.status)
    wanted_snaps = sorted(s.name for s in desired.snapshots if not s.deleting and not s.scheduled)
    scheduled = {s.name for s in desired.snapshots if s.scheduled}
    seen_snaps = sorted(s.name for s in observed.snapshots if s.mark is not None and s.name not in scheduled)
    differs("snapshots", wanted_snaps, seen_snaps)
    wanted_rules = [_rule_text(pve_rule(rule)) for rule in sorted(desired.rules, key=lambda r: r.position)]
    seen_rules = [_rule_text(_observed_fields(rule)) for rule in sorted(observed.rules, key=lambda r: r.pos)
                  if rule.mark is not None]
    if next_rule_step(desired.rules, observed.rules) is not None:
        found.append({"field": "firewall", "desired": wanted_rules, "observed": seen_rules})
    return found
