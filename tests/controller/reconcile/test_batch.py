"""Group commit and deferred outcomes of the StatusWriter, on the real database (no Proxmox)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from controller.lease import Fenced
from controller.reconcile.batch import GroupCommit
from controller.reconcile.state import StatusWriter
from controller.store.models import AuditLog, new_id, utcnow


def _audit_row(action: str) -> dict[str, Any]:
    return {"id": new_id(), "actor": "controller", "action": action, "resource_type": "virtual_machine",
            "resource_id": "vm-1", "details": {}, "created_at": utcnow()}


def actions(store: Any) -> list[str]:
    with store.read() as session:
        return sorted(session.scalars(select(AuditLog.action)))


def test_every_worker_gets_its_own_result_once_its_write_is_committed(store):
    group = GroupCommit(store)
    results: dict[int, Any] = {}
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        start.wait()

        def writes(session: Session) -> int:
            session.execute(insert(AuditLog).values(**_audit_row(f"write-{n}")))
            return n * 10

        value = group.run(writes)
        with store.read() as session:  # committed by the time run() returns
            results[n] = (value, session.scalar(select(AuditLog.action).where(AuditLog.action == f"write-{n}")))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {n: (n * 10, f"write-{n}") for n in range(8)}


def test_a_failing_write_fails_alone_and_the_others_of_its_batch_commit(store):
    group = GroupCommit(store)
    inside = threading.Event()
    release = threading.Event()
    outcomes: dict[str, Any] = {}

    def holder(session: Session) -> None:  # keeps the first batch open while the next one queues up
        inside.set()
        release.wait(10)
        session.execute(insert(AuditLog).values(**_audit_row("first")))

    def good(session: Session) -> str:
        session.execute(insert(AuditLog).values(**_audit_row("good")))
        return "ok"

    def bad(session: Session) -> None:
        session.execute(insert(AuditLog).values(**_audit_row("bad")))
        raise ValueError("a bug in one write")

    def run(name: str, fn: Any) -> None:
        try:
            outcomes[name] = group.run(fn)
        except Exception as exc:
            outcomes[name] = exc

    first = threading.Thread(target=run, args=("first", holder))
    first.start()
    assert inside.wait(10)
    others = [threading.Thread(target=run, args=(name, fn)) for name, fn in (("good", good), ("bad", bad))]
    for thread in others:
        thread.start()
    for _ in range(1000):  # both queued behind the open batch: they share the next one
        if len(group._queue) == 2:
            break
        threading.Event().wait(0.01)
    assert len(group._queue) == 2
    release.set()
    for thread in [first, *others]:
        thread.join(30)
    assert outcomes["first"] is None and outcomes["good"] == "ok"
    assert isinstance(outcomes["bad"], ValueError)
    assert actions(store) == ["first", "good"]


def test_a_fenced_batch_writes_nothing(store):
    def fence(_session: Session) -> None:
        raise Fenced("not the leader")

    writer = StatusWriter(store, fence=fence)
    with pytest.raises(Fenced):
        writer.record("vm-1", "pve_start", "owner", {"outcome": "started"}, {})
    assert actions(store) == []


def test_a_deferred_outcome_rides_on_the_next_write_or_is_flushed(store):
    writer = StatusWriter(store)
    writer.record("vm-1", "pve_create", "owner", {"outcome": "ok"}, {}, defer=True)
    assert actions(store) == []  # held back
    writer.record("vm-1", "pve_start", "owner", {"outcome": "started"}, {})
    assert actions(store) == ["pve_create", "pve_start"]  # one transaction, the outcome first
    writer.record("vm-1", "pve_start", "owner", {"outcome": "ok"}, {}, defer=True)
    writer.flush("vm-2")  # another VM's flush leaves it alone
    assert actions(store) == ["pve_create", "pve_start"]
    writer.flush("vm-1")
    assert actions(store) == ["pve_create", "pve_start", "pve_start"]
    with store.read() as session:
        seqs = [row.details["outcome"] for row in session.scalars(select(AuditLog).order_by(AuditLog.seq))]
    assert seqs == ["ok", "started", "ok"]
