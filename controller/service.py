"""The controller side of a running pvem: schema upgrade, admin bootstrap, scheduled jobs.

`pvem serve` starts this next to the API; later `pvem controller` runs it alone. It is built from
settings and a Store, and started/stopped as one unit.
"""

from __future__ import annotations

from controller import stats, users
from controller.config import Settings
from controller.log import get_logger
from controller.scheduler import Scheduler
from controller.store import Store

log = get_logger("pvem.controller")


class ControllerService:
    def __init__(self, settings: Settings, store: Store, passwords: users.Passwords) -> None:
        self.settings = settings
        self.store = store
        self.passwords = passwords
        self.scheduler = Scheduler()
        self.sampler = stats.HostSampler()

    def prepare(self, demo_admin: tuple[str, str] | None = None) -> None:
        """Everything that must hold before the API answers: schema, admin, the first stats sample."""
        self.store.upgrade()
        self.bootstrap_admins(demo_admin)
        self.sample_host()

    def bootstrap_admins(self, demo_admin: tuple[str, str] | None = None) -> None:
        wanted: list[tuple[str, str]] = []
        if demo_admin:
            wanted.append(demo_admin)
        auth = self.settings.auth
        if auth.admin_email and auth.admin_password:
            wanted.append((auth.admin_email, auth.admin_password.get_secret_value()))
        elif auth.admin_email or auth.admin_password:
            log.warning("admin_bootstrap_skipped", reason="set both auth.admin_email and auth.admin_password")
        for email, password in wanted:
            with self.store.write() as session:
                user = users.ensure_admin(session, self.passwords, email, password,
                                          username="admin" if demo_admin and email == demo_admin[0] else None)
                log.info("admin_ready", email=user.email)

    def sample_host(self) -> None:
        with self.store.write() as session:
            self.sampler.sample(session, self.settings.stats.retention_minutes)

    def start(self) -> None:
        self.scheduler.every(self.settings.stats.interval_seconds, self.sample_host, "host_stats")
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.shutdown(wait=True)
