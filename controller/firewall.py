"""Firewall rule desired state: per-VM ordered rules (`position`, 0-based), create/update/delete.

Deleting a rule removes its row at once: the reconciler finds the Proxmox rule by pvem's mark (the
rule's UUID in its comment) and removes marked rules that no longer have a row.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller import audit, pages
from controller.actor import Actor
from controller.errors import NotFound
from controller.specs import RuleCreate, RuleUpdate
from controller.store.models import FirewallRule, VirtualMachine, utcnow
from controller.vms import get_live_vm, get_vm, mark_changed

RESOURCE = "firewall_rule"
SPEC_FIELDS = ("direction", "action", "protocol", "port", "source", "destination", "enabled", "comment")


def _rules_of(session: Session, vm_id: str) -> list[FirewallRule]:
    query = select(FirewallRule).where(FirewallRule.vm_id == vm_id).order_by(
        FirewallRule.position, FirewallRule.created_at)
    return list(session.scalars(query))


def _renumber(rules: list[FirewallRule]) -> None:
    for index, rule in enumerate(rules):
        if rule.position != index:
            rule.position = index


def list_rules(session: Session, actor: Actor, vm_id: str) -> list[FirewallRule]:
    return _rules_of(session, get_vm(session, actor, vm_id).id)


def list_rules_page(session: Session, actor: Actor, vm_id: str,
                    page: pages.PageRequest) -> tuple[list[FirewallRule], str | None]:
    """One keyset page of list_rules (same order, position then age) and the next cursor."""
    vm = get_vm(session, actor, vm_id)
    rows, token = pages.fetch(session, select(FirewallRule).where(FirewallRule.vm_id == vm.id),
                              (FirewallRule.position, FirewallRule.created_at, FirewallRule.id), page, "rules")
    return [row[0] for row in rows], token


def get_rule(session: Session, actor: Actor, rule_id: str) -> tuple[FirewallRule, VirtualMachine]:
    rule = session.get(FirewallRule, rule_id)
    if rule is None:
        raise NotFound("firewall rule not found")
    try:
        vm = get_vm(session, actor, rule.vm_id)
    except NotFound:
        raise NotFound("firewall rule not found") from None
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
    _renumber(rules)
    mark_changed(vm)
    session.flush()
    audit.record(session, actor, "create_firewall_rule", RESOURCE, rule.id,
                 {"vm_id": vm.id, "vm_name": vm.name, "rule": {**values, "position": rule.position}},
                 owner_id=vm.owner_id)
    return rule


def update_rule(session: Session, actor: Actor, rule_id: str, update: RuleUpdate) -> FirewallRule:
    rule, vm = get_rule(session, actor, rule_id)
    get_live_vm(session, actor, vm.id)
    requested = update.model_dump(exclude_unset=True)
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
        _renumber(rules)
    rule.updated_at = utcnow()
    rule.sync_status = "pending"
    mark_changed(vm)
    audit.record(session, actor, "update_firewall_rule", RESOURCE, rule.id,
                 {"vm_id": vm.id, "vm_name": vm.name, "changes": changes}, owner_id=vm.owner_id)
    return rule


def delete_rule(session: Session, actor: Actor, rule_id: str) -> str:
    """Removes the rule; returns its VM's id."""
    rule, vm = get_rule(session, actor, rule_id)
    get_live_vm(session, actor, vm.id)
    snapshot = {key: getattr(rule, key) for key in SPEC_FIELDS}
    session.delete(rule)
    session.flush()
    _renumber(_rules_of(session, vm.id))
    mark_changed(vm)
    audit.record(session, actor, "delete_firewall_rule", RESOURCE, rule.id,
                 {"vm_id": vm.id, "vm_name": vm.name, "rule": snapshot}, owner_id=vm.owner_id)
    return vm.id
