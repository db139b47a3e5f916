"""The controller side of a running pvem: schema upgrade, admin bootstrap, the reconciler, scheduled jobs.

`pvem serve` runs this next to the API, `pvem controller` alone. Without `proxmox.host` there is
nothing to reconcile: the service still samples this host's stats and says so in the log.
"""

from __future__ import annotations

import time
from typing import Any

from controller import stats, users
from controller.config import Settings
from controller.events import feed as event_feed
from controller.log import get_logger
from controller.proxmox.client import ProxmoxClient
from controller.proxmox.errors import ProxmoxError
from controller.reconcile.loop import LoopSettings, Reconciler
from controller.reconcile.model import Policy
from controller.scheduler import Scheduler
from controller.store import Store
from controller.webhooks.worker import Render, WebhookWorker

log = get_logger("pvem.controller")
PRUNE_INTERVAL_SECONDS = 60.0


class ControllerService:
    def __init__(self, settings: Settings, store: Store, passwords: users.Passwords,
                 render: Render | None = None) -> None:
        self.settings = settings
        self.store = store
        self.passwords = passwords
        self.webhooks = WebhookWorker(store, settings.webhooks, render)
        self.scheduler = Scheduler()
        self.sampler = stats.HostSampler()
        self.client: ProxmoxClient | None = None
        self.reconciler: Reconciler | None = None
        if settings.proxmox.host:
            self.client = ProxmoxClient(settings.proxmox)
            self.reconciler = self._build_reconciler(self.client)

    def _build_reconciler(self, client: ProxmoxClient) -> Reconciler:
        ctl, pve = self.settings.controller, self.settings.proxmox
        policy = Policy(on_missing=ctl.on_missing, reboot_policy=ctl.reboot_policy,
                        shutdown_timeout=ctl.shutdown_timeout_seconds)
        loop = LoopSettings(workers=ctl.workers, per_node=ctl.per_node_workers, backoff_max=ctl.backoff_max_seconds,
                            error_retry_seconds=ctl.error_retry_seconds, resync_seconds=ctl.resync_interval_seconds,
                            pass_interval=ctl.reconcile_interval_seconds)
        return Reconciler(self.store, client, policy, loop, pve.storage, pve.bridge, (pve.vmid_min, pve.vmid_max))

    # ------------------------------------------------------------ start-up

    def prepare(self, demo_admin: tuple[str, str] | None = None) -> None:
        """Everything that must hold before the API answers: schema, admin, the first stats sample."""
        self.store.upgrade()
        self.bootstrap_admins(demo_admin)
        self.sample_host()

    @staticmethod
    def prepare_api_only(settings: Settings, store: Store, passwords: users.Passwords) -> None:
        """`pvem api`: schema and admin, plus one host sample; the controller process does the rest."""
        ControllerService(settings.model_copy(update={"proxmox": settings.proxmox.model_copy(
            update={"host": None})}), store, passwords).prepare()

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

    # ----------------------------------------------------------------- jobs

    def sample_host(self) -> None:
        with self.store.write() as session:
            self.sampler.sample(session, self.settings.stats.retention_minutes)

    def sample_stats(self) -> None:
        """Cluster figures from Proxmox when it answers; this host's figures are kept either way."""
        host = self.sampler.read()
        retention = self.settings.stats.retention_minutes
        with self.store.write() as session:
            stats.store_sample(session, stats.HOST, host["cpu"], host["memory"], host["disk"], host["rx_bytes"],
                               host["tx_bytes"], retention_minutes=retention)
        if self.client is None or self.reconciler is None:
            return
        try:
            figures = stats.cluster_figures(self.client.list_nodes(), list(self.reconciler.view.vms().values()))
        except ProxmoxError as exc:
            log.warning("cluster_stats_failed", error=exc.message)
            return
        with self.store.write() as session:
            stats.store_cluster_sample(session, figures, host, retention)

    def prune_events(self) -> None:
        """Keep the change feed (and finished webhook deliveries) bounded."""
        with self.store.write() as session:
            event_feed.prune(session, self.settings.events.retention_minutes,
                             self.settings.webhooks.delivery_retention_hours)

    def nudge(self, vm_id: str) -> None:
        if self.reconciler is not None:
            self.reconciler.nudge(vm_id)

    def start(self) -> None:
        self.scheduler.every(self.settings.stats.interval_seconds, self.sample_stats, "stats")
        self.scheduler.every(self.settings.webhooks.poll_seconds, self.webhooks.run_once, "webhooks")
        self.scheduler.every(PRUNE_INTERVAL_SECONDS, self.prune_events, "events_prune")
        if self.reconciler is None:
            log.warning("controller_idle", reason="proxmox.host is not set: nothing to reconcile")
        else:
            ctl = self.settings.controller
            self.reconciler.start()
            self.scheduler.every(ctl.reconcile_interval_seconds, self.reconciler.full_pass, "full_pass")
            self.scheduler.every(ctl.poll_interval_seconds, self.reconciler.poll_database, "poll_database")
            self.scheduler.run_soon(self.reconciler.full_pass, "first_pass")
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.shutdown(wait=True)
        if self.reconciler is not None:
            self.reconciler.stop(self.settings.controller.stop_grace_seconds)
        if self.client is not None:
            self.client.close()
        self.webhooks.close()

    # ------------------------------------------------------------ readiness

    def readiness_checks(self) -> dict[str, Any]:
        if self.client is None or self.reconciler is None:
            return {}
        client, reconciler = self.client, self.reconciler
        max_age = 3 * self.settings.controller.reconcile_interval_seconds + 5

        def proxmox() -> tuple[bool, dict[str, Any]]:
            try:
                return True, {"version": client.version()}
            except ProxmoxError as exc:
                return False, {"error": exc.message}

        def last_pass() -> tuple[bool, dict[str, Any]]:
            if reconciler.last_pass_ok is None:
                return False, {"error": reconciler.last_pass_error or "no successful pass yet"}
            age = round(time.time() - reconciler.last_pass_ok, 1)
            info: dict[str, Any] = {"age_seconds": age}
            if reconciler.last_pass_error:
                info["error"] = reconciler.last_pass_error
            return age <= max_age, info

        return {"proxmox": proxmox, "reconcile": last_pass}
