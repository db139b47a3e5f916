"""Acting on one VM: observe, plan, execute, observe again, until the plan is empty; then record.

Every Proxmox write that returns a task UPID stores it on the VM's row before pausing to wait (a task
already over at the first poll, as plain creates and power changes mostly are, is never stored), so a
restarted controller resumes waiting instead of writing again. Every write is audited (actor
`controller`) twice: its intent (`outcome: "started"`) committed before the request is sent, so a crash
can never leave a change in Proxmox that the audit does not show, then its outcome (`ok` or `error`).
A success's outcome is held back to share the VM's next status transaction (the next write's intent,
or "synced"): a create and start cost three status writes, not seven (see StatusWriter).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.log import get_logger
from controller.proxmox.client import ProxmoxClient
from controller.proxmox.errors import ProxmoxError
from controller.proxmox.marks import MARK_TAG, description_with_mark, tags_with_mark
from controller.reconcile import state
from controller.reconcile.child_act import ChildActions
from controller.reconcile.diff import drift, plan
from controller.reconcile.guest_act import GuestActions, cloud_init_reboot_pending
from controller.reconcile.guest_diff import guest_before
from controller.reconcile.impact import pending_needs_reboot
from controller.reconcile.model import Action, DesiredVm, ObservedVm, Policy
from controller.reconcile.observe import ClusterView, created_vm, observe_vm, summary
from controller.reconcile.power_act import PowerActions
from controller.store import Store
from controller.store.models import VirtualMachine
from controller.vm_create import lock_vmid_allocation

log = get_logger("pvem.reconciler")

MAX_ROUNDS = 12
# After these the plan is re-made from a fresh observation (positions, node or existence changed).
REPLAN_AFTER = {"create", "reassign_vmid", "migrate", "destroy", "forget_vm", "rule_add", "rule_move",
                "rule_update", "rule_delete"}
DRIFT_KINDS = {"update_config", "migrate", "start", "shutdown", "stop", "suspend", "resume", "rule_add",
               "rule_move", "rule_update", "rule_delete", "firewall_enable", "snapshot_create", "snapshot_describe"}


def redacted(changes: dict[str, Any]) -> dict[str, Any]:
    """Config changes as audit records show them: the cloud-init password never, only that it changed."""
    return {key: ("(changed)" if key == "cipassword" and value is not None else value)
            for key, value in changes.items()}

def reboot_required(observed: ObservedVm) -> bool:
    """Changes wait in Proxmox for a reboot of this running guest (a stopped one takes them at its start)."""
    return observed.status != "stopped" and bool(pending_needs_reboot(observed.pending_keys, observed.hotplug))


class Permanent(Exception):
    """A problem retrying will not fix (a conflict, a policy that says report): wait for a spec change."""


@dataclass
class Outcome:
    converged: bool
    message: str | None = None


@dataclass
class Context:
    desired: DesiredVm
    owner_id: str
    restart_requests: int
    node: str  # where the VM is now (observed), or where it is to be created
    observed: ObservedVm | None
    mark_syncing: bool = False  # sync_status "syncing" goes with the first status write of this plan


class VmReconciler(GuestActions, ChildActions, PowerActions):
    def __init__(self, client: ProxmoxClient, store: Store, view: ClusterView, policy: Policy,
                 storage: str, bridge: str, vmid_range: tuple[int, int], stopping: threading.Event,
                 task_timeout: float = 900, clone_timeout: float = 3600,
                 fence: Callable[[Session], None] | None = None) -> None:
        self.client, self.store, self.view = client, store, view
        self.policy = replace(policy, storage=storage, bridge=bridge)
        self.storage, self.bridge, self.vmid_range = storage, bridge, vmid_range
        self.stopping = stopping
        self.task_timeout = task_timeout
        self.clone_timeout = clone_timeout
        self.status = state.StatusWriter(store, fence)
        # Automatic reboots in flight, fleet-wide; VMs waiting for a slot are nudged when one frees.
        self.reboot_slots = threading.BoundedSemaphore(max(1, policy.max_concurrent_reboots))
        self.reboot_waiting: set[str] = set()
        self._reboot_lock = threading.Lock()
        self.on_reboot_slot_free: Callable[[list[str]], None] | None = None

    def run(self, vm_id: str) -> Outcome:
        try:
            return self._run(vm_id)
        finally:
            self.status.flush(vm_id)  # outcomes still held back (an attempt that ended without a status write)

    def _run(self, vm_id: str) -> Outcome:
        known: ObservedVm | None = None  # what Proxmox holds after this attempt's last writes, when that is certain
        rounds = 0
        while rounds < MAX_ROUNDS:
            if self.stopping.is_set():
                return Outcome(False, "controller stopping")
            self.status.flush(vm_id)  # the row read next must show this attempt's outcomes
            with self.store.read() as session:
                loaded = state.load_vm(session, vm_id)
                if loaded is None:
                    return Outcome(True)
                desired, row = loaded
                owner_id, restart_requests, upid, was_synced = (row.owner_id, row.restart_requests, row.last_upid,
                                                                row.sync_status == "synced")
                cloud_init_applied_at: datetime | None = row.cloud_init_applied_at
            if upid:
                if not desired.deleting and rounds == 0:
                    self.status.set_vm(vm_id, sync_status="syncing")  # e.g. a long clone resumed after a restart
                self._resume(vm_id, upid)
            if desired.management == "observe":
                return self._observe_only(desired, owner_id, [dict(item) for item in row.drift or []])
            # After a plain create or a power task, what Proxmox holds is known: no need to read it back.
            observed = known if known is not None else self._observe(
                desired, confirm_miss=desired.provisioned or bool(upid))
            known = None
            if observed is not None and cloud_init_reboot_pending(cloud_init_applied_at, observed):
                # A regenerated cloud-init drive is read at the next boot: a pending change like any other.
                observed = replace(observed, pending_keys=(*observed.pending_keys, "cloud-init"))
            while rounds < MAX_ROUNDS:
                rounds += 1
                actions = plan(desired, observed, self.policy)
                if not actions:
                    assert observed is not None  # an empty plan means the VM exists and is ours
                    if self.status.synced(desired, summary(observed), observed.status, observed.node,
                                          reboot_required=reboot_required(observed)):
                        return Outcome(True)
                    break  # the spec moved while we worked: plan again from it
                ctx = Context(desired, owner_id, restart_requests, observed.node if observed else desired.node,
                              observed, mark_syncing=not desired.deleting and rounds == 1)
                if was_synced and desired.observed_generation == desired.generation:
                    self._audit_drift(ctx, actions)
                was_synced = False
                try:
                    known = self._execute_plan(ctx, actions, observed)
                finally:
                    if ctx.mark_syncing:  # no Proxmox write carried it
                        self.status.set_vm(vm_id, sync_status="syncing")
                if known is None:
                    break  # read Proxmox again
                if any(_one_shot(action) for action in actions):
                    break  # a restart or rollback request was honoured: reload the spec (known state is kept)
                observed = known  # plan on from what the writes left, without reading it back
        return Outcome(False, "not converged yet")

    def _execute_plan(self, ctx: Context, actions: list[Action], observed: ObservedVm | None) -> ObservedVm | None:
        """Run the actions in order (up to the first that needs a fresh observation); what Proxmox now holds
        if that is certain without reading it back, else None."""
        known = observed
        for action in actions:
            try:
                self._execute(ctx, action)
            except ProxmoxError as exc:
                if action.kind == "create" and "already exist" in exc.message:
                    # Taken since the listing we trusted (by someone else, or by our own create before a
                    # crash): look again with a listing taken now, and plan from that.
                    self.view.refresh(newer_than=time.monotonic())
                    return None
                raise
            known = _known_after(known, action, ctx.desired)
            if action.kind in REPLAN_AFTER and (known is None or action.kind != "create"):
                return None
        return known

    # ------------------------------------------------------------- observe

    def _observe_only(self, desired: DesiredVm, owner_id: str, known_drift: list[dict[str, Any]]) -> Outcome:
        """management: observe. Read, compare, record drift; never write to Proxmox. Deleting the row only
        releases the VM (pvem stops managing it; the guest stays as it is)."""
        if desired.deleting:
            self.status.forget_vm(desired, owner_id, desired.name)
            return Outcome(True)
        observed = self._observe(desired)
        if observed is None:
            raise Permanent(f"VM {desired.vmid} is not in Proxmox (management is observe: pvem does not create it)")
        if observed.mark != desired.id:
            raise Permanent(f"vmid {desired.vmid} is held by a VM pvem did not create or import "
                            f"({observed.name or 'unnamed'}); pvem will not touch it")
        found = drift(desired, observed)
        new = [item for item in found if item not in known_drift]
        if self.status.observed_only(desired, summary(observed), observed.status, observed.node,
                                     reboot_required(observed), found):
            if new:
                log.info("drift_detected", vm_name=desired.name, vmid=desired.vmid,
                         fields=[item["field"] for item in new])
                self.status.audit("drift_detected", desired.id, owner_id, {
                    "vm_name": desired.name, "vmid": desired.vmid, "drift": new})
            return Outcome(True)
        return Outcome(False, "the spec moved while observing")

    # ---------------------------------------------------------------- helpers

    def _observe(self, desired: DesiredVm, trust_listed_status: bool = False,
                 confirm_miss: bool = True) -> ObservedVm | None:
        """Deep-read the VM where the listing says it is; if it moved meanwhile, look again once.

        `trust_listed_status`: take the power state from the listing (a resync of a VM the pass found in sync),
        unless the spec is about pausing (the listing says running for a paused VM)."""
        for attempt in (1, 2):
            listed = self.view.locate(desired.vmid, confirm_miss=confirm_miss)
            if listed is None:
                return None
            trust = trust_listed_status and desired.power_state != "paused"
            try:
                return observe_vm(self.client, listed, full=not desired.deleting,
                                  trust_listed_status=trust and attempt == 1,
                                  firewall_options=bool(desired.rules))
            except ProxmoxError as exc:
                if attempt == 2 or "does not exist" not in exc.message:
                    raise
                self.view.invalidate()  # migrated or destroyed since the listing was taken
                confirm_miss = True
        return None

    def _resume(self, vm_id: str, upid: str) -> None:
        """A task started before a restart: wait for it (its outcome shows in the next observation)."""
        timeout = self.clone_timeout if ":qmclone:" in upid else self.task_timeout
        try:
            self.client.wait_task(upid, timeout=timeout, should_stop=self.stopping.is_set)
        except ProxmoxError as exc:
            if exc.transient:
                raise
        self.status.set_vm(vm_id, last_upid=None)

    def _write(self, ctx: Context, operation: str, call: Callable[[], str | None], wait_timeout: float | None = None,
               on_success: dict[str, Any] | None = None, long_task: bool = False, **details: Any) -> None:
        """One Proxmox write: audit the intent, send it, wait for its task (storing the UPID before the first
        pause, or with `long_task` before the first poll), audit the outcome either way. The outcome, with
        `on_success` (VM status columns) and the clearing of the UPID, rides on the VM's next status
        transaction (StatusWriter deferred records)."""
        vm = ctx.desired
        record: dict[str, Any] = {"vm_name": vm.name, "vmid": vm.vmid, "node": ctx.node, **details}
        log.info(f"reconcile_{operation}", vm_name=vm.name, vmid=vm.vmid, node=ctx.node,
                 **{key: value for key, value in details.items() if key != "changes"})
        # The intent, committed (and fenced) before anything reaches Proxmox; the plan's first status write
        # (sync_status "syncing") goes with it.
        self.status.record(vm.id, f"pve_{operation}", ctx.owner_id, {**record, "outcome": "started"},
                           self._syncing(ctx))
        stored = False

        def store_upid() -> None:  # the task outlives the first poll: a restarted controller resumes the wait
            nonlocal stored
            self.status.set_vm(vm.id, last_upid=upid)
            stored = True

        try:
            upid = call()
            record["upid"] = upid
            if upid:
                if long_task:
                    store_upid()
                self.client.wait_task(upid, timeout=wait_timeout or self.task_timeout,
                                      should_stop=self.stopping.is_set, on_wait=None if stored else store_upid)
        except ProxmoxError as exc:
            handed_over = exc.transient and "stopped waiting" in exc.message  # the UPID stays for the next run
            self.status.record(vm.id, f"pve_{operation}", ctx.owner_id,
                               {**record, "outcome": "error", "error": exc.message},
                               {"last_upid": None} if stored and not handed_over else {})
            raise
        self.status.record(vm.id, f"pve_{operation}", ctx.owner_id, {**record, "outcome": "ok"},
                           {**({"last_upid": None} if stored else {}), **(on_success or {})}, defer=True)

    @staticmethod
    def _syncing(ctx: Context) -> dict[str, Any]:
        """{"sync_status": "syncing"} the first time a plan writes status (saves a transaction of its own)."""
        if not ctx.mark_syncing:
            return {}
        ctx.mark_syncing = False
        return {"sync_status": "syncing"}

    def _audit_drift(self, ctx: Context, actions: list[Action]) -> None:
        drifted = [action for action in actions if action.kind in DRIFT_KINDS]
        if not drifted or ctx.observed is None:
            return
        observed, vm = ctx.observed, ctx.desired
        before = {"name": observed.name, "cores": observed.cores, "memory_mb": observed.memory_mb,
                  "node": observed.node, "status": observed.status}
        after = {"name": vm.name, "cores": vm.cores, "memory_mb": vm.memory_mb, "node": vm.node,
                 "status": vm.power_state}
        changed = {key: {"before": before[key], "after": after[key]} for key in before if before[key] != after[key]}
        for action in drifted:  # guest config keys (agent, tags, netN, ...): what the listing never shows
            if action.kind == "update_config":
                for key, value in redacted(action.params["changes"]).items():
                    if key not in ("name", "cores", "memory"):
                        changed[key] = {"before": guest_before(observed, key), "after": value}
        log.info("drift_corrected", vm_name=vm.name, vmid=vm.vmid, fields=sorted(changed),
                 actions=[a.kind for a in drifted])
        self.status.audit("drift_corrected", vm.id, ctx.owner_id, {
            "vm_name": vm.name, "vmid": vm.vmid, "fields": changed, "actions": [a.kind for a in drifted]})

    # --------------------------------------------------------------- dispatch

    def _execute(self, ctx: Context, action: Action) -> None:
        handler = getattr(self, f"_do_{action.kind}")
        handler(ctx, **action.params)

    def _require_node(self, node: str) -> None:
        # Proxmox answers a request for an unknown node with a lookup failure that looks transient;
        # a typo in desired state should be an error the user sees, not an endless retry.
        if not self.view.has_node(node):
            known = ", ".join(self.view.node_names()) or "none"
            raise Permanent(f"node {node!r} is not in the Proxmox cluster (nodes: {known})")

    def _do_create(self, ctx: Context, recreate: bool = False) -> None:
        vm = ctx.desired
        self._require_node(vm.node)
        if recreate:
            self.status.audit("vm_missing", vm.id, ctx.owner_id, {"vm_name": vm.name, "vmid": vm.vmid,
                                                                   "policy": "recreate"})
        if vm.guest is not None and vm.guest.template is not None:
            self._clone(ctx, recreate)
            return
        text = (vm.guest.description or "") if vm.guest else ""
        tags = tags_with_mark(vm.guest.tags) if vm.guest else MARK_TAG
        # agent and onboot go with the create, so a plain VM needs no config write after it (see _known_after)
        extra = {"agent": 1 if vm.guest.agent else None, "onboot": 1 if vm.guest.start_on_boot else None} \
            if vm.guest else None
        call = lambda: self.client.create_vm(  # noqa: E731
            vm.node, vm.vmid, name=vm.name, cores=vm.cores, memory_mb=vm.memory_mb, disk_gb=vm.disk_gb,
            storage=self.storage, bridge=self.bridge, description=description_with_mark(vm.id, text), tags=tags,
            extra=extra)
        try:
            self._write(ctx, "create", call, cores=vm.cores, memory_mb=vm.memory_mb, disk_gb=vm.disk_gb,
                        recreate=recreate, on_success={"provisioned": True, "applied_disk_gb": None,
                                                       "migrated_generation": None})
        except ProxmoxError as exc:
            if "already exist" in exc.message:  # taken since the listing: the next round re-plans
                self.view.invalidate()
                raise ProxmoxError(exc.message, transient=True, status=exc.status) from exc
            raise
        self.view.invalidate()

    def _do_reassign_vmid(self, ctx: Context, taken_by: str | None = None) -> None:
        vm = ctx.desired
        low, high = self.vmid_range
        taken = self.view.taken_vmids()
        with self.status.write() as session:
            # Lock order as the API's: the VM's row, then the allocation lock.
            session.execute(select(VirtualMachine.id).where(VirtualMachine.id == vm.id).with_for_update())
            lock_vmid_allocation(session)
            used = set(session.scalars(select(VirtualMachine.vmid)))
            candidate = next((n for n in range(vm.vmid + 1, high + 1) if n not in taken and n not in used), None)
            if candidate is None:
                candidate = next((n for n in range(low, vm.vmid) if n not in taken and n not in used), None)
            if candidate is None:
                raise Permanent(f"no free vmid in {low}..{high}")
            session.get_one(VirtualMachine, vm.id).vmid = candidate
        self.status.audit("vmid_reassigned", vm.id, ctx.owner_id, {
            "vm_name": vm.name, "old_vmid": vm.vmid, "new_vmid": candidate, "taken_by": taken_by})

    def _do_report_missing(self, ctx: Context) -> None:
        self.status.audit("vm_missing", ctx.desired.id, ctx.owner_id, {
            "vm_name": ctx.desired.name, "vmid": ctx.desired.vmid, "policy": "report"})
        raise Permanent(f"VM {ctx.desired.vmid} has disappeared from Proxmox (controller.on_missing is report)")

    def _do_conflict(self, ctx: Context, message: str) -> None:
        raise Permanent(message)

    def _do_wait_for_lock(self, ctx: Context, lock: str) -> None:
        raise ProxmoxError(f"VM is locked ({lock})", transient=True)

    def _do_migrate(self, ctx: Context, target: str, online: bool) -> None:
        vm = ctx.desired
        self._require_node(target)
        self._write(ctx, "migrate", lambda: self.client.migrate(ctx.node, vm.vmid, target, online,
                                                                 with_local_disks=online),
                    target=target, online=online)
        self.view.invalidate()
        self.status.set_vm(vm.id, migrated_generation=vm.generation)

    def _do_update_config(self, ctx: Context, changes: dict[str, Any]) -> None:
        if not changes:  # nothing to change is never a write (nor an audited intent)
            return
        digest = ctx.observed.digest if ctx.observed else None
        self._write(ctx, "update_config", lambda: self.client.update_config(ctx.node, ctx.desired.vmid, changes,
                                                                             digest), changes=redacted(changes))
        self._after_config_write(ctx, changes)

    def _do_resize(self, ctx: Context, disk_key: str, size_gb: int) -> None:
        self._write(ctx, "resize", lambda: self.client.resize_disk(ctx.node, ctx.desired.vmid, disk_key, size_gb),
                    disk=disk_key, size_gb=size_gb)
        self.status.set_vm(ctx.desired.id, applied_disk_gb=size_gb)

    def _do_destroy(self, ctx: Context) -> None:
        self._write(ctx, "destroy", lambda: self.client.destroy(ctx.node, ctx.desired.vmid))
        self.view.invalidate()
        self._do_forget_vm(ctx)

    def _do_forget_vm(self, ctx: Context) -> None:
        self.status.forget_vm(ctx.desired, ctx.owner_id, ctx.desired.name)


# The power state a successful power task leaves; a start or reboot also applies pending config.
POWER_RESULT = {"start": "running", "resume": "running", "reboot": "running", "shutdown": "stopped",
                "stop": "stopped", "suspend": "paused"}
NO_PROXMOX_EFFECT = {"skip_restart"}


def _one_shot(action: Action) -> bool:
    """Whether the action honoured a one-shot request (restart, rollback): the spec must be read again."""
    return action.kind in ("reboot", "skip_restart", "snapshot_rollback") or bool(
        action.kind == "start" and action.params.get("completes_restart"))


def _known_after(known: ObservedVm | None, action: Action, desired: DesiredVm) -> ObservedVm | None:
    """What Proxmox holds after `action` succeeded, if certain without reading it back; else None.

    A plain create leaves the VM as created (observe.created_vm); a power task leaves a known power state.
    Anything else (config, disks, snapshots, rules, moves, or a create from a template) is read back."""
    if action.kind == "create":
        guest = desired.guest
        # A clone, extra disks, NICs, cloud-init or a pool need config writes after the create: read it back.
        plain = guest is None or (guest.template is None and not guest.disks and guest.networks is None
                                  and guest.cloud_init is None and guest.pool is None)
        return created_vm(desired) if plain else None
    if known is None:
        return None
    if action.kind in POWER_RESULT:
        status = POWER_RESULT[action.kind]
        pending = () if status == "running" and action.kind != "resume" else known.pending_keys
        return replace(known, status=status, pending_keys=pending, lock=None)
    if action.kind in NO_PROXMOX_EFFECT:
        return known
    return None
