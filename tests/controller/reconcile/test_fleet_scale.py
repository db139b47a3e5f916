"""What the reconciler asks of Proxmox and the database at fleet scale, counted (not timed): a new VM costs
the requests a script would make, an idle pass one listing, a deep resync three reads and no writes, the
stats job no request of its own, and user changes go ahead of the pass's work."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import event, select, update

from controller import stats
from controller.service import ControllerService
from controller.store.models import StatsSample, VirtualMachine, utcnow

DEADLINE = 10.0


def wait_for(condition: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


def converge(harness: Any, count: int) -> list[str]:
    ids = [harness.create_vm(name=f"vm-{n}", power_state="running") for n in range(count)]
    for vm_id in ids:
        assert harness.reconcile(vm_id).sync_status == "synced"
    return ids


def make_due(harness: Any, ids: list[str]) -> None:
    with harness.store.write() as session:
        session.execute(update(VirtualMachine).where(VirtualMachine.id.in_(ids))
                        .values(last_observed_at=utcnow() - timedelta(days=1)))


def test_a_new_vm_is_created_and_started_with_the_requests_a_script_would_make(harness):
    harness.reconciler.full_pass()  # the listing the pass shares with every worker
    vm_id = harness.create_vm(power_state="running")
    mark = harness.mark_requests()
    row = harness.reconcile(vm_id)
    assert row.sync_status == "synced" and row.status == "running" and row.provisioned
    assert harness.fake.vm(row.vmid).status == "running"
    methods = [(method, path.rsplit("/", 2)[-2:]) for method, path in harness.requests_since(mark)]
    # create, its task, start, its task: no listing, no reading back what the tasks' success said
    assert [method for method, _path in methods] == ["POST", "GET", "POST", "GET"], methods
    assert not any("cluster" in path for _method, path in harness.requests_since(mark))


def test_an_in_sync_fleets_pass_lists_once_and_resyncs_with_three_reads_and_no_writes(harness):
    reconciler = harness.reconciler
    reconciler.settings.resync_seconds = 60  # 30 s passes: a budget of ceil(6 * 30 / 60) = 3 resyncs
    ids = converge(harness, 6)
    # A VM made by a plain create was recorded without reading it back: its first resync records the full
    # observation (guest details). Measure the steady state after that.
    for vm_id in ids:
        reconciler.worker.run(vm_id)
    reconciler.full_pass()  # nothing due yet: records the node list once (written only when it changes)
    reconciler.start()
    make_due(harness, ids)
    with harness.store.read() as session:
        before = {row.id: row.last_synced_at for row in session.scalars(select(VirtualMachine))}
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731 - (conn, cursor, statement, ...)
    event.listen(harness.store.engine, "before_cursor_execute", listener)
    try:
        mark = harness.mark_requests()
        reconciler.full_pass()
        time.sleep(0.2)
        wait_for(reconciler.idle, "the resyncs")
        requests = harness.requests_since(mark)
    finally:
        event.remove(harness.store.engine, "before_cursor_execute", listener)
    assert [path for _method, path in requests].count("/api2/json/cluster/resources") == 1
    deep = [path for method, path in requests if "/qemu/" in path]
    assert all(method == "GET" for method, _path in requests)
    resynced = {path.split("/qemu/")[1].split("/")[0] for path in deep}
    assert len(resynced) == 3 and len(deep) == 3 * 3, deep  # pending, snapshots, firewall rules each
    assert not any(text.lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE")) for text in statements)
    with harness.store.read() as session:
        assert {row.id: row.last_synced_at for row in session.scalars(select(VirtualMachine))} == before

    # The next pass records those observations in one statement, and resyncs the next three.
    statements.clear()
    event.listen(harness.store.engine, "before_cursor_execute", listener)
    try:
        reconciler.full_pass()
        time.sleep(0.2)
        wait_for(reconciler.idle, "the resyncs")
    finally:
        event.remove(harness.store.engine, "before_cursor_execute", listener)
    assert sum(1 for text in statements if text.lstrip().upper().startswith("UPDATE")) == 1
    with harness.store.read() as session:
        fresh = session.scalars(select(VirtualMachine.id).where(
            VirtualMachine.last_observed_at > utcnow() - timedelta(minutes=1))).all()
    assert len(fresh) == 3


def test_a_deep_resync_still_finds_drift_the_listing_cannot_show(harness):
    reconciler = harness.reconciler
    vm_id = harness.create_vm(power_state="running")
    harness.add_snapshot(vm_id, "baseline")
    vmid = harness.reconcile(vm_id).vmid
    del harness.fake.vm(vmid).snapshots["baseline"]  # deleted behind pvem's back: the listing looks the same
    make_due(harness, [vm_id])
    reconciler.start()
    reconciler.full_pass()
    wait_for(lambda: "baseline" in harness.fake.vm(vmid).snapshots, "the snapshot to be made again")
    wait_for(reconciler.idle, "the worker")
    assert harness.row(vm_id).sync_status == "synced"


def test_a_user_change_is_worked_on_before_queued_resyncs(harness):
    reconciler = harness.reconciler  # not started: the queue is inspected as the dispatcher would see it
    reconciler.settings.resync_seconds = 30  # every VM is due each pass
    ids = converge(harness, 5)
    make_due(harness, ids)
    reconciler.full_pass()
    assert reconciler._queued == set(ids) and set(reconciler._resync) == set(ids)
    harness.update_vm(ids[3], cpu_cores=3)
    reconciler.nudge(ids[3])  # what the API does after the write
    with reconciler._cond:
        assert reconciler._next_ready() == ids[3]
    assert ids[3] not in reconciler._resync  # a user change is never a mere resync


def test_the_stats_job_reuses_the_pass_listing(harness, store, passwords):
    converge(harness, 2)
    service = ControllerService(harness.settings, store, passwords)
    try:
        assert service.reconciler is not None
        service.reconciler.full_pass()
        mark = harness.mark_requests()
        service.sample_stats()
        assert harness.requests_since(mark) == []  # no listing of its own
        with store.read() as session:
            sample = stats.latest(session, stats.CLUSTER)
            assert sample is not None and [node["node"] for node in sample.details["nodes"]] == ["pve1"]
        service.sample_stats()  # no new listing since: no new cluster sample (rates span two listings)
        with store.read() as session:
            count = len(session.scalars(select(StatsSample).where(StatsSample.source == stats.CLUSTER)).all())
        assert count == 1
    finally:
        service.stop()


def test_background_work_is_held_back_while_a_user_change_is_worked_on(harness):
    reconciler = harness.reconciler  # not started: the dispatcher's choices are inspected directly
    reconciler.settings.resync_seconds = 30
    ids = converge(harness, 3)
    make_due(harness, ids)
    reconciler.full_pass()
    reconciler._background_cap, reconciler._background_cap_urgent = 8, 4  # as 16 workers make them
    with reconciler._cond:
        reconciler._background_running = 4
        assert reconciler._next_ready() in ids  # background work goes when nothing urgent runs
        reconciler._urgent_running = 1
        assert reconciler._next_ready() is None  # ... and only a little of it beside a user change
        reconciler._urgent_running = 0
        assert reconciler._next_ready() in ids
        reconciler._background_running = 0
