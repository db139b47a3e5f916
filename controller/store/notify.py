"""Nudges across processes: PostgreSQL `NOTIFY` from the API, `LISTEN` in the controller.

An API replica writes a spec change, commits, then sends `NOTIFY pvem_nudge, '<vm id>'`; every
controller listening on that database (the leader acts, standbys only queue) nudges that VM at once.
A lost notification costs nothing but time: the controller's one-second database poll still finds
every generation that moved. SQLite has no such channel: the poll is the path there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import text

from controller.log import get_logger
from controller.store.db import Store

log = get_logger("pvem.nudges")

CHANNEL = "pvem_nudge"


def supported(store: Store) -> bool:
    return store.dialect == "postgresql"


def send(store: Store, vm_id: str) -> None:
    """NOTIFY the controllers (call after the write committed). Never raises: the poll is the safety net."""
    try:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": vm_id})
            conn.commit()
    except Exception as exc:
        log.warning("nudge_notify_failed", vm_id=vm_id, error=str(exc).splitlines()[0] if str(exc) else repr(exc))


def sender(store: Store, local: Callable[[str], None] | None = None) -> Callable[[str], None]:
    """The API's nudge: the in-process controller's (if any), then NOTIFY on PostgreSQL."""
    notify = supported(store)

    def nudge(vm_id: str) -> None:
        if local is not None:
            local(vm_id)
        if notify:
            send(store, vm_id)

    return nudge


class Listener:
    """A thread on a dedicated psycopg connection: LISTEN, and call `on_nudge(vm_id)` per notification.
    Reconnects (with a pause) when the connection drops."""

    def __init__(self, store: Store, on_nudge: Callable[[str], None], reconnect_seconds: float = 2.0) -> None:
        self.conninfo = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.on_nudge = on_nudge
        self.reconnect_seconds = reconnect_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()  # set while LISTEN is in place (tests wait on it)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="nudge-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=0.5):
                            if notice.payload:
                                self.on_nudge(notice.payload)
            except Exception as exc:
                self.listening.clear()
                if self._stop.is_set():
                    return
                log.warning("nudge_listener_reconnecting", error=str(exc).splitlines()[0] if str(exc) else repr(exc))
                self._stop.wait(self.reconnect_seconds)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
