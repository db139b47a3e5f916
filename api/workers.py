"""API worker processes: with `server.workers: N`, N processes answer on one listening socket.

CPython runs one thread at a time per process, so an API process uses about one core however many
threads it has. With N workers, the `pvem serve` process (worker 0: the API, and the controller in mode
`all`) binds the socket, then starts N-1 API-only processes (`python -m api.workers`) that accept on
the same socket; the kernel spreads connections over them.

A child gets its settings through a pipe (pickled: secrets never reach argv or the environment), sends
its nudges back through another pipe (worker 0 hands them to its controller; on PostgreSQL NOTIFY also
reaches every controller), stops when the parent is gone, and is restarted if it dies.

Connections are balanced (`Balance`): keep-alive clients hold a connection for many requests, and a
shared accept queue left them split 13/3 as often as 8/8 (the busier worker then set the latency). Each
worker publishes its open connection count in a small shared map and accepts only while it is not
ahead of the least loaded live worker, so the least loaded one takes the next connection. What is kept per
process: the HTTP metrics on /metrics (a scrape sees the worker that answered), the cap on open event
streams, and this process's feed wake-ups (other workers' changes reach a stream by the feed's poll).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from controller.config import Settings
from controller.log import get_logger

log = get_logger("pvem.workers")

RESTART_DELAY_SECONDS = 1.0  # a worker that exits is started again after this (no tight crash loop)
STOP_TIMEOUT_SECONDS = 10.0
PARENT_CHECK_SECONDS = 1.0


def listening_socket(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """The socket every worker accepts on (bound here, inherited by the children)."""
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(info[0], info[1], info[2])
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as waitress does
    sock.bind(info[4])
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


READY = b"\x00ready"  # a child's first line on its nudge pipe: it is accepting connections
_SLOT = struct.Struct("<Id")  # open connections, time.monotonic() of the last update
MAX_WORKERS = 64
ALIVE_SECONDS = 3.0  # a worker silent for longer (dead, stopped) is left out of the comparison


class Balance:
    """Open connections per worker, in a shared anonymous file (inherited by the children)."""

    def __init__(self, fd: int | None = None) -> None:
        if fd is None:
            fd = os.memfd_create("pvem-workers", 0) if hasattr(os, "memfd_create") else _temp_fd()
            os.ftruncate(fd, _SLOT.size * MAX_WORKERS)
        os.set_inheritable(fd, True)
        self.fd = fd
        self._map = mmap.mmap(fd, _SLOT.size * MAX_WORKERS)

    def publish(self, index: int, connections: int, now: float) -> None:
        _SLOT.pack_into(self._map, index * _SLOT.size, connections, now)

    def may_accept(self, index: int, connections: int) -> bool:
        """Whether worker `index` (with `connections` open) should take the next connection."""
        now = time.monotonic()
        self.publish(index, connections, now)
        for other in range(MAX_WORKERS):
            if other == index:
                continue
            count, seen = _SLOT.unpack_from(self._map, other * _SLOT.size)
            if seen and now - seen < ALIVE_SECONDS and count < connections:
                return False
        return True

    def install(self, server: Any, index: int) -> None:
        """Make waitress `server` accept only while `may_accept` (its own checks still apply first)."""
        readable = server.readable
        overhead = len(server._map)  # the listening socket and the trigger: not connections

        def balanced_readable() -> bool:
            return bool(readable()) and self.may_accept(index, len(server._map) - overhead)

        server.readable = balanced_readable


def _temp_fd() -> int:
    """An unlinked temporary file's descriptor (where memfd_create is missing)."""
    import tempfile

    with tempfile.TemporaryFile() as handle:
        return os.dup(handle.fileno())


class _Child:
    def __init__(self, index: int) -> None:
        self.index = index
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.ready = threading.Event()


class Workers:
    """Worker 0's side: starts, watches, restarts and stops the other API processes."""

    def __init__(self, settings: Settings, sock: socket.socket, nudge: Callable[[str], None] | None,
                 module: str = "api.workers") -> None:
        """`module`: what a child runs (`python -m module FD NUDGE_FD INDEX BALANCE_FD`); its main calls
        child_main. Call `balance.install(server, 0)` on worker 0's own server."""
        self.settings, self.sock, self.nudge, self.module = settings, sock, nudge, module
        self.balance = Balance()
        self.children = [_Child(index) for index in range(1, settings.server.workers)]
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        for child in self.children:
            self._spawn(child)
        self._watcher = threading.Thread(target=self._watch, name="api-workers", daemon=True)
        self._watcher.start()

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Wait until every worker accepts connections (until then worker 0 would take them all)."""
        deadline = time.monotonic() + timeout
        return all(child.ready.wait(max(0.0, deadline - time.monotonic())) for child in self.children)

    def _spawn(self, child: _Child) -> None:
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)  # a child never waits on its nudges: the poll is the safety net
        argv = [sys.executable, "-m", self.module, str(self.sock.fileno()), str(write_end), str(child.index),
                str(self.balance.fd)]
        process = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                   pass_fds=(self.sock.fileno(), write_end, self.balance.fd))
        os.close(write_end)
        assert process.stdin is not None
        try:
            process.stdin.write(pickle.dumps(portable(self.settings)))
            process.stdin.close()
        except OSError:
            pass  # it died at once: the watcher logs and restarts it
        child.process, child.started = process, time.monotonic()
        child.ready.clear()
        threading.Thread(target=self._relay, args=(read_end, child), name=f"api-worker-{child.index}-nudges",
                         daemon=True).start()
        log.info("api_worker_started", worker=child.index, pid=process.pid)

    def _relay(self, fd: int, child: _Child | None = None) -> None:
        """Nudges a child sent (one VM id per line), to this process's controller, until the child ends."""
        buffer = b""
        try:
            while chunk := os.read(fd, 65536):
                *lines, buffer = (buffer + chunk).split(b"\n")
                for line in lines:
                    if line == READY:
                        if child is not None:
                            child.ready.set()
                    elif line and self.nudge is not None:
                        self.nudge(line.decode(errors="replace"))
        except OSError:
            pass
        finally:
            os.close(fd)

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            for child in self.children:
                process = child.process
                if process is None or process.poll() is None:
                    continue
                if self._stopping.is_set():
                    return
                log.warning("api_worker_exited", worker=child.index, pid=process.pid, code=process.returncode)
                if time.monotonic() - child.started < RESTART_DELAY_SECONDS:
                    self._stopping.wait(RESTART_DELAY_SECONDS)
                if not self._stopping.is_set():
                    self._spawn(child)

    def stop(self) -> None:
        self._stopping.set()
        processes = [child.process for child in self.children if child.process is not None]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for process in processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def portable(settings: Settings) -> Settings:
    """The same settings as a plain `Settings` (load_settings answers a subclass local to it, which
    pickle cannot name); no validation runs again, so the child sees exactly these values."""
    return Settings.model_construct(**{name: getattr(settings, name) for name in Settings.model_fields})


def pipe_nudge(fd: int) -> Callable[[str], None]:
    """A child's local nudge: one line to worker 0 (dropped if the pipe is full or gone)."""

    def nudge(vm_id: str) -> None:
        with contextlib.suppress(OSError):
            os.write(fd, vm_id.encode() + b"\n")

    return nudge


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(PARENT_CHECK_SECONDS)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)
            return


def child_main(argv: list[str], extend: Callable[[Any, Any, Settings], None] | None = None) -> int:
    """A worker process: the API on the inherited socket until SIGTERM (or the parent's end).
    `extend(app, store, settings)` may add routes (bench/ mounts its reference endpoints)."""
    from api.server import build_api, create_server
    from controller.events.feed import Feed
    from controller.log import configure_logging
    from controller.store import Store
    from controller.users import Passwords

    listen_fd, nudge_fd, index, balance_fd = (int(value) for value in argv[:4])
    settings: Settings = pickle.loads(sys.stdin.buffer.read())
    configure_logging(settings.logging.format, settings.logging.level)
    store = Store(settings.database.url, echo=settings.database.echo)
    passwords = Passwords(settings.auth.argon2_time_cost, settings.auth.argon2_memory_kib)
    feed = Feed(store, settings.events.poll_seconds)
    app = build_api(settings, store, passwords, feed, controller=None, local_nudge=pipe_nudge(nudge_fd))
    if extend is not None:
        extend(app, store, settings)
    server = create_server(app, settings, sock=socket.socket(fileno=listen_fd))
    Balance(balance_fd).install(server, index)

    def stop(signum: int, frame: FrameType | None) -> None:
        feed.halt()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: worker 0 stops us
    threading.Thread(target=_watch_parent, args=(os.getppid(),), name="parent-watch", daemon=True).start()
    log.info("api_worker_listening", worker=index, pid=os.getpid())
    with contextlib.suppress(OSError):
        os.write(nudge_fd, READY + b"\n")
    try:
        server.run()
    except SystemExit:
        pass
    finally:
        feed.stop()
        server.close()
        server.task_dispatcher.shutdown()
        store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
