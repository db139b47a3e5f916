"""Manifests applied, then reconciled against fakepve: what the manifest says is what Proxmox ends up with."""

from __future__ import annotations

from typing import Any

from controller.manifests.apply import ApplyOptions, ApplyResult, apply_manifests
from controller.manifests.loader import load_yaml
from controller.manifests.model import validate_documents
from controller.proxmox.marks import strip_mark
from controller.store.models import VirtualMachine

WEB = """
apiVersion: pvem/v1
kind: VirtualMachine
metadata: {name: web-1, labels: {tier: web}}
spec:
  node: pve1
  cpu_cores: 2
  memory_mb: 2048
  disk_gb: 20
  power_state: running
  snapshots:
    - {name: baseline, description: after provisioning}
  firewall:
    - {direction: inbound, action: accept, protocol: tcp, port: 22, source: 10.0.0.0/8}
    - {direction: inbound, action: drop, protocol: tcp}
"""


def apply(harness: Any, text: str, **options: Any) -> ApplyResult:
    manifests = validate_documents(load_yaml(text))
    with harness.store.write() as session:
        return apply_manifests(session, harness.actor, manifests, ApplyOptions(default_node="pve1", **options))


def vm_named(harness: Any, name: str) -> VirtualMachine:
    with harness.store.read() as session:
        return session.query(VirtualMachine).filter_by(name=name).one()


def rules_in_proxmox(harness: Any, vmid: int) -> list[tuple[str, str, str | None]]:
    rules, _digest = harness.reconciler.client.firewall_rules("pve1", vmid)
    return [(rule["type"], rule["action"], rule.get("dport")) for rule in rules]


def test_creates_everything_the_manifest_declares(harness):
    apply(harness, WEB, apply_set="web")
    vm = harness.reconcile(vm_named(harness, "web-1").id)
    assert vm.sync_status == "synced" and vm.status == "running"
    fake = harness.fake.vm(vm.vmid)
    assert int(fake.config["cores"]) == 2
    assert strip_mark(fake.snapshots["baseline"]["description"]) == "after provisioning"
    assert rules_in_proxmox(harness, vm.vmid) == [("in", "ACCEPT", "22"), ("in", "DROP", None)]


def test_does_nothing_when_the_manifest_is_already_applied(harness):
    apply(harness, WEB)
    vm = harness.reconcile(vm_named(harness, "web-1").id)
    result = apply(harness, WEB)
    assert result.summary()["unchanged"] == 1 and not result.changed_vm_ids
    mark = harness.mark_requests()
    again = harness.reconcile(vm.id)
    assert again.generation == vm.generation and harness.writes_since(mark) == []


def test_updates_snapshot_descriptions_and_rules_in_proxmox(harness):
    apply(harness, WEB)
    vm = harness.reconcile(vm_named(harness, "web-1").id)
    changed = (WEB.replace("after provisioning", "golden image")
               .replace("    - {direction: inbound, action: drop, protocol: tcp}\n", "")
               .replace("port: 22", "port: 2222"))
    result = apply(harness, changed)
    assert {change.field for change in result.objects[0].changes} == {
        "spec.snapshots[baseline].description", "spec.firewall[0].port", "spec.firewall[1]"}
    harness.reconcile(vm.id)
    fake = harness.fake.vm(vm.vmid)
    assert strip_mark(fake.snapshots["baseline"]["description"]) == "golden image"
    assert rules_in_proxmox(harness, vm.vmid) == [("in", "ACCEPT", "2222")]
    assert "pve_snapshot_update" in harness.audit_actions(vm.id)


def test_prune_destroys_only_what_the_apply_set_created(harness):
    two = WEB + "---\n" + WEB.replace("web-1", "web-2")
    apply(harness, two, apply_set="web")
    by_rest = harness.create_vm(name="by-hand")
    for name in ("web-1", "web-2"):
        harness.reconcile(vm_named(harness, name).id)
    harness.reconcile(by_rest)
    web2 = vm_named(harness, "web-2")
    result = apply(harness, WEB, apply_set="web", prune=True)
    assert [(item.name, item.action) for item in result.objects] == [("web-1", "unchanged"), ("web-2", "delete")]
    assert harness.reconcile(web2.id) is None
    assert harness.fake.vm(web2.vmid) is None
    assert harness.row(by_rest) is not None
