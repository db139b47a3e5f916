"""Reconciling through Proxmox faults: while a fault lasts the VM row says what Proxmox said and the sync is
either retried (transient) or parked as an error (permanent); once the fault clears, the VM converges.

`harness.reconcile(vm_id)` is one attempt of one worker, recorded as the loop records it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from controller.proxmox.marks import mark_of
from controller.reconcile.model import Policy

START = "/nodes/{node}/qemu/{vmid}/status/start"
CONFIG = "/nodes/{node}/qemu/{vmid}/config"


@pytest.fixture
def quiet_aiohttp() -> Iterator[None]:
    """fakepve logs a server-side traceback for every connection it drops on purpose."""
    logger = logging.getLogger("aiohttp.server")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def assert_converged(harness: Any, vm_id: str) -> Any:
    row = harness.row(vm_id)
    assert row.sync_status == "synced", row.last_error
    assert row.observed_generation == row.generation
    assert row.last_error is None
    return row


def assert_retrying(row: Any, text: str) -> None:
    """A transient fault: Proxmox's message on the row, the sync still pending (a retry is scheduled)."""
    assert row.sync_status == "pending"
    assert row.last_error is not None and text in row.last_error, row.last_error
    assert row.observed_generation < row.generation


def assert_parked(row: Any, text: str) -> None:
    """A permanent fault: Proxmox's message on the row and sync_status error (no retry until the spec changes)."""
    assert row.sync_status == "error"
    assert row.last_error is not None and text in row.last_error, row.last_error
    assert row.error_generation == row.generation


def pvem_vms(harness: Any, vm_id: str) -> list[Any]:
    return [vm for vm in harness.fake.vms if mark_of(vm.config.get("description")) == vm_id]


def converged_vm(harness: Any, **fields: Any) -> tuple[str, int]:
    vm_id = harness.create_vm(**fields)
    row = harness.reconcile(vm_id)
    assert row.sync_status == "synced", row.last_error
    return vm_id, row.vmid


def test_a_transient_500_on_create_is_retried_and_the_vm_is_created_once(harness):
    harness.fake.fail("POST", "/nodes/{node}/qemu", 500, "boom", times=1)
    vm_id = harness.create_vm(power_state="running")
    row = harness.reconcile(vm_id)
    assert_retrying(row, "boom")
    assert pvem_vms(harness, vm_id) == []
    assert vm_id in harness.reconciler._queued  # the loop has it queued again, behind its backoff

    row = harness.reconcile(vm_id)
    assert_converged(harness, vm_id)
    assert [vm.vmid for vm in pvem_vms(harness, vm_id)] == [row.vmid]
    assert harness.fake.vm(row.vmid).status == "running"


def test_a_start_task_error_is_parked_with_qemus_message_then_the_retry_starts_the_vm(harness):
    harness.fake.fail("POST", START, error="qemu_exited_code", times=1)
    vm_id = harness.create_vm(power_state="running")
    row = harness.reconcile(vm_id)
    assert_parked(row, "QEMU exited with code 1")
    assert harness.fake.vm(row.vmid).status == "stopped"
    assert "pve_start" in harness.audit_actions(vm_id)

    # The slow periodic retry of errored objects comes round; the fault was a one-off.
    harness.reconcile(vm_id)
    row = assert_converged(harness, vm_id)
    assert row.status == "running" and harness.fake.vm(row.vmid).status == "running"


def test_a_locked_vm_is_left_alone_until_the_lock_goes(harness):
    vm_id, vmid = converged_vm(harness)
    harness.fake.snapshot_lock(vmid, "backup")
    harness.update_vm(vm_id, cpu_cores=4)
    mark = harness.mark_requests()
    assert_retrying(harness.reconcile(vm_id), "VM is locked (backup)")
    assert harness.writes_since(mark) == []  # pvem did not even try to write to a locked VM
    assert int(harness.fake.vm(vmid).config["cores"]) == 2

    harness.fake.unlock(vmid)
    harness.reconcile(vm_id)
    assert_converged(harness, vm_id)
    assert int(harness.fake.vm(vmid).config["cores"]) == 4


def test_a_held_config_lock_is_retried_until_released(harness):
    vm_id, vmid = converged_vm(harness)
    asyncio.run(harness.fake.hold_config_lock(vmid, None))
    harness.update_vm(vm_id, cpu_cores=4)
    assert_retrying(harness.reconcile(vm_id), "can't lock file '/var/lock/qemu-server/lock-")
    assert int(harness.fake.vm(vmid).config["cores"]) == 2

    harness.fake.release_config_lock(vmid)
    harness.reconcile(vm_id)
    assert_converged(harness, vm_id)
    assert int(harness.fake.vm(vmid).config["cores"]) == 4


def test_lost_quorum_delays_the_create_until_quorum_is_back(harness):
    harness.fake.lose_quorum()
    vm_id = harness.create_vm()
    assert_retrying(harness.reconcile(vm_id), "cluster not ready - no quorum?")
    assert_retrying(harness.reconcile(vm_id), "no quorum")  # still retried, not parked
    assert pvem_vms(harness, vm_id) == []

    harness.fake.regain_quorum()
    harness.reconcile(vm_id)
    row = assert_converged(harness, vm_id)
    assert [vm.vmid for vm in pvem_vms(harness, vm_id)] == [row.vmid]


def test_an_offline_node_is_retried_until_it_is_back(harness):
    vm_id, vmid = converged_vm(harness, power_state="running")
    harness.fake.set_node_offline("pve1")
    harness.update_vm(vm_id, name="web-renamed")
    assert_retrying(harness.reconcile(vm_id), "No route to host")
    assert pvem_vms(harness, vm_id)[0].vmid == vmid  # nothing was recreated elsewhere

    harness.fake.set_node_offline("pve1", offline=False)
    harness.reconcile(vm_id)
    row = assert_converged(harness, vm_id)
    assert harness.fake.vm(vmid).config["name"] == "web-renamed" and row.status == "running"
    assert len(pvem_vms(harness, vm_id)) == 1


def test_dropped_connections_are_retried(harness, quiet_aiohttp):
    vm_id, vmid = converged_vm(harness)  # logged in before the network goes bad
    harness.fake.flaky_network(drop_rate=1.0)
    harness.update_vm(vm_id, cpu_cores=3)
    assert_retrying(harness.reconcile(vm_id), "cannot reach Proxmox")

    harness.fake.flaky_network()
    harness.reconcile(vm_id)
    assert_converged(harness, vm_id)
    assert int(harness.fake.vm(vmid).config["cores"]) == 3


def test_hung_connections_time_out_and_are_retried(harness_factory):
    harness = harness_factory(timeout_seconds=1)
    vm_id, vmid = converged_vm(harness)
    harness.fake.flaky_network(hang_rate=1.0, hang_secs=2)
    harness.update_vm(vm_id, cpu_cores=3)
    started = time.monotonic()
    row = harness.reconcile(vm_id)
    assert time.monotonic() - started < 4  # the client's 1 s timeout, not a hang
    assert_retrying(row, "did not answer in time")

    harness.fake.flaky_network()
    harness.reconcile(vm_id)
    assert_converged(harness, vm_id)
    assert int(harness.fake.vm(vmid).config["cores"]) == 3


def test_revoked_tickets_are_replaced_by_a_new_login_without_an_error(harness):
    vm_id, vmid = converged_vm(harness)
    harness.fake.revoke_tickets()
    harness.update_vm(vm_id, cpu_cores=3)
    mark = harness.mark_requests()
    harness.reconcile(vm_id)  # one attempt is enough: the 401 is answered by logging in again
    assert_converged(harness, vm_id)
    assert int(harness.fake.vm(vmid).config["cores"]) == 3
    logins = [path for method, path in harness.requests_since(mark) if path.endswith("/access/ticket")]
    assert logins == ["/api2/json/access/ticket"]


@pytest.mark.fakepve(time_scale=0.01)
def test_a_guest_that_ignores_shutdown_is_forced_off_after_the_timeout(harness_factory):
    harness = harness_factory(policy=Policy(shutdown_timeout=5))
    vm_id, vmid = converged_vm(harness, power_state="running")
    harness.fake.vm(vmid).shutdown_secs = 90  # far beyond the 5 s pvem allows
    harness.action(vm_id, "stop")
    started = time.monotonic()
    harness.reconcile(vm_id)
    row = assert_converged(harness, vm_id)
    assert time.monotonic() - started < 5  # 90 PVE seconds would be 0.9 s; the timeout cuts it to 0.05 s
    assert row.status == "stopped" and harness.fake.vm(vmid).status == "stopped"
    shutdowns = [task for task in harness.fake.tasklog if task["type"] == "qmshutdown"]
    assert [task["exitstatus"] for task in shutdowns] == ["OK"]
    assert "VM still running - terminating now with SIGTERM" in shutdowns[0]["log"]


def test_full_storage_parks_the_create_until_the_spec_changes(harness):
    storage = harness.fake.storages["local-lvm"]
    saved = dict(storage)
    storage["avail"] = 0
    vm_id = harness.create_vm(disk_gb=20)
    row = harness.reconcile(vm_id)
    assert_parked(row, "No space left on device")
    assert pvem_vms(harness, vm_id) == []  # Proxmox removed the half-made VM

    storage.clear()
    storage.update(saved)
    harness.update_vm(vm_id, cpu_cores=3)  # the spec change that un-parks it
    harness.reconcile(vm_id)
    row = assert_converged(harness, vm_id)
    assert int(harness.fake.vm(row.vmid).config["cores"]) == 3
    assert [vm.vmid for vm in pvem_vms(harness, vm_id)] == [row.vmid]


def test_a_permanent_400_is_shown_and_not_retried_in_a_hot_loop(harness):
    vm_id, vmid = converged_vm(harness)
    harness.fake.fail("POST", CONFIG, 400, "invalid format - value does not look like a valid DNS name")
    reconciler = harness.reconciler
    reconciler.settings.error_retry_seconds = 30  # longer than the window watched below (production: 300 s)
    reconciler.start()
    harness.update_vm(vm_id, name="web-2")
    reconciler.nudge(vm_id)
    deadline = time.monotonic() + 5
    while harness.row(vm_id).sync_status != "error":
        assert time.monotonic() < deadline, harness.row(vm_id).last_error
        time.sleep(0.02)
    assert_parked(harness.row(vm_id), "does not look like a valid DNS name")

    # About a second of a running controller: database polls and a full pass, as the service schedules them.
    mark = harness.mark_requests()
    reconciler.full_pass()
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        reconciler.poll_database()
        time.sleep(0.05)
    assert harness.writes_since(mark) == []
    assert len(harness.requests_since(mark)) <= 3  # the full pass's one listing, nothing per poll
    assert harness.row(vm_id).sync_status == "error"

    # The operator fixes the spec; the next spec change is tried at once.
    harness.fake.failures.clear()
    harness.update_vm(vm_id, name="web-3")
    reconciler.nudge(vm_id)
    deadline = time.monotonic() + 5
    while harness.row(vm_id).sync_status != "synced":
        assert time.monotonic() < deadline, harness.row(vm_id).last_error
        time.sleep(0.02)
    assert_converged(harness, vm_id)
    assert harness.fake.vm(vmid).config["name"] == "web-3"


def test_an_unknown_node_is_an_error_until_the_spec_names_a_real_one(harness):
    vm_id = harness.create_vm(node="pve9")
    row = harness.reconcile(vm_id)
    assert_parked(row, "node 'pve9' is not in the Proxmox cluster (nodes: pve1)")
    harness.update_vm(vm_id, node="pve1")
    harness.reconcile(vm_id)
    assert assert_converged(harness, vm_id).node == "pve1"
