"""The change feed itself: what a write leaves in it, what a rollback leaves (nothing), and pruning."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from controller import events
from controller.events import feed as feed_rows
from controller.store import Store
from controller.store.models import Event, VirtualMachine, utcnow
from tests.conftest import Api


def _kinds(store: Store, after: int = 0) -> list[tuple[str, str | None]]:
    with store.read() as session:
        return [(row.kind, row.vm_id) for row in feed_rows.read_after(session, after)]


def _head(store: Store) -> int:
    with store.read() as session:
        return feed_rows.latest_seq(session)


def test_spec_writes_leave_events_with_the_owner(api: Api, user_token: str, store: Store) -> None:
    start = _head(store)
    vm = api.create_vm(user_token, name="fed")
    api.call("POST", f"/api/vms/{vm['id']}/action", user_token, json={"action": "start"})
    with store.read() as session:
        rows = feed_rows.read_after(session, start)
    assert [row.kind for row in rows] == ["vm.created", "vm.changed"]
    assert {row.owner_id for row in rows} == {vm["owner_id"]}
    assert rows[0].seq < rows[1].seq


def test_a_rolled_back_write_leaves_no_event(api: Api, user_token: str, store: Store) -> None:
    vm = api.create_vm(user_token, name="kept")
    start = _head(store)
    with pytest.raises(RuntimeError), store.write() as session:
        row = session.get(VirtualMachine, vm["id"])
        assert row is not None
        row.cpu_cores = 8
        session.flush()
        events.emit(session, events.VM_DRIFT, vm["id"])
        raise RuntimeError("changed my mind")
    assert _kinds(store, start) == []


def test_a_rolled_back_savepoint_drops_only_its_events(api: Api, user_token: str, store: Store) -> None:
    vm = api.create_vm(user_token, name="partly")
    start = _head(store)
    with store.write() as session:
        events.emit(session, events.VM_DRIFT, vm["id"])
        try:
            with session.begin_nested():
                events.emit(session, events.VM_ERROR, vm["id"])
                raise RuntimeError("inner failure")
        except RuntimeError:
            pass
    assert _kinds(store, start) == [("vm.drift", vm["id"])]


def test_core_status_writes_emit_once_per_transaction(api: Api, user_token: str, store: Store) -> None:
    vm = api.create_vm(user_token, name="status")
    start = _head(store)
    with store.write() as session:
        for value in ("syncing", "pending"):
            session.execute(update(VirtualMachine).where(VirtualMachine.id == vm["id"]).values(sync_status=value))
            events.emit(session, events.VM_CHANGED, vm["id"])
    with store.read() as session:
        rows = feed_rows.read_after(session, start)
    assert [(row.kind, row.owner_id) for row in rows] == [("vm.changed", vm["owner_id"])]  # owner looked up


def test_old_events_are_pruned_and_the_prune_point_remembered(api: Api, user_token: str, store: Store) -> None:
    api.create_vm(user_token, name="old")
    old_head = _head(store)
    with store.write() as session:
        session.execute(update(Event).values(created_at=utcnow() - timedelta(hours=2)))
    api.create_vm(user_token, name="new")
    with store.write() as session:
        feed_rows.prune(session, retention_minutes=60, delivery_retention_hours=1)
    with store.read() as session:
        remaining = list(session.scalars(select(Event.seq)))
        assert remaining and min(remaining) > old_head
        assert feed_rows.cursor(session, feed_rows.PRUNED) == old_head
