"""An in-sync VM costs reads, never writes: for each way pvem comes to hold a VM (its own create with each
guest field at a default or not, a clone, an import), a full reconcile and a deep resync both find nothing
to do. A VM whose config lags its spec (one pvem created before the guest fields existed: no `agent` key,
though its row says agent on) is corrected once, with the drift audit naming the keys, and left alone after."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from controller.importer import Importer
from controller.reconcile import state
from controller.reconcile.act import Context
from controller.reconcile.model import Action
from controller.reconcile.resync import ResyncItem, unchanged
from controller.store.models import AuditLog
from tests.controller.reconcile.test_day2 import hand_made
from tests.controller.reconcile.test_guest_scenarios import UBUNTU, add_templates


def resync_item(harness: Any, vm_id: str) -> ResyncItem:
    """The item the full pass queues for a due resync (state.load_many), as loop._queue_resyncs builds it."""
    with harness.store.read() as session:
        [(desired, row)] = state.load_many(session, [vm_id])
        return ResyncItem(desired=desired, status=row.status, observed_node=row.observed_node,
                          reboot_required=row.reboot_required, observed=dict(row.observed or {}))


def assert_left_alone(harness: Any, vm_id: str) -> None:
    harness.reconciler.worker.run(vm_id)  # a first full read records the full observation (guest summary)
    harness.reconciler.view.refresh()  # the pass's listing, which a resync takes the power state from
    mark, audited = harness.mark_requests(), harness.audit_actions(vm_id)
    assert unchanged(harness.reconciler.worker, resync_item(harness, vm_id))
    row = harness.reconcile(vm_id)
    assert row.sync_status == "synced", row.last_error
    assert harness.writes_since(mark) == []
    assert harness.audit_actions(vm_id) == audited  # no drift corrected, no write intended


@pytest.mark.parametrize("fields", [
    pytest.param({}, id="every guest field at its default"),
    pytest.param({"power_state": "stopped"}, id="stopped"),
    pytest.param({"agent": False}, id="agent off"),
    pytest.param({"start_on_boot": True}, id="start on boot"),
    pytest.param({"tags": ["Web", "db"]}, id="tags"),
    pytest.param({"description": "owned by ops"}, id="a description"),
    pytest.param({"networks": [{"bridge": "vmbr0", "vlan": 30}]}, id="networks"),
    pytest.param({"disks": [{"size_gb": 5}]}, id="an extra disk"),
])
def test_a_vm_pvem_created_is_left_alone_once_in_sync(harness, fields):
    vm_id = harness.create_vm(**{"power_state": "running", **fields})
    assert harness.reconcile(vm_id).sync_status == "synced"
    assert_left_alone(harness, vm_id)


def test_a_cloned_vm_with_cloud_init_is_left_alone_once_in_sync(harness):
    add_templates(harness.fake)
    vm_id = harness.create_vm(power_state="running", template=UBUNTU, cloud_init={"user": "ops"})
    assert harness.reconcile(vm_id).sync_status == "synced"
    assert_left_alone(harness, vm_id)


def test_an_imported_vm_is_left_alone(harness):
    hand_made(harness, agent="1", onboot="1")
    vm_id = Importer(harness.reconciler.client, harness.store).import_vm(harness.actor, 9001)
    assert_left_alone(harness, vm_id)


def test_a_vm_whose_config_lags_its_spec_is_corrected_once_and_the_audit_names_the_keys(harness):
    vm_id = harness.create_vm(power_state="running")
    vmid = harness.reconcile(vm_id).vmid
    del harness.fake.vm(vmid).config["agent"]  # as pvem's create left it before the guest fields
    harness.reconciler.view.refresh()
    mark = harness.mark_requests()
    assert not unchanged(harness.reconciler.worker, resync_item(harness, vm_id))
    assert harness.reconcile(vm_id).sync_status == "synced"
    assert [method for method, path in harness.writes_since(mark) if path.endswith("/config")] == ["POST"]
    with harness.store.read() as session:
        [record] = session.scalars(select(AuditLog).where(AuditLog.action == "drift_corrected"))
        assert record.details["fields"] == {"agent": {"before": False, "after": "1"}}
        assert record.details["actions"] == ["update_config"]
    assert_left_alone(harness, vm_id)


def test_a_config_write_with_nothing_to_change_is_never_sent_nor_audited(harness):
    vm_id = harness.create_vm(power_state="running")
    harness.reconcile(vm_id)
    with harness.store.read() as session:
        loaded = state.load_vm(session, vm_id)
    assert loaded is not None
    desired, row = loaded
    ctx = Context(desired, row.owner_id, row.restart_requests, desired.node, None)
    mark, audited = harness.mark_requests(), harness.audit_actions(vm_id)
    harness.reconciler.worker._execute(ctx, Action("update_config", {"changes": {}}))
    assert harness.requests_since(mark) == [] and harness.audit_actions(vm_id) == audited
