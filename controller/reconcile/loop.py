"""The reconcile loop: a work queue of VM ids, bounded workers, per-object backoff, and the full pass.

Triggers: `nudge(vm_id)` right after an API write (same process), a one-second database poll for
generations that moved (a separate `pvem controller` process), and the periodic full pass, which
lists the cluster once, spots drift in the listing, and spreads deep resyncs over the resync period.
One VM is never worked on by two workers at once; a nudge during work re-runs it afterwards.

Several controllers: only the lease holder works (`is_leader`); a standby's queue fills but nothing is
taken from it. Every status write is fenced (`fence`), so work a former leader still has in flight
stops at its next write (`Fenced`) instead of overwriting the new leader's.

The queue has two priorities: user changes (nudges, the database poll) go ahead of what the pass queues
(drift, retries of parked errors, deep resyncs). An idle pass costs one listing and a few SQL statements
whatever the fleet size: one Core query compares every row with the listing; the due resyncs' specs are
loaded in bulk, and resyncs that find nothing to change are recorded together by the next pass.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller import cluster, templates
from controller.lease import Fenced
from controller.log import get_logger
from controller.proxmox.client import ProxmoxClient
from controller.proxmox.errors import ProxmoxError
from controller.proxmox.normalize import ObservedVm as ListedVm
from controller.reconcile import state
from controller.reconcile.act import Permanent, VmReconciler
from controller.reconcile.model import DesiredVm, Policy
from controller.reconcile.observe import ClusterView
from controller.reconcile.resync import ResyncItem, unchanged
from controller.store import Store
from controller.store.models import VirtualMachine, utcnow

log = get_logger("pvem.reconciler")
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class LoopSettings:
    workers: int = 16
    per_node: int = 16
    backoff_base: float = 0.2
    backoff_max: float = 60.0
    error_retry_seconds: float = 300.0
    resync_seconds: float = 600.0
    pass_interval: float = 30.0


@dataclass
class _Tracking:
    failures: dict[str, int] = field(default_factory=dict)
    not_before: dict[str, float] = field(default_factory=dict)


class Reconciler:
    def __init__(self, store: Store, client: ProxmoxClient, policy: Policy, loop: LoopSettings,
                 storage: str, bridge: str, vmid_range: tuple[int, int], clone_timeout: float = 3600,
                 is_leader: Callable[[], bool] | None = None, fence: Callable[[Session], None] | None = None) -> None:
        self.store, self.client, self.policy, self.settings = store, client, policy, loop
        self.stopping = threading.Event()
        self.is_leader = is_leader or (lambda: True)
        self.view = ClusterView(client)
        self.worker = VmReconciler(client, store, self.view, policy, storage, bridge, vmid_range, self.stopping,
                                   clone_timeout=clone_timeout, fence=fence)
        self.worker.on_reboot_slot_free = self._reboot_slot_free
        self._cond = threading.Condition()
        self._queued: set[str] = set()
        self._running: set[str] = set()
        self._dirty: set[str] = set()
        self._urgent: set[str] = set()  # queued (or dirty) ids from user changes: worked on first
        self._resync: dict[str, ResyncItem] = {}  # queued deep resyncs, with the spec the pass loaded
        self._observed_unchanged: dict[str, datetime] = {}  # resyncs that found nothing, for the next pass
        self._last_observed: dict[str, datetime] = {}
        self._track = _Tracking()
        self._node_slots: dict[str, threading.Semaphore] = defaultdict(lambda: threading.Semaphore(loop.per_node))
        self._pool = ThreadPoolExecutor(max_workers=loop.workers, thread_name_prefix="reconcile")
        self._free = threading.Semaphore(loop.workers)
        # The pass's work (drift, resyncs, retries) takes at most half the workers and half of a node's slots:
        # a user change never queues behind a wave of resyncs.
        self._background_cap = max(1, loop.workers // 2)
        self._background_running = 0
        self._background_slots: dict[str, threading.Semaphore] = defaultdict(
            lambda: threading.Semaphore(max(1, loop.per_node // 2)))
        self._dispatcher: threading.Thread | None = None
        self.last_pass_ok: float | None = None
        self._recorded_nodes: dict[str, object] = {}
        self.last_pass_error: str | None = None

    # ------------------------------------------------------------- triggers

    def nudge(self, vm_id: str, reset_backoff: bool = True, urgent: bool = True) -> None:
        """Queue the VM. `urgent` (a user change): ahead of the pass's work, and never a mere resync."""
        with self._cond:
            if reset_backoff:  # a spec change deserves a prompt try, whatever failed before
                self._track.failures.pop(vm_id, None)
                self._track.not_before.pop(vm_id, None)
            if urgent:
                self._urgent.add(vm_id)
                self._resync.pop(vm_id, None)
            if vm_id in self._running:
                self._dirty.add(vm_id)
            else:
                self._queued.add(vm_id)
            self._cond.notify_all()

    def _reboot_slot_free(self, vm_ids: list[str]) -> None:
        for vm_id in vm_ids:  # their retry was a wait for the slot, not a failure: no backoff
            self.nudge(vm_id)

    def poll_database(self) -> None:
        """Pick up spec changes written by another process (or missed nudges)."""
        with self.store.read() as session:
            ids = state.ids_needing_work(session)
            changed = set(state.ids_changed_since_error(session))
        # Objects in backoff, or parked on an error, wait (not_before); a spec change since the error does not.
        for vm_id in dict.fromkeys([*ids, *changed]):
            if vm_id in self._queued and vm_id not in changed:
                continue  # already queued (perhaps by the pass): its priority stays
            self.nudge(vm_id, reset_backoff=vm_id in changed)

    def full_pass(self) -> None:
        """List the cluster once; queue what drifted, what is due a deep resync, and errors due a retry."""
        try:
            listed = self.view.refresh()
        except ProxmoxError as exc:
            self.last_pass_error = exc.message
            log.warning("observation_failed", error=exc.message)
            return  # a failed observation never means "everything is gone"
        try:
            templates.refresh_inventory(self.store, self.client, listed)
        except Exception:  # the inventory is for the API's checks: never a reason to skip the pass
            log.exception("template_inventory_failed")
        self._record_nodes()
        now = utcnow()
        with self._cond:
            unchanged_ids, self._observed_unchanged = self._observed_unchanged, {}
        if unchanged_ids:
            with self.store.write() as session:
                state.mark_observed(session, list(unchanged_ids), now)
        with self.store.read() as session:
            rows = state.pass_rows(session)
        due_budget = max(1, math.ceil(len(rows) * self.settings.pass_interval / self.settings.resync_seconds))
        stale_before = now - timedelta(seconds=self.settings.resync_seconds)
        seen = self._last_observed
        resync: list[tuple[datetime, str]] = []
        for (vm_id, vmid, name, node, cores, memory_mb, power_state, sync_status, generation, observed_generation,
             deleting, reboot_required, migrated_generation, last_observed_at) in rows:
            item = listed.get(vmid)
            if (sync_status != "synced" or generation != observed_generation or deleting or item is None
                    or (item.status == "running") != (power_state in ("running", "paused")) or item.name != name
                    or (item.node != node and migrated_generation != generation)
                    or (not reboot_required and ((item.cores is not None and item.cores != cores)
                                                 or (item.memory_mb is not None and item.memory_mb != memory_mb)))):
                self.nudge(vm_id, reset_backoff=False, urgent=False)
                continue
            last = max(last_observed_at or _NEVER, seen.get(vm_id, _NEVER))
            if last < stale_before:
                resync.append((last, vm_id))
        due = [vm_id for _last, vm_id in sorted(resync)[:due_budget]]
        if due:
            self._queue_resyncs(due)
        if len(seen) > 2 * len(rows) + 1000:  # forget VMs that are gone
            live = {row[0] for row in rows}
            self._last_observed = {key: value for key, value in seen.items() if key in live}
        self.last_pass_ok = time.time()
        self.last_pass_error = None

    def _queue_resyncs(self, ids: list[str]) -> None:
        with self.store.read() as session:
            loaded = state.load_many(session, ids)
        with self._cond:
            for desired, row in loaded:
                if row.id in self._queued or row.id in self._running:
                    continue
                self._resync[row.id] = ResyncItem(
                    desired=desired, status=row.status, observed_node=row.observed_node,
                    reboot_required=row.reboot_required, observed=dict(row.observed or {}))
                self._queued.add(row.id)
            self._cond.notify_all()

    def _record_nodes(self) -> None:
        """The node list the API checks specs against (cluster_nodes), written only when it changed."""
        latest = self.view.latest()
        if latest is None:
            return
        nodes = {str(item["node"]): item.get("status") for item in latest[1] if item.get("node")}
        if not nodes or nodes == self._recorded_nodes:
            return
        with self.store.write() as session:
            cluster.record_nodes(session, latest[1])
        self._recorded_nodes = nodes

    @staticmethod
    def _drifted(desired: DesiredVm, listed: ListedVm | None, reboot_required: bool) -> bool:
        """Drift visible in the bulk listing alone: name, node, power, and (unless a reboot is pending) sizes."""
        if listed is None:
            return True
        running = listed.status == "running"
        if running != (desired.power_state in ("running", "paused")) or listed.name != desired.name:
            return True
        if listed.node != desired.node and desired.migrated_generation != desired.generation:
            return True
        if reboot_required:
            return False
        return (listed.cores is not None and listed.cores != desired.cores) or (
            listed.memory_mb is not None and listed.memory_mb != desired.memory_mb)

    # -------------------------------------------------------------- workers

    def start(self) -> None:
        self._dispatcher = threading.Thread(target=self._dispatch, name="reconcile-dispatch", daemon=True)
        self._dispatcher.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking work; in-flight operations finish or hand back (their UPIDs stay stored)."""
        self.stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._dispatcher is not None:
            self._dispatcher.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _next_ready(self) -> str | None:
        if not self.is_leader():
            return None
        now = time.monotonic()
        not_before = self._track.not_before
        for vm_id in self._urgent:
            if vm_id in self._queued and not_before.get(vm_id, 0.0) <= now:
                return vm_id
        if self._background_running >= self._background_cap:
            return None
        for vm_id in self._queued:
            if vm_id not in self._urgent and not_before.get(vm_id, 0.0) <= now:
                return vm_id
        return None

    def _dispatch(self) -> None:
        while not self.stopping.is_set():
            if not self._free.acquire(timeout=0.5):
                continue
            with self._cond:
                vm_id = self._next_ready()
                while vm_id is None and not self.stopping.is_set():
                    self._cond.wait(timeout=0.2)
                    vm_id = self._next_ready()
                if vm_id is None:
                    self._free.release()
                    return
                self._queued.discard(vm_id)
                urgent = vm_id in self._urgent
                self._urgent.discard(vm_id)
                item = None if urgent else self._resync.pop(vm_id, None)
                if not urgent:
                    self._background_running += 1
                self._running.add(vm_id)
            self._pool.submit(self._work, vm_id, urgent, item)

    def _work(self, vm_id: str, urgent: bool = True, item: ResyncItem | None = None) -> None:
        try:
            generation = None
            if item is not None:
                node = item.observed_node or item.desired.node
            else:
                with self.store.connect() as conn:
                    found = conn.execute(select(VirtualMachine.observed_node, VirtualMachine.node,
                                                VirtualMachine.generation).where(VirtualMachine.id == vm_id)).first()
                node, generation = ((found.observed_node or found.node), found.generation) if found else ("", None)
            with self._background_slots[node] if not urgent else nullcontext(), self._node_slots[node]:
                if item is not None and self._resync_unchanged(vm_id, item):
                    return
                self._reconcile_one(vm_id, urgent, generation)
        finally:
            with self._cond:
                if not urgent:
                    self._background_running -= 1
                self._running.discard(vm_id)
                if vm_id in self._dirty:
                    self._dirty.discard(vm_id)
                    self._queued.add(vm_id)
                self._cond.notify_all()
            self._free.release()

    def _resync_unchanged(self, vm_id: str, item: ResyncItem) -> bool:
        if not unchanged(self.worker, item):
            return False
        now = utcnow()
        with self._cond:
            self._observed_unchanged[vm_id] = now
            self._last_observed[vm_id] = now
        return True

    def _reconcile_one(self, vm_id: str, urgent: bool = True, generation: int | None = None) -> None:
        if generation is None:
            with self.store.read() as session:
                generation = state.spec_generation(session, vm_id)
        # `generation`: the spec this attempt starts from (read with the node, before the node's slot was
        # taken); an error is about this one or a later one, and one the spec moved past is retried at once.
        try:
            self._attempt(vm_id, generation, urgent)
        except Fenced:
            log.warning("reconcile_fenced", vm_id=vm_id)  # no longer the leader: the new one takes it from here

    def _attempt(self, vm_id: str, generation: int | None, urgent: bool = True) -> None:
        try:
            outcome = self.worker.run(vm_id)
        except Fenced:
            raise
        except Permanent as exc:
            self._record_error(vm_id, str(exc), generation)
            return
        except ProxmoxError as exc:
            if exc.transient:
                self._retry_later(vm_id, exc.message, urgent)
            else:
                self._record_error(vm_id, exc.message, generation)
            return
        except Exception as exc:  # a bug must not kill the worker; it shows on the VM and in the log
            log.exception("reconcile_crashed", vm_id=vm_id)
            self._retry_later(vm_id, f"internal error: {exc}", urgent)
            return
        if outcome.converged:
            self._track.failures.pop(vm_id, None)
            self._track.not_before.pop(vm_id, None)
        elif not self.stopping.is_set():
            self._retry_later(vm_id, None, urgent)

    def _retry_later(self, vm_id: str, message: str | None, urgent: bool = False) -> None:
        failures = self._track.failures.get(vm_id, 0) + 1
        self._track.failures[vm_id] = failures
        delay = min(self.settings.backoff_max, self.settings.backoff_base * 2 ** (failures - 1))
        delay *= random.uniform(0.8, 1.2)
        self._track.not_before[vm_id] = time.monotonic() + delay
        if message:
            log.info("reconcile_retry", vm_id=vm_id, error=message, retry_in=round(delay, 2))
        with self.worker.status.write() as session:
            row = session.get(VirtualMachine, vm_id)
            if row is not None:
                row.error_generation = None  # retried with backoff, no longer parked on a permanent error
                if message:
                    row.last_error = message
                    if row.sync_status not in ("deleting",):
                        row.sync_status = "pending"
        if not self.stopping.is_set():
            self.nudge(vm_id, reset_backoff=False, urgent=urgent)

    def _record_error(self, vm_id: str, message: str, generation: int | None) -> None:
        log.warning("reconcile_error", vm_id=vm_id, error=message)
        with self.worker.status.write() as session:
            row = session.get(VirtualMachine, vm_id)
            if row is None:
                return
            row.last_error = message
            # The generation the failed attempt started from: if the spec moved meanwhile, the new spec has not
            # failed yet, and the database poll (or the nudge that came with the change) retries it at once.
            row.error_generation = generation if generation is not None else row.generation
            if not row.deletion_requested:
                row.sync_status = "error"
            spec_moved = row.generation != row.error_generation
        with self._cond:
            if spec_moved:
                self._track.not_before.pop(vm_id, None)
            else:
                # No retry until the spec changes or the slow periodic retry comes round.
                self._track.not_before[vm_id] = time.monotonic() + self.settings.error_retry_seconds

    def idle(self) -> bool:
        """True when nothing is queued or running (tests and shutdown use it)."""
        with self._cond:
            return not self._queued and not self._running and not self._dirty
