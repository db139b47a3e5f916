"""Group commit for VM creates: concurrent `POST /api/vms` requests share one write transaction.

Every create is a write transaction, and writes are serialised (SQLite has one writer; on PostgreSQL
vmid allocation takes a lock). One transaction per create made the write lock the bottleneck:
under 16 clients each create's critical section stretched while other threads held the interpreter.
So creates queue here and run in batches, flat-combining style, without a thread of their own: the
first request to arrive takes the write lock, then runs a batch of everything queued by then (its own
create first in line), commits, and hands the next batch to the oldest request still waiting. Each
request still gets its own answer: a create refused by a check (a DomainError, raised before that
create writes anything) fails alone while the rest of its batch commits. If the transaction itself
fails (a constraint, the database), every create of the batch is retried in a transaction of its own,
so one bad create cannot sink the others.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from controller import vm_create
from controller.actor import Actor
from controller.errors import DomainError
from controller.specs import VmCreate
from controller.store import Store
from controller.store.models import VirtualMachine

MAX_BATCH = 64


def _locked() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass
class _Create:
    prepared: vm_create.PreparedCreate
    # Held from the start; released once to wake the waiting request (a bare lock: an Event's condition
    # machinery cost more than the wake-up itself, and each create is woken once).
    wake: threading.Lock = field(default_factory=_locked)
    done: bool = False
    vm: VirtualMachine | None = None
    error: BaseException | None = None

    def result(self) -> VirtualMachine:
        if self.error is not None:
            raise self.error
        assert self.vm is not None
        return self.vm


class CreateQueue:
    def __init__(self, store: Store, vmid_range: tuple[int, int], default_node: str | None,
                 reboot_policy: str = "never") -> None:
        self.store, self.vmid_range, self.default_node = store, vmid_range, default_node
        self.reboot_policy = reboot_policy
        self._lock = threading.Lock()
        self._pending: list[_Create] = []
        self._combining = False

    def create(self, actor: Actor, spec: VmCreate) -> VirtualMachine:
        """Create one VM (in some batch's transaction, committed when this returns); raises its refusal."""
        item = _Create(self._prepare(actor, spec))  # outside the lock: what needs no database
        with self._lock:
            self._pending.append(item)
            lead = not self._combining
            self._combining = True
        if not lead:
            item.wake.acquire()  # released when our create is done, or when the combiner's turn passes to us
            if item.done:
                return item.result()
        self._combine()
        return item.result()

    def run_batch(self, requests: list[tuple[Actor, VmCreate]]) -> list[VirtualMachine | BaseException]:
        """These creates as one batch, in order (what concurrent `create` calls share): each one's VM,
        or the error that refused it."""
        results: list[_Create | BaseException] = []
        for actor, spec in requests:
            try:
                results.append(_Create(self._prepare(actor, spec)))
            except DomainError as exc:
                results.append(exc)
        batch = [item for item in results if isinstance(item, _Create)]
        self._run(lambda: batch)
        return [item.error or item.result() if isinstance(item, _Create) else item for item in results]

    def _combine(self) -> None:
        """Run one batch, then pass the turn on. The batch is taken once the write lock is held: the
        creates that arrived while this one waited for it (often the other workers' batch) join it."""
        batch: list[_Create] = []

        def take() -> list[_Create]:
            nonlocal batch
            with self._lock:  # the caller's create is first in line: nobody else takes from the queue
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            return batch

        try:
            self._run(take)
        finally:
            with self._lock:
                successor = self._pending[0] if self._pending else None
                if successor is None:
                    self._combining = False
            for item in batch:
                item.done = True
                item.wake.release()
            if successor is not None:
                successor.wake.release()

    def _prepare(self, actor: Actor, spec: VmCreate) -> vm_create.PreparedCreate:
        return vm_create.prepare_create(actor, spec, self.default_node, self.reboot_policy)

    def _run(self, take: Callable[[], list[_Create]]) -> None:
        """One transaction for the batch `take` answers (called once the write lock is held)."""
        batch: list[_Create] = []
        try:
            with self.store.write() as session:
                batch = take()
                self._place(session, batch)
        except Exception as exc:
            if len(batch) == 1:
                batch[0].vm, batch[0].error = None, exc
                return
            for item in batch:  # the transaction failed as a whole: each create on its own
                try:
                    with self.store.write() as session:
                        self._place(session, [item])
                except Exception as each:
                    item.vm, item.error = None, each

    def _place(self, session: Session, batch: list[_Create]) -> None:
        shared = vm_create.CreateBatch(session, self.vmid_range, [item.prepared for item in batch])
        for item in batch:
            item.vm, item.error = None, None
            try:
                item.vm = vm_create.place_create(session, item.prepared, shared)
            except DomainError as exc:
                item.error = exc
        vm_create.write_creates(session, shared)
