"""Group commit of VM creates (controller/create_queue.py): creates that share a transaction still
answer one by one, a refused create fails alone, and quotas, vmids, audit and the feed stay exact."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from controller import errors, quotas
from controller.actor import Actor
from controller.create_queue import CreateQueue
from controller.specs import VmCreate
from controller.store.models import AuditLog, Event, User, VirtualMachine


def _user(store, name: str, role: str = "user", **limits: int) -> Actor:
    with store.write() as session:
        user = User(username=name, email=f"{name}@example.com", password_hash="x", role=role, **limits)
        session.add(user)
        session.flush()
        return Actor(user_id=user.id, role=role, ip_address="127.0.0.1")


def _spec(name: str, **extra: object) -> VmCreate:
    return VmCreate.model_validate({"name": name, "cpu_cores": 1, "memory_mb": 512, "disk_gb": 10, **extra})


@pytest.fixture
def queue(store) -> CreateQueue:
    return CreateQueue(store, (100, 999_999), "pve1")


def _count(store, query) -> int:
    with store.read() as session:
        return int(session.scalar(query) or 0)


def test_concurrent_creates_each_get_their_own_vm_vmid_audit_record_and_event(store, queue):
    actor = _user(store, "alice")
    made: list[VirtualMachine] = []
    failures: list[BaseException] = []
    start = threading.Barrier(16)

    def client(index: int) -> None:
        start.wait(10)
        for n in range(8):
            try:
                made.append(queue.create(actor, _spec(f"vm-{index}-{n}")))
            except BaseException as exc:  # collected and asserted below
                failures.append(exc)

    threads = [threading.Thread(target=client, args=(index,)) for index in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert len(made) == 128 and len({vm.vmid for vm in made}) == 128 and len({vm.id for vm in made}) == 128
    with store.read() as session:
        stored = {row.id: row for row in session.scalars(select(VirtualMachine))}
    assert set(stored) == {vm.id for vm in made}
    for vm in made:  # each answer is the row as stored, defaults included
        assert (stored[vm.id].vmid, stored[vm.id].name, stored[vm.id].sync_status) == (vm.vmid, vm.name, "pending")
    assert _count(store, select(func.count()).select_from(AuditLog).where(AuditLog.action == "create_vm")) == 128
    assert _count(store, select(func.count()).select_from(Event).where(Event.kind == "vm.created")) == 128


def test_a_refused_create_fails_alone_and_leaves_no_trace(store, queue):
    alice = _user(store, "alice")
    results = queue.run_batch([(alice, _spec("web-1")), (alice, _spec("web-1")), (alice, _spec("web-2")),
                               (alice, _spec("db-1", node="nowhere", owner_id="someone-else"))])
    assert isinstance(results[0], VirtualMachine) and isinstance(results[2], VirtualMachine)
    assert isinstance(results[1], errors.Conflict) and "web-1" in results[1].message
    assert isinstance(results[3], errors.Forbidden)
    with store.read() as session:
        assert sorted(session.scalars(select(VirtualMachine.name))) == ["web-1", "web-2"]
    assert _count(store, select(func.count()).select_from(AuditLog).where(AuditLog.action == "create_vm")) == 2
    assert _count(store, select(func.count()).select_from(Event).where(Event.kind == "vm.created")) == 2


def test_a_quota_holds_when_its_owners_creates_share_a_batch(store, queue):
    limited = _user(store, "bob", max_vms=3)
    results = queue.run_batch([(limited, _spec(f"b-{n}")) for n in range(5)])
    assert [type(result).__name__ for result in results] == ["VirtualMachine"] * 3 + ["QuotaExceeded"] * 2
    with store.read() as session:
        assert quotas.usage_of(session, limited.user_id or "").vms == 3


def test_a_quota_holds_under_concurrent_clients(store, queue):
    limited = _user(store, "carol", max_vms=4)
    outcomes: list[str] = []
    start = threading.Barrier(12)

    def client(index: int) -> None:
        start.wait(10)
        try:
            queue.create(limited, _spec(f"c-{index}"))
            outcomes.append("created")
        except errors.QuotaExceeded:
            outcomes.append("refused")

    threads = [threading.Thread(target=client, args=(index,)) for index in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["created"] * 4 + ["refused"] * 8
