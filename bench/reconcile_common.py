"""Shared set-up for the reconciler benchmarks: a fakepve served in-process, a store, a reconciler, counters.

Each scenario module (reconcile_bulk, reconcile_latency, reconcile_idle) exposes `run(...) -> list[Row]`
and a `python -m bench.<module>` entry. Nothing here is imported by the product. The reconciler logs at
WARNING here (`quiet_logs`): its INFO lines, one or more per VM, would bury the table.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from fakepve.certs import make_cert
from fakepve.server import FakePve
from sqlalchemy import event

from controller import users
from controller.actor import Actor
from controller.config import ControllerSettings, ProxmoxSettings
from controller.log import configure_logging
from controller.proxmox.client import ProxmoxClient
from controller.reconcile.loop import LoopSettings, Reconciler
from controller.reconcile.model import Policy
from controller.store import Store

HOST = "127.0.0.1"


class Row(NamedTuple):
    """One line of the benchmark table."""

    figure: str
    target: str
    measured: str
    met: bool


def print_rows(rows: list[Row]) -> None:
    width = max(len(row.figure) for row in rows)
    for row in rows:
        print(f"{row.figure:<{width}}  target {row.target:<14} measured {row.measured:<22} "
              f"{'met' if row.met else 'NOT MET'}")


class ServedFake:
    """A FakePve on its own event loop in a daemon thread (as fakepve's pytest plugin serves it)."""

    def __init__(self, time_scale: float = 0.0, latency: float = 0.0) -> None:
        self.dir = tempfile.mkdtemp(prefix="pvem-bench-fakepve-")
        self.cafile, keyfile, _der = make_cert(self.dir, hosts=(HOST,))
        self.pve = FakePve(host=HOST, port=0)
        self.pve.time_scale = time_scale
        self.pve.max_requests = 10_000_000
        if latency:
            self.pve.slow_network(latency)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-fakepve", daemon=True)
        self.thread.start()
        self.call(self.pve.start(self.cafile, keyfile))

    def call(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def port(self) -> int:
        return int(self.pve.port)

    def settings(self, **extra: Any) -> ProxmoxSettings:
        return ProxmoxSettings(host=HOST, port=self.port, user="root@pam", password="secret",
                               ca_file=self.cafile, timeout_seconds=30, default_node="pve1", **extra)

    def stop(self) -> None:
        try:
            self.call(self.pve.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def _serve_in_child(conn: Any, time_scale: float, latency: float, guests: list[dict[str, Any]]) -> None:
    fake = ServedFake(time_scale=time_scale, latency=latency)
    for guest in guests:
        fake.pve.add_vm(**guest)
    arrivals: list[tuple[float, str, str]] = []
    record = fake.pve._record

    def timed_record(request: Any, body: Any) -> None:
        arrivals.append((time.monotonic(), request.method, request.path))  # CLOCK_MONOTONIC: system-wide
        record(request, body)

    fake.pve._record = timed_record
    conn.send((fake.port, fake.cafile))
    while True:
        message = conn.recv()
        if message == "requests":
            conn.send([(method, path) for method, path, _body in fake.pve.requests])
        elif isinstance(message, tuple) and message[0] == "arrivals":
            conn.send(arrivals[message[1]:])
        else:
            fake.stop()
            conn.send("stopped")
            return


class ChildFake:
    """A FakePve in a child process, so that its CPU and GIL are not the measured process's (as with a real
    Proxmox). `requests()` fetches what it was asked, as (method, path)."""

    def __init__(self, time_scale: float = 0.0, latency: float = 0.0,
                 guests: list[dict[str, Any]] | None = None) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._proc = context.Process(target=_serve_in_child, args=(child, time_scale, latency, guests or []),
                                     daemon=True)
        self._proc.start()
        if not self._conn.poll(120):
            self._proc.kill()
            raise TimeoutError("fakepve child did not start")
        self._port, self.cafile = self._conn.recv()

    @property
    def port(self) -> int:
        return int(self._port)

    def settings(self, **extra: Any) -> ProxmoxSettings:
        return ProxmoxSettings(host=HOST, port=self.port, user="root@pam", password="secret",
                               ca_file=self.cafile, timeout_seconds=30, default_node="pve1", **extra)

    def requests(self) -> list[tuple[str, str]]:
        self._conn.send("requests")
        return list(self._conn.recv())

    def arrivals(self, since: int = 0) -> list[tuple[float, str, str]]:
        """The requests from the `since`-th on, as (time.monotonic() when it arrived, method, path)."""
        self._conn.send(("arrivals", since))
        return list(self._conn.recv())

    def stop(self) -> None:
        try:
            self._conn.send("stop")
            self._conn.poll(30)
        finally:
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()


class SqlCounter:
    """Counts SQL statements sent on an engine (SQLAlchemy's before_cursor_execute)."""

    def __init__(self, store: Store) -> None:
        self.count = 0
        self._lock = threading.Lock()
        event.listen(store.engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: Any) -> None:
        with self._lock:
            self.count += 1


@dataclass
class World:
    store: Store
    actor: Actor
    tmp: str

    def close(self) -> None:
        self.store.dispose()


@contextmanager
def world() -> Iterator[World]:
    """A fresh store (SQLite in a temporary directory, or PVEM_BENCH_DATABASE_URL) with one admin."""
    tmp = tempfile.mkdtemp(prefix="pvem-bench-")
    url = os.environ.get("PVEM_BENCH_DATABASE_URL") or f"sqlite:///{tmp}/pvem.db"
    store = Store(url)
    store.upgrade()
    with store.write() as session:
        admin = users.ensure_admin(session, users.Passwords(1, 64), "bench@example.com", "bench-password")
        actor = Actor(user_id=admin.id, role="admin")
    made = World(store, actor, tmp)
    try:
        yield made
    finally:
        made.close()


def quiet_logs() -> None:
    """Warnings and errors only, on stderr (the process-wide configuration `pvem controller` also uses)."""
    configure_logging(fmt="console", level="WARNING")


def reconciler(store: Store, fake: ServedFake | ChildFake, **overrides: Any) -> Reconciler:
    """A reconciler with the defaults `pvem controller` would use (controller.config), unless overridden;
    logging at WARNING (`quiet_logs`)."""
    quiet_logs()
    ctl = ControllerSettings()
    settings = fake.settings()
    loop = LoopSettings(workers=ctl.workers, per_node=ctl.per_node_workers, backoff_max=ctl.backoff_max_seconds,
                        error_retry_seconds=ctl.error_retry_seconds, resync_seconds=ctl.resync_interval_seconds,
                        pass_interval=ctl.reconcile_interval_seconds)
    for key, value in overrides.items():
        setattr(loop, key, value)
    return Reconciler(store, ProxmoxClient(settings), Policy(shutdown_timeout=ctl.shutdown_timeout_seconds), loop,
                      settings.storage, settings.bridge, (settings.vmid_min, settings.vmid_max))


def wait_until(condition: Callable[[], bool], timeout: float, what: str, step: float = 0.02) -> float:
    """Poll until condition() holds; the seconds it took. TimeoutError past `timeout` (every scenario is bounded)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what}: not done after {timeout:g} s")
        time.sleep(step)
    return time.monotonic() - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]
