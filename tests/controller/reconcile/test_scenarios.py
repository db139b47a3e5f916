"""Reconciler scenarios against fakepve, named for what they prove; they assert the resulting state."""

from __future__ import annotations

import asyncio

from controller.proxmox.marks import mark_of
from controller.reconcile.model import Policy


def test_creates_a_marked_vm_with_the_desired_size_and_power(harness):
    vm_id = harness.create_vm(name="web-1", cpu_cores=2, memory_mb=2048, disk_gb=20, power_state="running")
    row = harness.reconcile(vm_id)
    assert row.sync_status == "synced" and row.observed_generation == row.generation
    assert row.status == "running" and row.last_error is None
    fake_vm = harness.fake.vm(row.vmid)
    assert fake_vm.status == "running"
    assert int(fake_vm.config["cores"]) == 2 and int(fake_vm.config["memory"]) == 2048
    assert mark_of(fake_vm.config["description"]) == vm_id
    assert "pvem" in fake_vm.config["tags"]
    assert "firewall=1" in fake_vm.config["net0"]
    assert {"pve_create", "pve_start"} <= set(harness.audit_actions(vm_id))


def test_does_nothing_when_in_sync(harness):
    vm_id = harness.create_vm(power_state="running")
    harness.reconcile(vm_id)
    mark = harness.mark_requests()
    row = harness.reconcile(vm_id)
    assert row.sync_status == "synced"
    assert harness.writes_since(mark) == []


def test_updates_name_cores_and_memory(harness):
    vm_id = harness.create_vm()
    vmid = harness.reconcile(vm_id).vmid
    harness.update_vm(vm_id, name="web-renamed", cpu_cores=4, memory_mb=4096)
    row = harness.reconcile(vm_id)
    config = harness.fake.vm(vmid).config
    assert (config["name"], int(config["cores"]), int(config["memory"])) == ("web-renamed", 4, 4096)
    assert row.sync_status == "synced" and row.observed_generation == row.generation


def test_grows_the_disk_once(harness):
    vm_id = harness.create_vm(disk_gb=20)
    vmid = harness.reconcile(vm_id).vmid
    harness.update_vm(vm_id, disk_gb=30)
    mark = harness.mark_requests()
    row = harness.reconcile(vm_id)
    resizes = [path for method, path in harness.writes_since(mark) if path.endswith("/resize")]
    assert resizes == [f"/api2/json/nodes/pve1/qemu/{vmid}/resize"]
    assert row.sync_status == "synced"
    # fakepve does not model resize; pvem trusts the task's OK and does not resize again.
    mark = harness.mark_requests()
    harness.reconcile(vm_id)
    assert harness.writes_since(mark) == []


def test_corrects_drift_and_audits_it(harness):
    vm_id = harness.create_vm(power_state="running")
    vmid = harness.reconcile(vm_id).vmid
    harness.fake.vm(vmid).config["cores"] = 8  # changed behind pvem's back
    harness.reconciler.full_pass()
    assert harness.reconciler._queued == {vm_id}
    row = harness.reconcile(vm_id)
    # A running VM's cores change waits in Proxmox's pending config until a reboot.
    assert harness.fake.vm(vmid).pending == {"cores": "2"}
    assert row.reboot_required and row.sync_status == "synced"
    assert "drift_corrected" in harness.audit_actions(vm_id)


def test_reboots_to_apply_pending_changes_under_the_auto_policy(harness_factory):
    harness = harness_factory(policy=Policy(shutdown_timeout=5))
    vm_id = harness.create_vm(power_state="running", reboot_policy="auto")
    vmid = harness.reconcile(vm_id).vmid
    harness.update_vm(vm_id, cpu_cores=4)
    mark = harness.mark_requests()
    row = harness.reconcile(vm_id)
    assert ("POST", f"/api2/json/nodes/pve1/qemu/{vmid}/status/reboot") in harness.writes_since(mark)
    assert int(harness.fake.vm(vmid).config["cores"]) == 4 and not row.reboot_required


def test_power_actions_reach_proxmox(harness):
    vm_id = harness.create_vm(power_state="running")
    vmid = harness.reconcile(vm_id).vmid
    harness.action(vm_id, "pause")
    assert harness.reconcile(vm_id).status == "paused"
    harness.action(vm_id, "unpause")
    assert harness.reconcile(vm_id).status == "running"
    mark = harness.mark_requests()
    harness.action(vm_id, "restart")
    row = harness.reconcile(vm_id)
    assert ("POST", f"/api2/json/nodes/pve1/qemu/{vmid}/status/reboot") in harness.writes_since(mark)
    assert row.restarts_done == row.restart_requests == 1
    harness.action(vm_id, "stop")
    assert harness.reconcile(vm_id).status == "stopped"
    assert harness.fake.vm(vmid).status == "stopped"


def test_snapshots_are_created_rolled_back_and_deleted(harness):
    vm_id = harness.create_vm()
    vmid = harness.reconcile(vm_id).vmid
    snap_id = harness.add_snapshot(vm_id, "baseline", "before upgrade")
    harness.reconcile(vm_id)
    assert "baseline" in harness.fake.vm(vmid).snapshots
    from controller import snapshots

    with harness.store.write() as session:
        snapshots.request_rollback(session, harness.actor, vm_id, snap_id)
    mark = harness.mark_requests()
    harness.reconcile(vm_id)
    assert ("POST", f"/api2/json/nodes/pve1/qemu/{vmid}/snapshot/baseline/rollback") in harness.writes_since(mark)
    with harness.store.write() as session:
        snapshots.request_deletion(session, harness.actor, vm_id, snap_id)
    harness.reconcile(vm_id)
    assert "baseline" not in harness.fake.vm(vmid).snapshots
    with harness.store.read() as session:
        assert snapshots.list_snapshots(session, harness.actor, vm_id) == []


def test_firewall_rules_are_kept_in_order_and_enabled(harness):
    vm_id = harness.create_vm()
    harness.add_rule(vm_id, direction="inbound", action="accept", protocol="tcp", port=22, source="10.0.0.0/8")
    harness.add_rule(vm_id, direction="inbound", action="drop", protocol="TCP")
    row = harness.reconcile(vm_id)
    assert row.sync_status == "synced", row.last_error
    rules, _digest = harness.reconciler.client.firewall_rules("pve1", row.vmid)
    assert [(rule["action"], rule.get("dport")) for rule in rules] == [("ACCEPT", "22"), ("DROP", None)]
    assert harness.reconciler.client.firewall_options("pve1", row.vmid)["enable"] in (1, "1", True)


def test_leaves_what_it_does_not_own_alone(harness):
    harness.fake.add_vm(9001, "legacy-db", status="running")
    vm_id = harness.create_vm()
    vmid = harness.reconcile(vm_id).vmid
    client = harness.reconciler.client
    client.create_snapshot("pve1", vmid, "by-hand", "made by an operator")
    client.add_rule("pve1", vmid, {"type": "in", "action": "DROP", "comment": "hand-made", "enable": 1}, None)
    harness.add_rule(vm_id, direction="inbound", action="accept", protocol="tcp", port=443)
    mark = harness.mark_requests()
    harness.update_vm(vm_id, cpu_cores=3)
    harness.reconcile(vm_id)
    harness.delete_vm(vm_id)
    harness.reconcile(vm_id)
    touched = [path for _method, path in harness.writes_since(mark)]
    assert not any("/9001" in path for path in touched)
    assert harness.fake.vm(9001) is not None


def test_deletes_the_vm_and_then_the_row(harness):
    vm_id = harness.create_vm(power_state="running")
    vmid = harness.reconcile(vm_id).vmid
    harness.delete_vm(vm_id)
    assert harness.reconcile(vm_id) is None
    assert vmid not in {vm.vmid for vm in harness.reconciler.client.list_vms()}
    assert "vm_removed" in harness.audit_actions(vm_id)


def test_recreates_a_vanished_vm(harness):
    vm_id = harness.create_vm()
    vmid = harness.reconcile(vm_id).vmid
    harness.fake.vms.remove(harness.fake.vm(vmid))  # destroyed behind pvem's back
    row = harness.reconcile(vm_id)
    assert row.sync_status == "synced"
    assert mark_of(harness.fake.vm(vmid).config["description"]) == vm_id
    assert "vm_missing" in harness.audit_actions(vm_id)


def test_reports_a_vanished_vm_when_told_to(harness_factory):
    harness = harness_factory(policy=Policy(on_missing="report"))
    vm_id = harness.create_vm()
    vmid = harness.reconcile(vm_id).vmid
    harness.fake.vms.remove(harness.fake.vm(vmid))  # destroyed behind pvem's back
    row = harness.reconcile(vm_id)
    assert row.sync_status == "error" and "disappeared" in row.last_error


def test_finds_a_vm_migrated_out_of_band(harness):
    harness.fake.add_node("pve2")
    vm_id = harness.create_vm()
    vmid = harness.reconcile(vm_id).vmid
    asyncio.run(harness.fake.migrate(vmid, "pve2"))
    mark = harness.mark_requests()
    harness.reconcile(vm_id)
    writes = harness.writes_since(mark)
    # found on pve2 by its vmid (not recreated), and moved back to the desired node
    assert ("POST", f"/api2/json/nodes/pve2/qemu/{vmid}/migrate") in writes
    assert not any(method == "POST" and path.endswith("/qemu") for method, path in writes)


def test_picks_another_vmid_when_an_unmarked_vm_holds_it(harness):
    vm_id = harness.create_vm()
    with harness.store.read() as session:
        from controller.store.models import VirtualMachine

        reserved = session.get(VirtualMachine, vm_id).vmid
    harness.fake.add_vm(reserved, "squatter")
    row = harness.reconcile(vm_id)
    assert row.vmid != reserved and row.sync_status == "synced"
    assert harness.fake.vm(reserved).name == "squatter"
    assert "vmid_reassigned" in harness.audit_actions(vm_id)


def test_adopts_its_own_vm_after_a_crash_between_create_and_record(harness):
    vm_id = harness.create_vm()
    row = harness.row(vm_id)
    from controller.proxmox.marks import description_with_mark

    # The create reached Proxmox, then the controller died before recording anything.
    harness.reconciler.client.create_vm("pve1", row.vmid, name="web-1", cores=2, memory_mb=2048, disk_gb=20,
                                        storage="local-lvm", bridge="vmbr0",
                                        description=description_with_mark(vm_id), tags="pvem")
    mark = harness.mark_requests()
    row = harness.reconcile(vm_id)
    assert row.sync_status == "synced" and row.provisioned
    assert not any(path.endswith("/qemu") for _method, path in harness.writes_since(mark))
