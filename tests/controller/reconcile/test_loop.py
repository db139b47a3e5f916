"""The threaded reconcile loop: nudges and database polls reach Proxmox quickly, a converged fleet costs one
request per full pass whatever its size, and stopping is prompt and hands unfinished tasks over."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from controller.proxmox.marks import mark_of

DEADLINE = 10.0


def wait_for(condition: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def synced(harness: Any, vm_id: str) -> Callable[[], Any]:
    def check() -> Any:
        row = harness.row(vm_id)
        if row is not None and row.sync_status == "synced" and row.observed_generation == row.generation:
            return row
        return None

    return check


def test_a_nudged_change_reaches_proxmox_within_seconds(harness):
    harness.reconciler.start()
    vm_id = harness.create_vm(name="web-1", power_state="running")
    harness.reconciler.nudge(vm_id)
    row = wait_for(synced(harness, vm_id), "the create")
    assert harness.fake.vm(row.vmid).status == "running" and row.status == "running"
    assert mark_of(harness.fake.vm(row.vmid).config["description"]) == vm_id

    harness.update_vm(vm_id, name="web-renamed", cpu_cores=3)
    harness.reconciler.nudge(vm_id)
    wait_for(synced(harness, vm_id), "the update")
    assert harness.fake.vm(row.vmid).config["name"] == "web-renamed"

    harness.delete_vm(vm_id)
    harness.reconciler.nudge(vm_id)
    wait_for(lambda: harness.row(vm_id) is None, "the deletion")
    assert harness.fake.vm(row.vmid) is None


def test_the_database_poll_picks_up_a_change_written_by_another_process(harness):
    harness.reconciler.start()
    vm_id = harness.create_vm()
    harness.reconciler.poll_database()  # no nudge: the API runs in another process
    row = wait_for(synced(harness, vm_id), "the create")

    harness.update_vm(vm_id, cpu_cores=4)
    time.sleep(0.3)
    assert int(harness.fake.vm(row.vmid).config["cores"]) == 2  # nothing happens without a trigger
    harness.reconciler.poll_database()
    wait_for(synced(harness, vm_id), "the update")
    assert int(harness.fake.vm(row.vmid).config["cores"]) == 4


def test_the_database_poll_retries_a_parked_vm_at_once_when_its_spec_changes(harness):
    """A permanent error waits for a spec change; a change made by the API in another process counts too."""
    reconciler = harness.reconciler
    reconciler.settings.error_retry_seconds = 60  # the slow retry is not what brings it back here
    reconciler.start()
    vm_id = harness.create_vm()
    reconciler.nudge(vm_id)
    row = wait_for(synced(harness, vm_id), "the create")
    harness.fake.fail("POST", "/nodes/{node}/qemu/{vmid}/config", 400, "invalid format - not a DNS name")
    harness.update_vm(vm_id, name="web-2")
    reconciler.poll_database()
    wait_for(lambda: harness.row(vm_id).sync_status == "error", "the permanent error")

    harness.fake.failures.clear()
    harness.update_vm(vm_id, name="web-3")
    started = time.monotonic()
    while synced(harness, vm_id)() is None:
        assert time.monotonic() - started < 5, harness.row(vm_id).last_error
        reconciler.poll_database()  # the service polls every second
        time.sleep(0.1)
    assert harness.fake.vm(row.vmid).config["name"] == "web-3"


@pytest.mark.fakepve(time_scale=0.01)
def test_a_spec_change_made_while_an_attempt_fails_is_tried_at_once(harness):
    """The failure belongs to the old spec: the change that arrived meanwhile must not wait for the slow retry."""
    reconciler = harness.reconciler
    reconciler.settings.error_retry_seconds = 60
    vm_id = harness.create_vm()
    vmid = harness.reconcile(vm_id).vmid
    guest = harness.fake.vm(vmid)
    guest.start_secs, guest.start_error = 50, "QEMU exited with code 1"  # fails after 0.5 s
    reconciler.start()
    harness.action(vm_id, "start")
    reconciler.nudge(vm_id)
    wait_for(lambda: harness.row(vm_id).last_upid, "the start task to be under way")
    harness.action(vm_id, "stop")  # the owner gives up on starting it, while the start still runs
    reconciler.nudge(vm_id)
    row = wait_for(synced(harness, vm_id), "the stop to be reconciled", timeout=5)
    assert row.status == "stopped" and row.power_state == "stopped"
    assert guest.status == "stopped"


def converge_fleet(harness: Any, count: int, first: int) -> list[str]:
    ids = [harness.create_vm(name=f"vm-{first + n}", power_state="running") for n in range(count)]
    for vm_id in ids:
        assert harness.reconcile(vm_id).sync_status == "synced"
    return ids


def requests_for_one_full_pass(harness: Any) -> list[tuple[str, str]]:
    mark = harness.mark_requests()
    harness.reconciler.full_pass()
    time.sleep(0.3)  # anything the pass queued would be picked up by the running workers by now
    wait_for(harness.reconciler.idle, "the workers to finish")
    return harness.requests_since(mark)


def test_an_idle_full_pass_costs_one_request_whatever_the_fleet_size(harness):
    harness.reconciler.start()
    converge_fleet(harness, 10, first=0)
    with_ten = requests_for_one_full_pass(harness)
    converge_fleet(harness, 20, first=10)
    with_thirty = requests_for_one_full_pass(harness)
    assert len(harness.fake.vms) == 30
    assert with_ten == with_thirty == [("GET", "/api2/json/cluster/resources")]


def test_stop_returns_promptly_when_idle(harness):
    harness.reconciler.start()
    vm_id = harness.create_vm()
    harness.reconciler.nudge(vm_id)
    wait_for(synced(harness, vm_id), "the create")
    started = time.monotonic()
    harness.reconciler.stop(timeout=5)
    assert time.monotonic() - started < 1.0
    assert harness.reconciler._dispatcher is not None and not harness.reconciler._dispatcher.is_alive()


@pytest.mark.fakepve(time_scale=0.01)
def test_stop_during_a_long_task_keeps_its_upid_and_the_next_controller_resumes_it(harness_factory):
    harness = harness_factory()
    vm_id = harness.create_vm()
    vmid = harness.reconcile(vm_id).vmid
    harness.fake.vm(vmid).start_secs = 150  # 1.5 s of real time
    harness.action(vm_id, "start")
    harness.reconciler.start()
    harness.reconciler.nudge(vm_id)
    upid = wait_for(lambda: harness.row(vm_id).last_upid, "the start task's UPID to be stored")

    started = time.monotonic()
    harness.reconciler.stop(timeout=5)
    assert time.monotonic() - started < 2.5  # the wait is abandoned, not the task
    assert harness.row(vm_id).last_upid == upid  # handed over to the next controller

    successor = harness_factory()
    mark = successor.mark_requests()
    row = successor.reconcile(vm_id)
    assert row.sync_status == "synced" and row.status == "running", row.last_error
    assert row.last_upid is None
    starts = [path for method, path in successor.writes_since(mark) if path.endswith("/status/start")]
    assert starts == []  # the controller waited for the stored task instead of starting again
