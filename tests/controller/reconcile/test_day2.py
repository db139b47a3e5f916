"""Day-2 scenarios against fakepve: importing a hand-made VM, observe-only management, the reboot policy
with its fleet-wide limit, and scheduled snapshots with retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from controller import schedules
from controller.actor import Actor
from controller.errors import Conflict, Forbidden, Invalid, NotFound
from controller.importer import Importer
from controller.manifests.apply import ApplyOptions, apply_manifests
from controller.manifests.export import export_documents
from controller.manifests.loader import RawDocument
from controller.manifests.model import validate_documents
from controller.proxmox.marks import has_tag, mark_of, rule_mark, snapshot_mark, strip_mark
from controller.store.models import AuditLog, FirewallRule, VmSnapshot

LEGACY = {"cores": 2, "memory": "4096", "tags": "legacy", "description": "Hand-made database\nowner: ops",
          "scsi0": "local-lvm:vm-9001-disk-0,size=32G", "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1"}


def hand_made(harness: Any, vmid: int = 9001, status: str = "running", **config: Any) -> Any:
    harness.fake.add_vm(vmid, "legacy-db", node="pve1", status=status, config={**LEGACY, **config})
    return harness.fake.vm(vmid)


def importer(harness: Any) -> Importer:
    return Importer(harness.reconciler.client, harness.store)


def wait_task(harness: Any, upid: str | None) -> None:
    if upid:
        harness.reconciler.client.wait_task(upid, timeout=30)


def audit_of(harness: Any, action: str) -> list[AuditLog]:
    with harness.store.read() as session:
        return list(session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.seq)))


# --- import ---------------------------------------------------------------------------------------------


def test_import_takes_over_a_hand_made_vm_and_changes_nothing_in_the_guest(harness):
    vm = hand_made(harness)
    client = harness.reconciler.client
    wait_task(harness, client.create_snapshot("pve1", 9001, "before-upgrade", "taken by hand"))
    client.add_rule("pve1", 9001, {"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "5432",
                                   "source": "10.0.0.0/8", "enable": 1, "comment": "postgres"}, None)
    started_at = vm.started_at

    vm_id = importer(harness).import_vm(harness.actor, 9001)
    row = harness.row(vm_id)
    assert (row.name, row.node, row.cpu_cores, row.memory_mb, row.disk_gb, row.power_state) == (
        "legacy-db", "pve1", 2, 4096, 32, "running")
    assert row.provisioned and row.management == "enforce"
    # only pvem's marks were added: the description keeps its text, the tags keep theirs
    config = harness.fake.vm(9001).config
    assert mark_of(config["description"]) == vm_id
    assert strip_mark(config["description"]) == "Hand-made database\nowner: ops"
    assert has_tag(config["tags"], "legacy") and has_tag(config["tags"], "pvem")
    assert (int(config["cores"]), str(config["memory"]), config["scsi0"]) == (2, "4096", LEGACY["scsi0"])
    assert harness.fake.vm(9001).status == "running" and harness.fake.vm(9001).started_at == started_at
    with harness.store.read() as session:
        [snapshot] = session.scalars(select(VmSnapshot).where(VmSnapshot.vm_id == vm_id))
        [rule] = session.scalars(select(FirewallRule).where(FirewallRule.vm_id == vm_id))
        assert (snapshot.name, snapshot.description) == ("before-upgrade", "taken by hand")
        assert (rule.direction, rule.action, rule.protocol, rule.port, rule.source, rule.comment) == (
            "inbound", "accept", "tcp", 5432, "10.0.0.0/8", "postgres")
        snapshot_id, rule_id = snapshot.id, rule.id
    assert snapshot_mark(client.snapshots("pve1", 9001)[0]["description"]) == snapshot_id
    assert rule_mark(client.firewall_rules("pve1", 9001)[0][0]["comment"]) == rule_id
    [record] = audit_of(harness, "import_vm")
    assert record.resource_id == vm_id and record.details["vmid"] == 9001

    # the first reconcile finds nothing to do
    mark = harness.mark_requests()
    row = harness.reconcile(vm_id)
    assert row.sync_status == "synced", row.last_error
    assert harness.writes_since(mark) == []

    # exporting it and applying the export changes nothing either
    with harness.store.write() as session:
        documents = export_documents(session, harness.actor.user_id)
        manifests = validate_documents([RawDocument(index, doc, 1) for index, doc in enumerate(documents)])
        result = apply_manifests(session, harness.actor, manifests, ApplyOptions())
    assert result.summary()["unchanged"] == 1 and result.changed_vm_ids == []


def test_import_refuses_unknown_vmids_templates_repeats_and_non_admins(harness):
    hand_made(harness)
    harness.fake.add_vm(9100, "golden", node="pve1", template=True)
    imports = importer(harness)
    with pytest.raises(NotFound, match="no VM 4242"):
        imports.import_vm(harness.actor, 4242)
    with pytest.raises(Invalid, match="template"):
        imports.import_vm(harness.actor, 9100)
    with pytest.raises(Forbidden):
        imports.import_vm(Actor(user_id=harness.actor.user_id, role="user"), 9001)
    vm_id = imports.import_vm(harness.actor, 9001)
    with pytest.raises(Conflict, match="already managed"):
        imports.import_vm(harness.actor, 9001)
    listed = {vm["vmid"]: vm for vm in imports.cluster_vms(harness.actor)}
    assert listed[9001]["managed"] is True and listed[9001]["vm_id"] == vm_id
    assert listed[9100]["template"] is True and listed[9100]["managed"] is False


# --- observe ----------------------------------------------------------------------------------------------


def test_observe_reports_drift_once_never_writes_and_enforce_corrects_it(harness):
    hand_made(harness, status="stopped")
    vm_id = importer(harness).import_vm(harness.actor, 9001, management="observe")
    harness.reconcile(vm_id)
    harness.fake.vm(9001).config["cores"] = 6  # changed behind pvem's back
    harness.update_vm(vm_id, memory_mb=8192)  # and a spec change pvem must not apply

    mark = harness.mark_requests()
    row = harness.reconcile(vm_id)
    assert harness.writes_since(mark) == []
    assert sorted(row.drift, key=lambda item: item["field"]) == [
        {"field": "cpu_cores", "desired": 2, "observed": 6},
        {"field": "memory_mb", "desired": 8192, "observed": 4096}]
    harness.reconciler.full_pass()
    harness.reconcile(vm_id)
    assert len(audit_of(harness, "drift_detected")) == 1  # once per new drift, not once per look

    harness.update_vm(vm_id, management="enforce")
    row = harness.reconcile(vm_id)
    assert row.sync_status == "synced" and row.drift == []
    config = harness.fake.vm(9001).config
    assert (int(config["cores"]), int(config["memory"])) == (2, 8192)


# --- reboot policy ----------------------------------------------------------------------------------------


def test_reboot_policy_never_waits_for_a_restart_action(harness):
    vm_id = harness.create_vm(power_state="running")
    vmid = harness.reconcile(vm_id).vmid
    harness.update_vm(vm_id, cpu_cores=4)
    mark = harness.mark_requests()
    row = harness.reconcile(vm_id)
    assert row.reboot_required and row.sync_status == "synced"
    assert not any(path.endswith("/status/reboot") for _method, path in harness.writes_since(mark))

    harness.action(vm_id, "restart")
    row = harness.reconcile(vm_id)
    assert not row.reboot_required and int(harness.fake.vm(vmid).config["cores"]) == 4


def test_automatic_reboots_wait_for_a_free_slot_but_user_restarts_do_not(harness):
    first = harness.create_vm(name="web-1", power_state="running", reboot_policy="auto")
    second = harness.create_vm(name="web-2", power_state="running", reboot_policy="auto")
    for vm_id in (first, second):
        harness.reconcile(vm_id)
        harness.update_vm(vm_id, cpu_cores=3)
    slots = harness.reconciler.worker.reboot_slots
    assert slots.acquire(blocking=False)  # another VM's automatic reboot is in flight
    try:
        mark = harness.mark_requests()
        row = harness.reconcile(first)
        assert "waiting for a reboot slot" in (row.last_error or "")
        assert not any(path.endswith("/status/reboot") for _method, path in harness.writes_since(mark))
        assert row.sync_status == "pending"

        harness.update_vm(second, reboot_policy="never")
        harness.reconcile(second)
        harness.action(second, "restart")  # asked for by a user: not held back by the limit
        row = harness.reconcile(second)
        assert not row.reboot_required and int(harness.fake.vm(row.vmid).config["cores"]) == 3
    finally:
        slots.release()
    row = harness.reconcile(first)
    assert row.sync_status == "synced" and not row.reboot_required
    assert int(harness.fake.vm(row.vmid).config["cores"]) == 3


# --- scheduled snapshots ----------------------------------------------------------------------------------


def test_scheduled_snapshots_follow_the_schedule_keep_the_newest_and_spare_user_snapshots(harness):
    vm_id = harness.create_vm(snapshot_schedule={"every": "1h", "keep": 2})
    harness.add_snapshot(vm_id, "mine")
    vmid = harness.reconcile(vm_id).vmid
    start = datetime(2026, 12, 1, 6, 0, 0, tzinfo=UTC)

    def run(at: datetime) -> list[str]:
        with harness.store.write() as session:
            changed = schedules.run_due(session, at)
        harness.reconcile(vm_id)
        return changed

    assert run(start) == [vm_id]
    assert run(start + timedelta(minutes=30)) == []  # not due: computed from the last snapshot's time
    run(start + timedelta(hours=1))
    run(start + timedelta(hours=2, seconds=5))
    names = sorted(snap["name"] for snap in harness.reconciler.client.snapshots("pve1", vmid))
    assert names == ["auto-20261201-070000", "auto-20261201-080005", "mine"]
    with harness.store.read() as session:
        rows = {row.name: row for row in session.scalars(select(VmSnapshot).where(VmSnapshot.vm_id == vm_id))}
    assert sorted(rows) == names and rows["auto-20261201-080005"].scheduled and not rows["mine"].scheduled
    actions = [(record.action, record.details.get("snapshot_name")) for record in audit_of(harness, "delete_snapshot")]
    assert actions == [("delete_snapshot", "auto-20261201-060000")]
    row = harness.row(vm_id)
    assert row.sync_status == "synced" and row.drift == []
