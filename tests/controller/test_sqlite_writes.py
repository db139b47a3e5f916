"""SQLite's one writer at a time (controller/store/sqlite_writes.py): writers of several processes queue
on the write lock instead of failing, and the WAL is checkpointed in the background, not in a commit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from controller.store import Store, sqlite_writes
from controller.store.models import AuditLog, User
from controller.store.sqlite_writes import SAFETY_AUTOCHECKPOINT_PAGES

WRITER = textwrap.dedent("""
    import sys
    from controller.store import Store
    from controller.store.models import User
    store = Store(sys.argv[1])
    for n in range(int(sys.argv[3])):
        with store.write() as session:
            session.add(User(username=f"{sys.argv[2]}-{n}", email=f"{sys.argv[2]}-{n}@example.com",
                             password_hash="x"))
    store.dispose()
    print("done")
""")


@pytest.fixture
def sqlite_file(fresh_database_url: str, backend_of_fresh: str) -> str:
    if backend_of_fresh != "sqlite":
        pytest.skip("SQLite's write discipline (PostgreSQL has row locks)")
    store = Store(fresh_database_url)
    store.upgrade()
    store.dispose()
    return fresh_database_url


@pytest.fixture
def backend_of_fresh(fresh_database_url: str) -> str:
    return fresh_database_url.split(":", 1)[0].split("+", 1)[0]


def test_writers_in_several_processes_all_commit(sqlite_file: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, sqlite_file, f"p{index}", "150"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for index in range(4)]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, outputs
    store = Store(sqlite_file)
    try:
        with store.read() as session:
            assert session.scalar(select(func.count()).select_from(User)) == 600
    finally:
        store.dispose()


def test_the_wal_is_copied_into_the_database_in_the_background(sqlite_file: str) -> None:
    database = Path(sqlite_file.removeprefix("sqlite:///"))
    store = Store(sqlite_file)
    try:
        before = database.stat().st_size
        details = {"blob": "x" * 3000}  # about a page per record
        for _batch in range(30):
            with store.write() as session:
                session.add_all([AuditLog(action="bench", resource_type="test", details=details)
                                 for _ in range(40)])
        wal = database.with_name(database.name + "-wal")
        assert wal.stat().st_size < SAFETY_AUTOCHECKPOINT_PAGES * 4096  # SQLite itself would not checkpoint yet
        deadline = time.monotonic() + 10
        while database.stat().st_size < before + 3_000_000 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert database.stat().st_size >= before + 3_000_000  # 1,200 records reached the database file
        with store.read() as session:
            assert session.scalar(select(func.count()).select_from(AuditLog)) == 1200
    finally:
        store.dispose()


def test_the_wal_starts_over_although_readers_never_stop(sqlite_file: str, monkeypatch) -> None:
    monkeypatch.setattr(sqlite_writes, "RESTART_FRAMES", 200)  # start over past 200 frames (800 KB)
    database = Path(sqlite_file.removeprefix("sqlite:///"))
    store = Store(sqlite_file)
    stop = threading.Event()

    def read() -> None:  # as every API request does (authentication): a read all the time
        while not stop.is_set():
            with store.connect() as conn:
                conn.execute(select(func.count()).select_from(User)).scalar()
            time.sleep(0.0005)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    wal = database.with_name(database.name + "-wal")
    try:
        details = {"blob": "x" * 3000}
        deadline = time.monotonic() + 30
        for _batch in range(60):  # ~2,400 pages in all, over about three seconds
            with store.write() as session:
                session.add_all([AuditLog(action="bench", resource_type="test", details=details)
                                 for _ in range(40)])
            time.sleep(0.05)
            assert time.monotonic() < deadline
        largest = wal.stat().st_size
    finally:
        stop.set()
        for reader in readers:
            reader.join(10)
        store.dispose()
    assert largest < 1200 * 4096  # never the 2,400 pages it would hold if it never started over
