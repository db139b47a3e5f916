"""The change feed: one append-only `events` table that every consumer reads (SSE streams, webhooks).

`emit()` queues an event on a session; the session hooks (`hooks.py`) also derive events from every
ORM write of a VM, snapshot or rule, and write them all in the same transaction just before it commits.
`Feed` (`feed.py`) wakes readers when new rows commit: PostgreSQL LISTEN/NOTIFY with a poll as the
safety net, the poll alone on SQLite.
"""

from controller.events.hooks import emit, install
from controller.events.kinds import (
    SNAPSHOT_CREATED,
    SNAPSHOT_DELETED,
    STATS,
    VM_CHANGED,
    VM_CREATED,
    VM_DELETED,
    VM_DRIFT,
    VM_ERROR,
    VM_SYNCED,
    WEBHOOK_EVENTS,
)

__all__ = ["SNAPSHOT_CREATED", "SNAPSHOT_DELETED", "STATS", "VM_CHANGED", "VM_CREATED", "VM_DELETED", "VM_DRIFT",
           "VM_ERROR", "VM_SYNCED", "WEBHOOK_EVENTS", "emit", "install"]
