"""Export: the caller's VMs as `pvem/v1` manifest documents that apply back as a no-op.

Every managed field is written out (snapshots and firewall lists always, even empty), so applying an
export reproduces the desired state exactly; VMs being deleted are left out.
"""

from __future__ import annotations

from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.guest import export_fields
from controller.manifests.model import API_VERSION
from controller.manifests.plan import KIND, Children, compact, rule_values, snapshot_values
from controller.store.models import FirewallRule, VirtualMachine, VmSnapshot
from controller.vms import matches_labels


def export_documents(session: Session, owner_id: str, apply_set: str | None = None,
                     labels: dict[str, str] | None = None, name: str | None = None) -> list[dict[str, Any]]:
    query = select(VirtualMachine).where(VirtualMachine.owner_id == owner_id,
                                         VirtualMachine.deletion_requested.is_(False)).order_by(VirtualMachine.name)
    if apply_set is not None:
        query = query.where(VirtualMachine.apply_set == apply_set)
    if name is not None:
        query = query.where(VirtualMachine.name == name)
    found = [vm for vm in session.scalars(query) if matches_labels(vm, labels)]
    children = Children.load(session, [vm.id for vm in found])
    return [_document(vm, [snap for snap in children.snapshots[vm.id]
                           if not snap.deletion_requested and not snap.scheduled],
                      children.rules[vm.id]) for vm in found]


def _document(vm: VirtualMachine, snapshots: list[VmSnapshot], rules: list[FirewallRule]) -> dict[str, Any]:
    day2: dict[str, Any] = {"management": vm.management or "enforce", "reboot_policy": vm.reboot_policy or "never"}
    if vm.snapshot_schedule:
        day2["snapshot_schedule"] = dict(vm.snapshot_schedule)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": vm.name, "labels": dict(vm.labels or {})},
        "spec": {
            "node": vm.node, "cpu_cores": vm.cpu_cores, "memory_mb": vm.memory_mb, "disk_gb": vm.disk_gb,
            "power_state": vm.power_state, **export_fields(vm), **day2,
            "snapshots": [snapshot_values(snapshot.name, snapshot.description) for snapshot in snapshots],
            "firewall": [compact(rule_values(rule)) for rule in rules],
        },
    }


class _Dumper(yaml.SafeDumper):
    """SafeDumper, except that strings holding a Unicode line break (NEL, LS, PS) are double-quoted, where they
    are escaped: PyYAML writes them raw otherwise, and a raw NEL reads back as a folded line break (a space)."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if any(char in value for char in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def to_yaml(documents: list[dict[str, Any]]) -> str:
    """Multi-document YAML; PyYAML quotes strings that would read back as another type ("on", "1.0")."""
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
                         explicit_start=True, width=120)
