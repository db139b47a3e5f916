"""Group commit: the reconciler's short status transactions, from many workers, committed together.

SQLite has one writer at a time, and each of a worker's status transactions (an intent audit before a
Proxmox write, an outcome, "synced") is small: with 16 workers they queued on the write lock, each
transaction's hold made longer by the workers' competition for the GIL. Here a worker hands its writes
(a function of the session) over and waits; whoever finds no transaction under way commits everything
queued meanwhile in one fenced transaction (a leader among the waiting workers, no extra thread). The
caller returns only once its writes are committed, so an intent still precedes its Proxmox write.

A batch that fails is rolled back and its writes are tried again one per transaction, so one VM's
failure (a constraint, a bug) is its own. The writes may therefore run twice: they must only touch the
session (the change-feed events queued on it are dropped with a rollback).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session

from controller.store import Store

T = TypeVar("T")


class _Pending(Generic[T]):
    def __init__(self, fn: Callable[[Session], T]) -> None:
        self.fn = fn
        self.done = False
        self.value: T | None = None
        self.error: Exception | None = None

    def result(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


class GroupCommit:
    """Runs `fn(session)` in a fenced write transaction shared with the other workers' pending writes."""

    def __init__(self, store: Store, fence: Callable[[Session], None] | None = None,
                 finish: Callable[[Session], None] | None = None) -> None:
        self.store = store
        self.fence = fence
        self.finish = finish  # once per transaction, after every write of the batch (rows queued in bulk)
        self._cond = threading.Condition()
        self._queue: list[_Pending[Any]] = []
        self._busy = False

    def run(self, fn: Callable[[Session], T]) -> T:
        """fn(session) committed (with whatever else was queued) before this returns; its return value.
        A batch holds at most one write per waiting worker: the workers bound its size."""
        item: _Pending[T] = _Pending(fn)
        with self._cond:
            self._queue.append(item)
            while self._busy and not item.done:
                self._cond.wait()
            if item.done:
                return item.result()
            self._busy = True  # this worker commits the queue, its own write included
            batch, self._queue = self._queue, []
        try:
            self._commit(batch)
        finally:
            for pending in batch:
                if not pending.done:  # _commit was interrupted (BaseException): nobody waits forever
                    pending.error, pending.done = RuntimeError("the batch's commit was interrupted"), True
            with self._cond:
                self._busy = False
                self._cond.notify_all()
        return item.result()

    def _commit(self, batch: list[_Pending[Any]]) -> None:
        try:
            with self.store.write() as session:
                if self.fence is not None:
                    self.fence(session)
                values = [item.fn(session) for item in batch]
                if self.finish is not None:
                    self.finish(session)
        except Exception as exc:
            if len(batch) > 1:
                for item in batch:  # each alone: a failure belongs to the write that caused it
                    self._commit([item])
                return
            batch[0].error, batch[0].done = exc, True
            return
        for item, value in zip(batch, values, strict=True):
            item.value, item.done = value, True
