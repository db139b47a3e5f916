"""Writing the feed: events queued on a session and written in its transaction, just before COMMIT.

ORM writes of VMs, snapshots and firewall rules are turned into events by an `after_flush` hook (so
every spec write path, present or future, emits); Core UPDATE/DELETE statements (the reconciler's
status writes) call `emit()` themselves. Events are written last, after the final flush: on PostgreSQL
under a transaction-level advisory lock, so feed rows commit in `seq` order and a reader's cursor
(`seq > N`) can never skip a row committed late; SQLite serialises writers anyway. A NOTIFY on
`pvem_events` (delivered at commit) wakes the listeners of every process.
"""

from __future__ import annotations

import weakref
from typing import Any, Protocol

from sqlalchemy import event, insert, inspect, select, text
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from controller.events import kinds
from controller.store.models import Event, FirewallRule, VirtualMachine, VmSnapshot, utcnow

PENDING = "pvem_pending_events"
CHANNEL = "pvem_events"
LOCK_KEY = 0x7076656D  # "pvem": the advisory lock that orders feed commits on PostgreSQL
WROTE = "pvem_wrote_events"
_Pending = tuple[SessionTransaction | None, str, str | None, str | None, dict[str, Any]]


class _Pokeable(Protocol):
    def poke(self) -> None: ...


# Feeds of this process, poked after a local commit wrote events (no wait for the poll or a NOTIFY).
_local: weakref.WeakSet[Any] = weakref.WeakSet()


def on_local_commit(feed: _Pokeable) -> None:
    _local.add(feed)


def emit(session: Session, kind: str, vm_id: str | None = None, owner_id: str | None = None,
         payload: dict[str, Any] | None = None) -> None:
    """Queue an event; it is written in this session's transaction, just before it commits."""
    transaction = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(PENDING, []).append((transaction, kind, vm_id, owner_id, dict(payload or {})))


def install(factory: sessionmaker[Session]) -> None:
    """Attach the hooks to a session factory (the Store does this for its sessions)."""
    event.listen(factory, "after_flush", _after_flush)
    event.listen(factory, "before_commit", _before_commit)
    event.listen(factory, "after_soft_rollback", _after_soft_rollback)
    event.listen(factory, "after_commit", _after_commit)


def _transition(obj: Any) -> str | None:
    history = inspect(obj).attrs.sync_status.history
    if not history.added:
        return None
    new, old = history.added[0], history.deleted[0] if history.deleted else None
    if new == old:
        return None
    return {"synced": kinds.VM_SYNCED, "error": kinds.VM_ERROR}.get(new)


def _after_flush(session: Session, _context: Any) -> None:
    for obj in session.new:
        if isinstance(obj, VirtualMachine):
            emit(session, kinds.VM_CREATED, obj.id, obj.owner_id)
        elif isinstance(obj, VmSnapshot):
            emit(session, kinds.SNAPSHOT_CREATED, obj.vm_id, payload={"snapshot_id": obj.id, "name": obj.name})
            emit(session, kinds.VM_CHANGED, obj.vm_id)
        elif isinstance(obj, FirewallRule):
            emit(session, kinds.VM_CHANGED, obj.vm_id)
    for obj in session.dirty:
        if isinstance(obj, VirtualMachine) and session.is_modified(obj, include_collections=False):
            emit(session, kinds.VM_CHANGED, obj.id, obj.owner_id)
            transition = _transition(obj)
            if transition:
                emit(session, transition, obj.id, obj.owner_id)
        elif isinstance(obj, VmSnapshot | FirewallRule) and session.is_modified(obj, include_collections=False):
            emit(session, kinds.VM_CHANGED, obj.vm_id)
    for obj in session.deleted:
        if isinstance(obj, VirtualMachine):
            emit(session, kinds.VM_DELETED, obj.id, obj.owner_id, {"name": obj.name, "vmid": obj.vmid})
        elif isinstance(obj, VmSnapshot):
            emit(session, kinds.SNAPSHOT_DELETED, obj.vm_id, payload={"snapshot_id": obj.id, "name": obj.name})
            emit(session, kinds.VM_CHANGED, obj.vm_id)
        elif isinstance(obj, FirewallRule):
            emit(session, kinds.VM_CHANGED, obj.vm_id)


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


def _after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
    pending: list[_Pending] | None = session.info.get(PENDING)
    if not pending:
        return
    if previous.parent is None:
        session.info.pop(PENDING, None)
    else:  # a savepoint rolled back: only its events go
        session.info[PENDING] = [item for item in pending if not _within(item[0], previous)]


def _before_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint's release: the events wait for the real commit
    session.flush()  # the final flush's changes become events too
    pending: list[_Pending] | None = session.info.pop(PENDING, None)
    if pending:
        _write(session, pending)


def _after_commit(session: Session) -> None:
    if session.info.pop(WROTE, False):
        for feed in list(_local):
            feed.poke()


def _write(session: Session, pending: list[_Pending]) -> None:
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str | None]] = set()
    for _transaction, kind, vm_id, owner_id, payload in pending:
        if kind == kinds.VM_CHANGED:  # one per VM per transaction is enough: readers render the current row
            if (kind, vm_id) in seen:
                continue
            seen.add((kind, vm_id))
        rows.append({"kind": kind, "vm_id": vm_id, "owner_id": owner_id, "payload": payload})
    missing = {row["vm_id"] for row in rows if row["owner_id"] is None and row["vm_id"]}
    if missing:
        owners = {vm_id: owner for vm_id, owner in session.execute(
            select(VirtualMachine.id, VirtualMachine.owner_id).where(VirtualMachine.id.in_(missing)))}
        for row in rows:
            if row["owner_id"] is None and row["vm_id"]:
                row["owner_id"] = owners.get(row["vm_id"])
    now = utcnow()
    for row in rows:
        row["created_at"] = now
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    session.connection().execute(insert(Event), rows)  # Core executemany: no ORM bulk-insert bookkeeping
    session.info[WROTE] = True
    if postgres:
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
