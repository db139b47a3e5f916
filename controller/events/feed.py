"""Reading the feed: rows after a cursor, pruning, and `Feed`, which wakes waiters when rows commit.

A `Feed` per process runs one thread that learns the newest `seq`: on PostgreSQL it LISTENs on
`pvem_events` over its own psycopg connection (woken at each committing writer's NOTIFY, whichever
process wrote) and polls every few seconds as a safety net; on SQLite (or when LISTEN fails) it polls
every `events.poll_seconds`. Readers then query the rows they may see; nothing here is per-client.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from controller.events import kinds
from controller.events.hooks import CHANNEL, on_local_commit
from controller.log import get_logger
from controller.store import Store
from controller.store.models import Event, FeedCursor, WebhookDelivery, utcnow

log = get_logger("pvem.events")

PRUNED = "pruned"
LISTEN_SAFETY_FACTOR = 5  # with LISTEN, poll this many times less often
LISTEN_RETRY_SECONDS = 30.0


def latest_seq(session: Session) -> int:
    return int(session.scalar(select(func.max(Event.seq))) or 0)


def cursor(session: Session, name: str) -> int:
    return int(session.scalar(select(FeedCursor.seq).where(FeedCursor.name == name)) or 0)


def read_after(session: Session, after: int, limit: int = 500, owner_id: str | None = None) -> list[Event]:
    """Feed rows with seq > after, oldest first; with `owner_id`, only that owner's (and stats)."""
    query = select(Event).where(Event.seq > after).order_by(Event.seq).limit(limit)
    if owner_id is not None:
        query = query.where(or_(Event.owner_id == owner_id, Event.kind == kinds.STATS))
    return list(session.scalars(query))


def set_cursor(session: Session, name: str, seq: int) -> None:
    row = session.get(FeedCursor, name)
    if row is None:
        session.add(FeedCursor(name=name, seq=seq))
    else:
        row.seq = max(row.seq, seq)


def prune(session: Session, retention_minutes: int, delivery_retention_hours: int) -> int:
    """Drop feed rows older than the retention (remembering how far), and old finished deliveries."""
    now = utcnow()
    cutoff = now - timedelta(minutes=retention_minutes)
    highest = session.scalar(select(func.max(Event.seq)).where(Event.created_at < cutoff))
    if highest is not None:
        set_cursor(session, PRUNED, int(highest))
        session.execute(delete(Event).where(Event.seq <= highest))
    session.execute(delete(WebhookDelivery).where(
        WebhookDelivery.status != "pending",
        WebhookDelivery.created_at < now - timedelta(hours=delivery_retention_hours)))
    return int(highest or 0)


class Feed:
    """This process's view of the feed's head. Thread-safe; its thread starts with the first waiter."""

    def __init__(self, store: Store, poll_seconds: float = 0.5) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self._cond = threading.Condition()
        self._head: int | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._poked = threading.Event()
        self.listening = False
        on_local_commit(self)

    def poke(self) -> None:
        """A commit in this process wrote events: look now."""
        self._poked.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def head(self) -> int:
        """The newest seq this process knows of (read now if the feed thread is not running yet)."""
        self._ensure_started()
        with self._cond:
            if self._head is not None:
                return self._head
        return self._refresh()

    def wait(self, after: int, timeout: float) -> int:
        """Block until the head passes `after`, the timeout ends or the feed stops; return the head."""
        self._ensure_started()
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._stopping.is_set():
                if self._head is not None and self._head > after:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._head if self._head is not None else after

    def halt(self) -> None:
        """Wake every waiter to end (safe in a signal handler: never blocks for long)."""
        self._stopping.set()
        self._poked.set()
        if self._cond.acquire(timeout=0.2):
            try:
                self._cond.notify_all()
            finally:
                self._cond.release()

    def stop(self) -> None:
        self.halt()
        if self._thread is not None:
            self._thread.join(timeout=2)

    # ----------------------------------------------------------- internals

    def _ensure_started(self) -> None:
        if self._thread is not None or self._stopping.is_set():
            return
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="event-feed", daemon=True)
                self._thread.start()

    def _refresh(self) -> int:
        with self.store.read() as session:
            head = latest_seq(session)
        with self._cond:
            if self._head is None or head != self._head:
                self._head = head
                self._cond.notify_all()
        return head

    def _run(self) -> None:
        postgres = self.store.engine.dialect.name == "postgresql"
        while not self._stopping.is_set():
            if postgres:
                try:
                    self._listen()
                except Exception as exc:  # LISTEN is an optimisation: fall back to the poll for a while
                    self.listening = False
                    log.warning("event_listen_failed", error=str(exc), retry_in=LISTEN_RETRY_SECONDS)
                    self._poll(until=time.monotonic() + LISTEN_RETRY_SECONDS)
            else:
                self._poll(until=None)

    def _poll(self, until: float | None) -> None:
        while not self._stopping.is_set() and (until is None or time.monotonic() < until):
            try:
                self._refresh()
            except Exception as exc:
                log.warning("event_poll_failed", error=str(exc))
            self._poked.wait(self.poll_seconds)
            self._poked.clear()

    def _listen(self) -> None:
        import psycopg

        conninfo = self.store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self.listening = True
            safety = self.poll_seconds * LISTEN_SAFETY_FACTOR
            while not self._stopping.is_set():
                self._refresh()
                notified: Any = conn.notifies(timeout=safety, stop_after=1)
                for _notification in notified:
                    pass
