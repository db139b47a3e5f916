"""Firewall rule desired state: per-VM ordered rules (`position`, 0-based), create/update/delete.

Deleting a rule removes its row at once: the reconciler finds the Proxmox rule by pvem's mark (the
rule's UUID in its comment) and removes marked rules that no longer have a row.

Concurrency: every rule write locks its VM's row first (`get_live_vm` takes it FOR UPDATE), so two
writers never renumber one VM's rules at once, and (vm_id, position) is unique in the database.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller import audit, pages
from controller.actor import Actor
from controller.errors import Invalid, NotFound
from controller.firewall_specs import RuleCreate, RuleUpdate, rule_problem
from controller.store.models import FirewallRule, VirtualMachine, utcnow
from controller.vms import get_live_vm, get_vm, mark_changed

RESOURCE = "firewall_rule"
SPEC_FIELDS = ("direction", "action", "protocol", "port", "source", "destination", "enabled", "comment")


def _rules_of(session: Session, vm_id: str) -> list[FirewallRule]:
    query = select(FirewallRule).where(FirewallRule.vm_id == vm_id).order_by(
        FirewallRule.position, FirewallRule.created_at)
    return list(session.scalars(query))


def _renumber(session: Session, rules: list[FirewallRule]) -> None:
    """Positions 0..n-1 in list order, in two flushes (first out of the way, below zero, then into
    place) so the unique (vm_id, position) constraint never sees two rules on one position."""
    moving = [(index, rule) for index, rule in enumerate(rules) if rule.id is None or rule.position != index]
    if not moving:
        return
    for index, rule in moving:
        rule.position = -1 - index
    session.flush()
    for index, rule in moving:
        rule.position = index
    session.flush()


def list_rules(session: Session, actor: Actor, vm_id: str) -> list[FirewallRule]:
    return _rules_of(session, get_vm(session, actor, vm_id).id)


def list_rules_page(session: Session, actor: Actor, vm_id: str,
                    page: pages.PageRequest) -> tuple[list[FirewallRule], str | None]:
    """One keyset page of list_rules (same order, position then age) and the next cursor."""
    vm = get_vm(session, actor, vm_id)
    rows, token = pages.fetch(session, select(FirewallRule).where(FirewallRule.vm_id == vm.id),
                              (FirewallRule.position, FirewallRule.created_at, FirewallRule.id), page, "rules")
    return [row[0] for row in rows], token


def get_rule(session: Session, actor: Actor, rule_id: str,
             for_update: bool = False) -> tuple[FirewallRule, VirtualMachine]:
    """The rule and its VM; `for_update` locks the VM's row first, then re-reads the rule under it."""
    rule = session.get(FirewallRule, rule_id)
    if rule is None:
        raise NotFound("firewall rule not found")
    try:
        vm = get_vm(session, actor, rule.vm_id, for_update=for_update)
    except NotFound:
        raise NotFound("firewall rule not found") from None
    if for_update:
        rule = session.get(FirewallRule, rule_id, populate_existing=True)
        if rule is None:  # deleted while we waited for the VM's lock
            raise NotFound("firewall rule not found")
    return rule, vm


def create_rule(session: Session, actor: Actor, vm_id: str, spec: RuleCreate) -> FirewallRule:
    vm = get_live_vm(session, actor, vm_id)
    rules = _rules_of(session, vm.id)
    now = utcnow()
    values = spec.model_dump(exclude={"position"})
    rule = FirewallRule(vm_id=vm.id, created_at=now, updated_at=now, sync_status="pending", position=0,
                        **values)
    position = len(rules) if spec.position is None else min(spec.position, len(rules))
    rules.insert(position, rule)
    session.add(rule)
    _renumber(session, rules)
    mark_changed(vm)
    session.flush()
    audit.record(session, actor, "create_firewall_rule", RESOURCE, rule.id,
                 {"vm_id": vm.id, "vm_name": vm.name, "rule": {**values, "position": rule.position}},
                 owner_id=vm.owner_id)
    return rule


def update_rule(session: Session, actor: Actor, rule_id: str, update: RuleUpdate) -> FirewallRule:
    rule, vm = get_rule(session, actor, rule_id, for_update=True)
    get_live_vm(session, actor, vm.id)
    requested = update.model_dump(exclude_unset=True)
    check_merged(rule, requested)
    changes = {key: {"old": getattr(rule, key), "new": value}
               for key, value in requested.items() if getattr(rule, key) != value}
    if not changes:
        return rule
    new_position = changes.pop("position", {}).get("new")
    for key, change in changes.items():
        setattr(rule, key, change["new"])
    if new_position is not None:
        rules = [other for other in _rules_of(session, vm.id) if other.id != rule.id]
        new_position = min(new_position, len(rules))
        changes["position"] = {"old": rule.position, "new": new_position}
        rules.insert(new_position, rule)
        _renumber(session, rules)
    rule.updated_at = utcnow()
    rule.sync_status = "pending"
    mark_changed(vm)
    audit.record(session, actor, "update_firewall_rule", RESOURCE, rule.id,
                 {"vm_id": vm.id, "vm_name": vm.name, "changes": changes}, owner_id=vm.owner_id)
    return rule


def check_merged(rule: FirewallRule, requested: dict[str, object]) -> None:
    """The stored rule with the update applied must still be one Proxmox can apply (400 naming a field
    the update sent)."""
    merged = {key: requested.get(key, getattr(rule, key)) for key in ("protocol", "port", "source", "destination")}
    problem = rule_problem(merged["protocol"], merged["port"], merged["source"], merged["destination"])  # type: ignore[arg-type]
    if problem is None:
        return
    field, message = problem
    if field not in requested:  # name what the update changed: it is what made the rule invalid
        pair = ("protocol", "port") if field == "port" else ("source", "destination")
        field = next((name for name in pair if name in requested), field)
    raise Invalid(message, field=field)


def delete_rule(session: Session, actor: Actor, rule_id: str) -> str:
    """Removes the rule; returns its VM's id."""
    rule, vm = get_rule(session, actor, rule_id, for_update=True)
    get_live_vm(session, actor, vm.id)
    snapshot = {key: getattr(rule, key) for key in SPEC_FIELDS}
    session.delete(rule)
    session.flush()
    _renumber(session, _rules_of(session, vm.id))
    mark_changed(vm)
    audit.record(session, actor, "delete_firewall_rule", RESOURCE, rule.id,
                 {"vm_id": vm.id, "vm_name": vm.name, "rule": snapshot}, owner_id=vm.owner_id)
    return vm.id
