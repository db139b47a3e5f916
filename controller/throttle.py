"""Login throttling in the database, so every API replica shares one limit.

Two keys per attempt: the normalised email and the client address, each stored only as a keyed hash
(HMAC-SHA256 with the JWT secret: no typed email is kept). An attempt *reserves* a failure on both
keys before the password is checked, in one short write transaction (SQLite: BEGIN IMMEDIATE
serialises it; PostgreSQL: the key's row is locked FOR UPDATE), so concurrent guesses can never check
more passwords than the limit. A successful login releases the reservation: the email's count is
reset, the address's count gives its one back. A window opens at a key's first failure and lasts
`auth.login_window_seconds`; at the limit, attempts are refused (429) until the window ends.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controller.errors import Throttled
from controller.store import Store
from controller.store.models import LoginThrottle, utcnow

PURGE_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class Reservation:
    email_key: str
    address_key: str


class DbLoginThrottle:
    def __init__(self, store: Store, pepper: bytes, per_email: int, per_address: int, window_seconds: int) -> None:
        self.store = store
        self._pepper = pepper
        self.limits = {"email": per_email, "address": per_address}
        self.window = timedelta(seconds=window_seconds)
        self._last_purge = 0.0
        self._purge_lock = threading.Lock()

    def key(self, kind: str, value: str) -> str:
        digest = hmac.new(self._pepper, f"login-throttle:{kind}:{value}".encode(), hashlib.sha256).hexdigest()
        return f"{kind[0]}:{digest[:64]}"

    def reserve(self, email: str, address: str) -> Reservation:
        """Counts one failure on both keys now; raises Throttled (writing nothing) at either limit."""
        reservation = Reservation(self.key("email", email), self.key("address", address))
        now = utcnow()
        with self.store.write() as session:
            self._maybe_purge(session, now)
            for kind, key in (("email", reservation.email_key), ("address", reservation.address_key)):
                row = self._locked_row(session, key, now)
                if row.window_started <= now - self.window:
                    row.failures, row.window_started = 0, now
                if row.failures >= self.limits[kind]:
                    left = (row.window_started + self.window - now).total_seconds()
                    raise Throttled("too many failed logins; try again later", max(1, math.ceil(left)))
                row.failures += 1
        return reservation

    def release(self, reservation: Reservation) -> None:
        """The password was right: forget the email's failures, give the address its attempt back."""
        with self.store.write() as session:
            session.execute(delete(LoginThrottle).where(LoginThrottle.key == reservation.email_key))
            row = session.get(LoginThrottle, reservation.address_key, with_for_update=True)
            if row is not None and row.failures > 0:
                row.failures -= 1

    def _locked_row(self, session: Session, key: str, now: datetime) -> LoginThrottle:
        row = session.get(LoginThrottle, key, with_for_update=True)
        if row is None:
            try:
                with session.begin_nested():
                    session.add(LoginThrottle(key=key, failures=0, window_started=now))
                    session.flush()
            except IntegrityError:  # another replica created it first: lock theirs
                pass
            row = session.get(LoginThrottle, key, with_for_update=True, populate_existing=True)
        assert row is not None
        return row

    def _maybe_purge(self, session: Session, now: datetime) -> None:
        """Drop keys whose window has ended (at most once a minute per process): the table stays small."""
        with self._purge_lock:
            if time.monotonic() - self._last_purge < PURGE_EVERY_SECONDS:
                return
            self._last_purge = time.monotonic()
        session.execute(delete(LoginThrottle).where(LoginThrottle.window_started <= now - self.window))
