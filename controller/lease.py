"""Leader election between controller replicas: a lease row in the database, and fencing by its epoch.

One row per lease name (`controller`) says who holds it (`holder`), until when (`expires_at`), and
its `epoch`, which grows by one every time the holder changes. The leader renews every
`controller.lease_renew_seconds`; a standby takes the lease once it has gone unrenewed for
`controller.lease_seconds` (it looks again just after the expiry it saw, so a dead leader is
replaced within the lease time). A holder that ran on this host and whose process is gone (a
crashed controller restarted) is taken over at once. Time is the hosts' UTC clock: controllers on several machines need
NTP, as with any lease.

Fencing: every status and audit write of the reconciler runs `fence(session)` in its own transaction,
which checks (and, on PostgreSQL, key-share-locks until commit) that the row still names this holder
at this epoch. The holder's renewal takes FOR NO KEY UPDATE, which those locks do not block; a takeover
takes FOR UPDATE, which waits for them. A leader that was paused past its lease and resumes finds a
new epoch there and writes nothing (`Fenced`); a takeover waits for the writes already under way to
commit.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controller.errors import Conflict
from controller.log import get_logger
from controller.store import Store
from controller.store.models import ControllerLease, utcnow

log = get_logger("pvem.lease")

CONTROLLER_LEASE = "controller"


class Fenced(Exception):
    """This process no longer holds the lease at its epoch: the write was refused (rolled back)."""


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def holder_died_here(holder: str) -> bool:
    """The holder ran on this host and its process is gone (a controller restarted after a crash): its
    lease need not be waited out. Anything else (another host, a live or reused pid) waits for expiry."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


class Lease:
    """This process's view of one lease. `is_leader()` is cheap (no database); `renew()` talks to it."""

    def __init__(self, store: Store, lease_seconds: float = 15.0, renew_seconds: float = 5.0,
                 name: str = CONTROLLER_LEASE, holder: str | None = None) -> None:
        self.store, self.name = store, name
        self.lease_seconds, self.renew_seconds = lease_seconds, renew_seconds
        self.holder = holder or default_holder()
        self.epoch: int | None = None
        self._valid_until = 0.0  # monotonic: past it we stop acting even if the database is unreachable
        self._seen_expiry: float | None = None  # standby: when the current holder's lease runs out
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- state

    def is_leader(self) -> bool:
        with self._lock:
            return self.epoch is not None and time.monotonic() < self._valid_until

    def role(self) -> str:
        return "leader" if self.is_leader() else "standby"

    def current(self) -> ControllerLease | None:
        with self.store.read() as session:
            return session.get(ControllerLease, self.name)

    # ------------------------------------------------------------- renewing

    def renew(self) -> bool:
        """Take the lease if free or expired, or extend it if ours. True while this process leads."""
        started = time.monotonic()
        try:
            with self.store.write() as session:
                epoch, expires_in = self._claim(session)
        except (Conflict, IntegrityError):  # another standby inserted the first row at the same moment
            epoch, expires_in = None, self.renew_seconds
        except Exception as exc:  # database unreachable: keep leading only until our lease would expire
            log.warning("lease_renew_failed", error=str(exc).splitlines()[0] if str(exc) else repr(exc))
            return self.is_leader()
        with self._lock:
            was = self.epoch
            if epoch is None:
                self.epoch, self._valid_until = None, 0.0
                self._seen_expiry = started + expires_in
            else:
                self.epoch = epoch
                # A margin under the database's expiry: we stop before a standby may start.
                self._valid_until = started + self.lease_seconds - min(1.0, self.lease_seconds / 10)
                self._seen_expiry = None
        if epoch is not None and was != epoch:
            log.info("lease_acquired", holder=self.holder, epoch=epoch)
        elif epoch is None and was is not None:
            log.warning("lease_lost", holder=self.holder, epoch=was)
        return epoch is not None

    def _claim(self, session: Session) -> tuple[int | None, float]:
        """(our epoch, or None; seconds until the current holder's lease expires)."""
        now = utcnow()
        expires = now + timedelta(seconds=self.lease_seconds)
        # FOR NO KEY UPDATE: serialises claimants but not the holder's fences (FOR KEY SHARE), so a busy
        # leader's stream of fenced writes cannot starve its own renewal (PostgreSQL lets share lockers
        # overtake a waiting exclusive locker).
        query = select(ControllerLease).where(ControllerLease.name == self.name)
        row = session.scalar(query.with_for_update(key_share=True))
        if row is None:
            session.add(ControllerLease(name=self.name, holder=self.holder, epoch=1, acquired_at=now,
                                        renewed_at=now, expires_at=expires))
            session.flush()
            return 1, self.lease_seconds
        if row.holder == self.holder and row.epoch == self.epoch:
            row.renewed_at, row.expires_at = now, expires
            return row.epoch, self.lease_seconds
        if (row.holder is not None and row.expires_at is not None and row.expires_at > now
                and not holder_died_here(row.holder)):
            return None, (row.expires_at - now).total_seconds()
        # Free or expired: take it over with a new epoch (the row is locked: no other taker in between).
        # FOR UPDATE conflicts with the fences' FOR KEY SHARE: the takeover waits for the writes the old
        # holder has under way to commit (or roll back) first.
        row = session.scalar(query.with_for_update().execution_options(populate_existing=True))
        assert row is not None
        row.holder, row.epoch, row.acquired_at, row.renewed_at, row.expires_at = (
            self.holder, row.epoch + 1, now, now, expires)
        return row.epoch, self.lease_seconds

    def release(self) -> None:
        """Give the lease up (clean shutdown) so a standby takes over at once instead of after expiry."""
        with self._lock:
            epoch, self.epoch, self._valid_until = self.epoch, None, 0.0
        if epoch is None:
            return
        try:
            with self.store.write() as session:
                session.execute(update(ControllerLease).where(
                    ControllerLease.name == self.name, ControllerLease.holder == self.holder,
                    ControllerLease.epoch == epoch).values(holder=None, expires_at=utcnow()))
            log.info("lease_released", holder=self.holder, epoch=epoch)
        except Exception as exc:
            log.warning("lease_release_failed", error=str(exc).splitlines()[0])

    def next_attempt_in(self) -> float:
        """Leader: the renew period. Standby: the renew period, or just after the holder's expiry if sooner."""
        with self._lock:
            if self.epoch is not None or self._seen_expiry is None:
                return self.renew_seconds
            return max(0.05, min(self.renew_seconds, self._seen_expiry - time.monotonic() + 0.05))

    # -------------------------------------------------------------- fencing

    def fence(self, session: Session) -> None:
        """In a write transaction: refuse it unless this process still holds the lease at its epoch.

        On PostgreSQL the lease row is share-locked until the transaction ends, so a takeover (an UPDATE
        of the row) waits for this write to commit; SQLite's write transactions run one at a time anyway."""
        epoch = self.epoch
        if epoch is None:
            raise Fenced("not the leader")
        found = session.scalar(select(ControllerLease.epoch).where(
            ControllerLease.name == self.name, ControllerLease.holder == self.holder,
            ControllerLease.epoch == epoch).with_for_update(read=True, key_share=True))
        if found is None:
            with self._lock:
                if self.epoch == epoch:
                    self.epoch, self._valid_until = None, 0.0
            log.warning("lease_fenced", holder=self.holder, epoch=epoch)
            raise Fenced(f"lease epoch {epoch} is no longer current")


def leader_check(store: Store, name: str = CONTROLLER_LEASE) -> Callable[[], tuple[bool, dict[str, Any]]]:
    """Readiness for a process without a controller (`pvem api`): which controller leads, if any.
    Always ok: an API replica serves whether or not a controller is running."""

    def check() -> tuple[bool, dict[str, Any]]:
        with store.read() as session:
            row = session.get(ControllerLease, name)
        if row is None or row.holder is None or row.expires_at is None or row.expires_at <= utcnow():
            return True, {"leader": None}
        return True, {"leader": row.holder, "epoch": row.epoch}

    return check


class LeaseKeeper:
    """A thread renewing (or trying to take) the lease; calls `on_change(is_leader)` on every change."""

    def __init__(self, lease: Lease, on_change: Callable[[bool], None] | None = None) -> None:
        self.lease = lease
        self.on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._leading = False

    def start(self) -> None:
        self.step()  # the first attempt before anything else starts: a lone controller leads at once
        self._thread = threading.Thread(target=self._run, name="lease", daemon=True)
        self._thread.start()

    def step(self) -> None:
        leading = self.lease.renew()
        if leading != self._leading:
            self._leading = leading
            if self.on_change is not None:
                try:
                    self.on_change(leading)
                except Exception:
                    log.exception("lease_change_handler_failed")

    def _run(self) -> None:
        while not self._stop.wait(self.lease.next_attempt_in()):
            self.step()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.lease.release()
