"""The database handle: engine set-up, one session per request or reconcile pass, and migrations.

SQLite (the default) runs in WAL mode with a busy timeout. Its deferred transactions can fail with
"database is locked" when two readers both try to upgrade to writers, so sessions that write begin
with `BEGIN IMMEDIATE` (`Store.write()`), which waits on the busy timeout instead; writers queue on a
lock first and the WAL is checkpointed in the background (`sqlite_writes`). Everything else is
portable SQL; on PostgreSQL row locks (`SELECT ... FOR UPDATE`) and the unique constraints do the
arbitration. A unique or foreign-key violation that reaches the end of `write()` becomes a domain
`Conflict` (HTTP 409), never a 500.

Migrations run under a database-wide lock (a PostgreSQL advisory lock; on SQLite an exclusive lock
file next to the database), so any number of processes may start, or run `pvem db upgrade`, at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from controller.errors import Conflict
from controller.store.sqlite_writes import (
    SAFETY_AUTOCHECKPOINT_PAGES,
    SQLITE_BUSY_TIMEOUT_MS,
    Checkpointer,
    WriteLock,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# pg_advisory_lock key held while Alembic runs ("pvmg" in ASCII; any constant unique to pvem).
MIGRATION_LOCK_KEY = 0x70766D67
# What a unique constraint's violation means to a client (the rest get a generic message).
CONSTRAINT_MESSAGES = {
    "uq_vm_owner_name": "a virtual machine with this name already exists",
    "uq_snapshot_vm_name": "a snapshot with this name already exists on this virtual machine",
    "uq_firewall_rules_vm_position": "another change to this virtual machine's firewall rules won; try again",
    "username": "this username is already taken",
    "email": "this email is already registered",
    "vmid": "could not reserve a vmid; try again",
}


def conflict_from(exc: IntegrityError) -> Conflict:
    """A domain Conflict for a constraint violation, worded by the constraint (or column) it names."""
    text_ = str(exc.orig)
    for key, message in CONSTRAINT_MESSAGES.items():
        if key in text_:
            return Conflict(message)
    return Conflict("the change conflicts with the current state (a concurrent write won); try again")


SINGLE_READ = "pvem_single_read"  # execution option: the connection only runs single-statement reads


def make_engine(url: str, echo: bool = False) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, echo=echo, pool_pre_ping=True, future=True)

    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        private_database_files(Path(database))
    engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own handling is wrong for us).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute(f"PRAGMA wal_autocheckpoint={SAFETY_AUTOCHECKPOINT_PAGES}")  # Checkpointer runs them
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get(SINGLE_READ, False):
            return  # one SELECT is consistent by itself: no BEGIN/ROLLBACK round trip (Store.connect)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("sqlite_immediate", False) else "BEGIN")

    return engine


def private_database_files(path: Path) -> None:
    """The SQLite file and its -wal/-shm companions readable by this user only (0600).

    The database is created 0600 before SQLite opens it; SQLite gives the -wal and -shm files the
    database file's mode. Files of an older install are tightened too.
    """
    with contextlib.suppress(PermissionError, IsADirectoryError):  # SQLite reports an unusable file itself
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if candidate.stat().st_mode & 0o077:
                candidate.chmod(0o600)


class Store:
    """Owns the engine and hands out sessions. `read()` for queries, `write()` for transactions."""

    def __init__(self, url: str, echo: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url, echo=echo)
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._single_reads = self.engine.execution_options(**{SINGLE_READ: True})
        self._writer = sessionmaker(
            self.engine.execution_options(sqlite_immediate=True), expire_on_commit=False
        )
        # SQLite has one writer at a time: writers queue on a lock (threads and processes), not in SQLite's
        # busy handler, and the WAL is checkpointed off the commit path (see sqlite_writes).
        self._write_lock: WriteLock | None = None
        self._checkpointer: Checkpointer | None = None
        if self.engine.dialect.name == "sqlite":
            database = sqlite_file(self.engine)
            self._write_lock = WriteLock(database)
            self._checkpointer = Checkpointer(database, self._write_lock) if database else None

        from controller.events.hooks import install  # the change feed: every write emits (no import cycle)

        install(self._reader)
        install(self._writer)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader() as session:
            yield session

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A plain connection for Core reads on hot paths (no Session, no ORM), for reads that are one
        statement each (each is consistent by itself): on SQLite no transaction is opened around them."""
        with self._single_reads.connect() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on any exception.

        A constraint violation (at a flush in the block, or at commit) leaves as a domain `Conflict`."""
        lock = self._write_lock
        locked = lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000) if lock is not None else False
        try:
            with self._writer() as session, session.begin():
                yield session
        except IntegrityError as exc:
            raise conflict_from(exc) from exc
        finally:
            if locked:
                assert lock is not None
                lock.release()
            if self._checkpointer is not None:
                self._checkpointer.wrote()

    def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        upgrade_database(self.engine)

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        if self._write_lock is not None:
            self._write_lock.close()
        self.engine.dispose()


def sqlite_file(engine: Engine) -> str | None:
    """The database file of a file-backed SQLite engine (None for memory databases and URIs)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    config.attributes["engine"] = engine
    return config


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    with migration_lock(engine):
        command.upgrade(alembic_config(engine), revision)


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Only one process migrates at a time; the others wait, then find the schema current (a no-op)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                conn.commit()
        return
    database = sqlite_file(engine)
    if database is None:
        yield
        return
    with open(f"{database}.migrate-lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
