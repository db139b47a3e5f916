"""`GET /api/events`: the change feed as Server-Sent Events, with tenancy as in REST.

Events: `vm` (the VM object exactly as `GET /api/vms/{id}` answers it), `vm_deleted` (`{"id"}`),
`stats` (as `GET /api/stats/system`), `ready` (first, with the stream's position) and `reset` (the
resume point is gone: reload). `id:` is the feed position; `Last-Event-ID` (or `?last_event_id=`)
resumes after it. Consecutive changes of one VM may arrive as one event (its newest state); none is
lost. A comment line every `events.heartbeat_seconds` keeps proxies and dead-peer detection honest.
Each stream holds a server thread, so at most `events.max_streams` are open per process (503 beyond).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import falcon
from sqlalchemy import select

from api.errors import ApiError
from api.resources import Op
from api.schemas import stats_dict, vm_dict
from controller import events, stats
from controller.actor import Actor
from controller.config import EventsSettings
from controller.events import feed as feed_rows
from controller.events.feed import Feed
from controller.log import get_logger
from controller.store import Store
from controller.store.models import Event, User, VirtualMachine

log = get_logger("pvem.events")

BATCH = 500
RETRY_MS = 2000
MAX_WAIT_SECONDS = 1.0  # how long a stream sleeps between checks for shutdown


def sse(event: str, data: Any, event_id: int | None = None) -> bytes:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode()


def _position(req: falcon.Request) -> int | None:
    raw = req.get_header("Last-Event-ID") or req.get_param("last_event_id")
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise ApiError(400, "last_event_id: must be an integer", field="last_event_id") from None
    if value < 0:
        raise ApiError(400, "last_event_id: must not be negative", field="last_event_id")
    return value


class _Slots:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.open >= self.limit:
                return False
            self.open += 1
            return True

    def give(self) -> None:
        with self._lock:
            self.open -= 1


class _Body:
    """The response iterable: `close()` (called by the server, also when the client has gone) frees the slot."""

    def __init__(self, chunks: Iterator[bytes], slots: _Slots) -> None:
        self._chunks, self._slots, self._closed = chunks, slots, False

    def __iter__(self) -> _Body:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            close = getattr(self._chunks, "close", None)
            if close:
                close()
            self._slots.give()


class EventStream:
    docs = {"GET": Op("Live changes as Server-Sent Events (vm, vm_deleted, stats; resume with Last-Event-ID)",
                      None, enveloped=False, errors=(400, 401, 503), response_types=("text/event-stream",),
                      query={"last_event_id": "Resume after this event id (the Last-Event-ID header wins)."})}

    def __init__(self, store: Store, feed: Feed, settings: EventsSettings, server_threads: int) -> None:
        self.store, self.feed, self.settings = store, feed, settings
        self.slots = _Slots(min(settings.max_streams, max(1, server_threads // 2)))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        position = _position(req)
        actor: Actor = req.context.actor
        if not self.slots.take():
            raise ApiError(503, f"too many event streams are open ({self.slots.limit}); try again later",
                           headers={"Retry-After": "5"})
        resp.content_type = "text/event-stream; charset=utf-8"
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("X-Accel-Buffering", "no")  # nginx: do not buffer the stream
        resp.stream = _Body(self._stream(actor, position), self.slots)

    # ------------------------------------------------------------- the stream

    def _stream(self, actor: Actor, position: int | None) -> Iterator[bytes]:
        yield f"retry: {RETRY_MS}\n\n".encode()
        head = self.feed.head()
        with self.store.read() as session:
            pruned = feed_rows.cursor(session, feed_rows.PRUNED)
        cursor = head if position is None else position
        if position is not None and (position < pruned or position > head):
            yield sse("reset", {"reason": "the resume point is no longer in the feed; reload"})
            cursor = head
        yield sse("ready", {"last_event_id": cursor}, cursor)
        heartbeat = self.settings.heartbeat_seconds
        next_beat = time.monotonic() + heartbeat
        while not self.feed.stopping:
            wait = max(0.0, min(MAX_WAIT_SECONDS, next_beat - time.monotonic()))
            head = self.feed.wait(cursor, wait)
            if head > cursor and not self.feed.stopping:
                chunks, cursor = self._batch(actor, cursor)
                yield from chunks
            if time.monotonic() >= next_beat:
                yield b": heartbeat\n\n"
                next_beat = time.monotonic() + heartbeat
                refreshed = self._still_allowed(actor)
                if refreshed is None:
                    return
                actor = refreshed

    def _still_allowed(self, actor: Actor) -> Actor | None:
        """The user may have been deleted or their role changed since the stream opened."""
        with self.store.read() as session:
            user = session.get(User, actor.user_id) if actor.user_id else None
            if user is None:
                return None
            return Actor(user_id=user.id, role=user.role, ip_address=actor.ip_address)

    def _batch(self, actor: Actor, cursor: int) -> tuple[list[bytes], int]:
        owner = None if actor.is_admin else actor.user_id
        with self.store.read() as session:
            rows = feed_rows.read_after(session, cursor, BATCH, owner_id=owner or None)
            if not rows:
                return [], max(cursor, self.feed.head())
            selected = _coalesce(rows)
            vm_ids = {row.vm_id for row in selected if row.kind != events.VM_DELETED and row.vm_id}
            query = select(VirtualMachine).where(VirtualMachine.id.in_(vm_ids))
            if owner:
                query = query.where(VirtualMachine.owner_id == owner)
            found = {vm.id: vm for vm in session.scalars(query)} if vm_ids else {}
            chunks: list[bytes] = []
            for row in selected:
                if row.kind == events.VM_DELETED:
                    chunks.append(sse("vm_deleted", {"id": row.vm_id}, row.seq))
                elif row.kind == events.STATS:
                    sample = stats.latest(session, stats.preferred_source(session))
                    if sample is not None:
                        chunks.append(sse("stats", stats_dict(sample), row.seq))
                elif row.vm_id in found:
                    chunks.append(sse("vm", vm_dict(found[row.vm_id]), row.seq))
        return chunks, rows[-1].seq


def _coalesce(rows: list[Event]) -> list[Event]:
    """The rows to send: per VM (and for stats) only the newest, in feed order."""
    kept: list[Event] = []
    seen: set[tuple[str, str | None]] = set()
    for row in reversed(rows):
        if row.kind == events.STATS:
            key: tuple[str, str | None] = ("stats", None)
        elif row.kind == events.VM_DELETED:
            key = ("vm_deleted", row.vm_id)
        elif row.vm_id:
            key = ("vm", row.vm_id)
        else:
            continue
        if key not in seen:
            seen.add(key)
            kept.append(row)
    kept.reverse()
    return kept
