"""The controller side of a running pvem: schema upgrade, admin bootstrap, the reconciler, scheduled jobs.

`pvem serve` runs this next to the API, `pvem controller` alone. Without `proxmox.host` there is
nothing to reconcile: the service still samples this host's stats and says so in the log.

Several controllers may share one database: they elect a leader through the lease row
(controller.lease). Only the leader reconciles, runs full passes, samples stats and runs schedules;
standbys wait and take over within `controller.lease_seconds` of the leader's death. Periodic jobs
that only the leader may run are registered with `leader_job()`; jobs every replica runs with
`self.scheduler.every()`. On PostgreSQL the API's nudges arrive by LISTEN/NOTIFY (controller.store.notify);
the database poll stays as the safety net.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from controller import cluster, metrics, schedules, stats, users
from controller.agent import AgentRefresher
from controller.config import Settings
from controller.events import feed as event_feed
from controller.importer import Importer
from controller.lease import Lease, LeaseKeeper
from controller.log import get_logger
from controller.proxmox.client import ProxmoxClient
from controller.proxmox.errors import ProxmoxError
from controller.reconcile.loop import LoopSettings, Reconciler
from controller.reconcile.model import Policy
from controller.scheduler import Scheduler
from controller.store import Store, notify
from controller.webhooks.worker import Render, WebhookWorker

log = get_logger("pvem.controller")
PRUNE_INTERVAL_SECONDS = 60.0
# How often due scheduled snapshots are looked for (schedules are at least a minute apart).
SCHEDULE_CHECK_SECONDS = 15.0


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
        self.agent: AgentRefresher | None = None
        self.importer: Importer | None = None
        ctl = settings.controller
        self.lease = Lease(store, lease_seconds=ctl.lease_seconds, renew_seconds=ctl.lease_renew_seconds)
        self.lease_keeper = LeaseKeeper(self.lease, self._leadership_changed)
        metrics.track_leadership(self.lease.is_leader)
        self.listener: notify.Listener | None = None
        self._cluster_listing_used: float | None = None
        if settings.proxmox.host:
            self.client = ProxmoxClient(settings.proxmox)
            self.reconciler = self._build_reconciler(self.client)
            self.agent = AgentRefresher(store, self.client, settings.controller.agent_refresh_seconds,
                                        self.reconciler.stopping)
            self.importer = Importer(self.client, store, settings.controller.reboot_policy)

    @staticmethod
    def build_importer(settings: Settings, store: Store) -> Importer | None:
        """`pvem api` alone: the importer the API reads the cluster through (None without proxmox.host)."""
        if not settings.proxmox.host:
            return None
        return Importer(ProxmoxClient(settings.proxmox), store, settings.controller.reboot_policy)

    def _build_reconciler(self, client: ProxmoxClient) -> Reconciler:
        ctl, pve = self.settings.controller, self.settings.proxmox
        policy = Policy(on_missing=ctl.on_missing, reboot_policy=ctl.reboot_policy,
                        shutdown_timeout=ctl.shutdown_timeout_seconds,
                        max_concurrent_reboots=ctl.max_concurrent_reboots)
        loop = LoopSettings(workers=ctl.workers, per_node=ctl.per_node_workers, backoff_max=ctl.backoff_max_seconds,
                            error_retry_seconds=ctl.error_retry_seconds, resync_seconds=ctl.resync_interval_seconds,
                            pass_interval=ctl.reconcile_interval_seconds)
        return Reconciler(self.store, client, policy, loop, pve.storage, pve.bridge, (pve.vmid_min, pve.vmid_max),
                          clone_timeout=ctl.clone_timeout_seconds, is_leader=self.lease.is_leader,
                          fence=self.lease.fence)

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
            # Raises users.AdminConflict when the email belongs to a non-admin: pvem does not start.
            user = users.bootstrap_admin(self.store, self.passwords, email, password,
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
        # The reconciler's per-pass listing has the nodes and VMs: stats never list the cluster themselves, and
        # take one cluster sample per new listing (so network rates span the time between two listings).
        latest = self.reconciler.view.latest()
        if latest is None or latest[2] == self._cluster_listing_used:
            return
        vms, nodes, self._cluster_listing_used = latest
        figures = stats.cluster_figures(nodes, list(vms.values()))
        with self.store.write() as session:
            stats.store_cluster_sample(session, figures, host, retention)
            cluster.record_nodes(session, nodes)  # the API names them when a spec asks for another

    def snapshot_schedules(self) -> None:
        """Take due scheduled snapshots and apply retention; nudge the VMs whose snapshots changed."""
        with self.store.write() as session:
            changed = schedules.run_due(session)
        for vm_id in changed:
            log.info("scheduled_snapshots", vm_id=vm_id)
            self.nudge(vm_id)

    def prune_events(self) -> None:
        """Keep the change feed (and finished webhook deliveries) bounded."""
        with self.store.write() as session:
            event_feed.prune(session, self.settings.events.retention_minutes,
                             self.settings.webhooks.delivery_retention_hours)

    def nudge(self, vm_id: str) -> None:
        if self.reconciler is not None:
            self.reconciler.nudge(vm_id)

    def leader_job(self, seconds: float, job: Callable[[], object], name: str) -> None:
        """A periodic job only the lease holder runs (standbys skip each run)."""

        def if_leader() -> None:
            if self.lease.is_leader():
                job()

        self.scheduler.every(seconds, if_leader, name)

    def is_leader(self) -> bool:
        return self.lease.is_leader()

    def _leadership_changed(self, leading: bool) -> None:
        log.info("controller_role", role="leader" if leading else "standby", holder=self.lease.holder,
                 epoch=self.lease.epoch)
        if leading and self.reconciler is not None and self.scheduler.running:
            # Pick up at once what the previous leader left (mid-operation VMs, pending specs, drift).
            self.scheduler.run_soon(self.reconciler.poll_database, "takeover_poll")
            self.scheduler.run_soon(self.reconciler.full_pass, "takeover_pass")

    def start(self) -> None:
        self.lease_keeper.start()
        self.leader_job(self.settings.stats.interval_seconds, self.sample_stats, "stats")
        self.leader_job(self.settings.webhooks.poll_seconds, self.webhooks.run_once, "webhooks")
        self.leader_job(PRUNE_INTERVAL_SECONDS, self.prune_events, "events_prune")
        if self.reconciler is None:
            log.warning("controller_idle", reason="proxmox.host is not set: nothing to reconcile")
        else:
            ctl = self.settings.controller
            self.reconciler.start()
            self.leader_job(ctl.reconcile_interval_seconds, self.reconciler.full_pass, "full_pass")
            self.leader_job(ctl.poll_interval_seconds, self.reconciler.poll_database, "poll_database")
            self.leader_job(SCHEDULE_CHECK_SECONDS, self.snapshot_schedules, "snapshot_schedules")
            if self.agent is not None:
                self.leader_job(ctl.agent_refresh_seconds, self.agent.run_once, "guest_agent")
            if self.lease.is_leader():
                self.scheduler.run_soon(self.sample_stats, "first_stats")
                self.scheduler.run_soon(self.reconciler.full_pass, "first_pass")
            if notify.supported(self.store):
                self.listener = notify.Listener(self.store, self.reconciler.nudge)
                self.listener.start()
        self.scheduler.start()

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.stop()
        if self.reconciler is not None:
            self.reconciler.stopping.set()  # ends a paced guest-agent round at once
        self.scheduler.shutdown(wait=True)
        if self.reconciler is not None:
            self.reconciler.stop(self.settings.controller.stop_grace_seconds)
        self.lease_keeper.stop()  # releases the lease: a standby takes over at once
        if self.client is not None:
            self.client.close()
        self.webhooks.close()

    # ------------------------------------------------------------ readiness

    def role_check(self) -> tuple[bool, dict[str, Any]]:
        """Readiness: this controller's role in the election (a standby is ready: it is waiting by design)."""
        lease = self.lease
        return True, {"role": lease.role(), "holder": lease.holder, "epoch": lease.epoch}

    def readiness_checks(self) -> dict[str, Any]:
        if self.client is None or self.reconciler is None:
            return {"controller": self.role_check}
        client, reconciler = self.client, self.reconciler
        max_age = 3 * self.settings.controller.reconcile_interval_seconds + 5

        def proxmox() -> tuple[bool, dict[str, Any]]:
            try:
                return True, {"version": client.version()}
            except ProxmoxError as exc:
                return False, {"error": exc.message}

        def last_pass() -> tuple[bool, dict[str, Any]]:
            if not self.lease.is_leader():
                return True, {"role": "standby"}  # the leader runs the passes
            if reconciler.last_pass_ok is None:
                return False, {"error": reconciler.last_pass_error or "no successful pass yet"}
            age = round(time.time() - reconciler.last_pass_ok, 1)
            info: dict[str, Any] = {"age_seconds": age}
            if reconciler.last_pass_error:
                info["error"] = reconciler.last_pass_error
            return age <= max_age, info

        return {"controller": self.role_check, "proxmox": proxmox, "reconcile": last_pass}
