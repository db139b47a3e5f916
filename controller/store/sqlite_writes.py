"""SQLite's one writer at a time, kept off the latency path: the write lock and the WAL checkpointer.

SQLite lets one connection write at a time. Writers that find the database locked wait in its busy
handler, which polls with sleeps of up to 100 ms (POST /api/vms p99 was 800 ms at 16 clients). So a
writer first takes `WriteLock`: threads of this process queue on a lock, and processes on one machine
(API workers, `pvem controller`, the CLI) queue on an `flock` of `<database>.write-lock`. After the
busy timeout a writer goes ahead anyway and lets SQLite arbitrate, as before.

The checkpoint that copies the WAL back into the database file (and fsyncs both) would otherwise run
inside whichever commit pushed the WAL past 1,000 pages, holding every other writer for that long.
`Checkpointer` runs it in a background thread instead: a PASSIVE checkpoint, without the write lock,
copies the bulk. A writer only starts the WAL over when, as it begins, everything is copied and no
reader still reads WAL frames; with readers all the time (every request authenticates) that moment
never came and the WAL grew to the safety limit (80 MB, slower lookups in its index). So once the WAL
passes 4,000 frames (16 MB), a RESTART checkpoint under the write lock copies the few frames left and
waits (at most 20 ms) for readers of old frames to finish: the next writer then starts from the top.
SQLite's own automatic checkpoint stays on, with a high threshold, as a net.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
import weakref

from controller.log import get_logger

log = get_logger("pvem.store")

SQLITE_BUSY_TIMEOUT_MS = 10_000
# Pages the WAL may hold before a commit checkpoints it itself (the background thread normally keeps it
# far below; SQLite's default is 1,000).
SAFETY_AUTOCHECKPOINT_PAGES = 20_000
CHECKPOINT_INTERVAL_SECONDS = 0.5
RESTART_FRAMES = 4_000  # about 16 MB of WAL
RESTART_BUSY_MS = 20
# Waiting for another process's writer: poll the lock file every 0.1 ms for the first 20 ms (a batch of
# creates holds it a few ms; polling every 0.5 ms left it idle between two API workers' batches), then
# every millisecond until the busy timeout.
_FAST_POLL_SECONDS, _FAST_POLL_FOR_SECONDS, _SLOW_POLL_SECONDS = 0.0001, 0.02, 0.001


class WriteLock:
    """One writer at a time across the threads of this process and, for a database file, its processes.

    Re-entrant within a thread (an inner `write()` only counts). `acquire` answers whether the lock is
    held (False after `timeout`: the caller goes ahead and SQLite's busy handler decides)."""

    def __init__(self, database: str | None) -> None:
        self._threads = threading.RLock()
        self._depth = 0
        self._path = f"{database}.write-lock" if database else None
        self._fd: int | None = None
        self._fd_pid: int | None = None

    def acquire(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if not self._threads.acquire(timeout=timeout):
            return False
        if self._depth == 0 and self._path is not None and not self._lock_file(deadline):
            self._threads.release()
            return False
        self._depth += 1
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def _lock_file(self, deadline: float) -> bool:
        fd = self._file()
        if fd is None:
            return True  # no lock file possible (read-only directory): threads are still serialised
        fast_until = time.monotonic() + _FAST_POLL_FOR_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                now = time.monotonic()
                if now >= deadline:
                    return False
                # Only one thread per process polls (the others wait on the thread lock), so this costs
                # little; a blocking flock could not give up at the busy timeout.
                time.sleep(_FAST_POLL_SECONDS if now < fast_until else _SLOW_POLL_SECONDS)

    def _file(self) -> int | None:
        if self._fd is not None and self._fd_pid == os.getpid():
            return self._fd
        assert self._path is not None
        try:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            log.warning("write_lock_file_unavailable", path=self._path, error=exc.strerror or str(exc))
            self._path = None
            return None
        self._fd_pid = os.getpid()
        return self._fd

    def close(self) -> None:
        if self._fd is not None and self._fd_pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None


class Checkpointer:
    """A daemon thread that checkpoints the WAL every half second after writes committed, on a SQLite
    connection of its own (none of the pool's: requests never wait for it)."""

    def __init__(self, database: str, write_lock: WriteLock | None = None) -> None:
        self.database = database
        self.write_lock = write_lock
        self._connection: sqlite3.Connection | None = None
        self._connection_lock = threading.Lock()
        self._wrote = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = threading.Lock()

    def wrote(self) -> None:
        """Called after each write transaction: starts the thread on the first, then marks work."""
        if self._thread is None:
            with self._started:
                if self._thread is None and not self._stopping.is_set():
                    # The thread holds the checkpointer weakly: a Store dropped without dispose() ends it.
                    self._thread = threading.Thread(target=_run, args=(weakref.ref(self), self._stopping,
                                                                       self._wrote),
                                                    name="sqlite-checkpoint", daemon=True)
                    self._thread.start()
        self._wrote.set()

    def checkpoint(self) -> tuple[int, int, int] | None:
        """Copy the WAL into the database: (busy, WAL frames, frames checkpointed) of the last pass."""
        result = self._checkpoint("PASSIVE")
        lock = self.write_lock
        if (result is not None and result[1] >= RESTART_FRAMES and lock is not None
                and lock.acquire(timeout=1.0)):  # no writer adds frames meanwhile
            try:
                result = self._checkpoint("RESTART", busy_ms=RESTART_BUSY_MS)
            finally:
                lock.release()
        return result

    def _checkpoint(self, mode: str, busy_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> tuple[int, int, int] | None:
        with self._connection_lock:
            if self._connection is None:
                self._connection = sqlite3.connect(self.database, isolation_level=None, check_same_thread=False)
            connection = self._connection
            connection.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
            row = connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        return (int(row[0]), int(row[1]), int(row[2])) if row else None

    def _close(self) -> None:
        with self._connection_lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def stop(self) -> None:
        self._stopping.set()
        self._wrote.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        self._close()


def _run(ref: weakref.ref[Checkpointer], stopping: threading.Event, wrote: threading.Event) -> None:
    while not stopping.is_set():
        if not wrote.wait(CHECKPOINT_INTERVAL_SECONDS):
            if ref() is None:
                return
            continue
        wrote.clear()
        checkpointer = ref()
        if checkpointer is None:
            return
        try:
            checkpointer.checkpoint()
        except Exception as exc:  # the commit-time automatic checkpoint is still there as a net
            log.warning("wal_checkpoint_failed", error=str(exc).splitlines()[0] if str(exc) else repr(exc))
        del checkpointer
        stopping.wait(CHECKPOINT_INTERVAL_SECONDS)
