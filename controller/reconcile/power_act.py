"""The executor's power actions on a VM: start, shutdown, stop, suspend, resume, reboot.

A mixin of act.VmReconciler, as guest_act and child_act are (it uses its client, status writer and
`_write`, which audits each write's intent before sending it). Automatic reboots (pending config,
regenerated cloud-init) take one of `controller.max_concurrent_reboots` slots and hold it until the
guest runs again; a restart a user asked for is never held back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from controller.proxmox.errors import ProxmoxError
from controller.reconcile.observe import power_status

if TYPE_CHECKING:
    from controller.proxmox.client import ProxmoxClient
    from controller.reconcile.act import Context
    from controller.reconcile.model import Policy
    from controller.reconcile.state import StatusWriter


class PowerActions:
    client: ProxmoxClient
    status: StatusWriter
    policy: Policy
    stopping: threading.Event
    reboot_slots: threading.BoundedSemaphore
    reboot_waiting: set[str]
    _reboot_lock: threading.Lock
    on_reboot_slot_free: Callable[[list[str]], None] | None
    _write: Callable[..., None]

    def _do_start(self, ctx: Context, completes_restart: bool = False) -> None:
        self._write(ctx, "start", lambda: self.client.start(ctx.node, ctx.desired.vmid))
        if completes_restart:
            self.status.set_vm(ctx.desired.id, restarts_done=ctx.restart_requests)

    def _do_shutdown(self, ctx: Context, timeout: int) -> None:
        self._write(ctx, "shutdown", lambda: self.client.shutdown(ctx.node, ctx.desired.vmid, timeout,
                                                                   force_stop=True), timeout=timeout)

    def _do_stop(self, ctx: Context) -> None:
        self._write(ctx, "stop", lambda: self.client.stop(ctx.node, ctx.desired.vmid))

    def _do_suspend(self, ctx: Context) -> None:
        self._write(ctx, "suspend", lambda: self.client.suspend(ctx.node, ctx.desired.vmid))

    def _do_resume(self, ctx: Context) -> None:
        self._write(ctx, "resume", lambda: self.client.resume(ctx.node, ctx.desired.vmid))

    def _do_reboot(self, ctx: Context, reason: str, automatic: bool = False) -> None:
        if not automatic:  # a restart a user asked for is never held back by the reboot limit
            self._write(ctx, "reboot", lambda: self.client.reboot(ctx.node, ctx.desired.vmid), reason=reason)
            self.status.set_vm(ctx.desired.id, cloud_init_applied_at=None)  # the guest reads its new drive now
            if ctx.desired.restart_pending:
                self.status.set_vm(ctx.desired.id, restarts_done=ctx.restart_requests)
            return
        vm_id = ctx.desired.id
        if not self.reboot_slots.acquire(blocking=False):
            with self._reboot_lock:
                self.reboot_waiting.add(vm_id)
            limit = self.policy.max_concurrent_reboots
            raise ProxmoxError(f"waiting for a reboot slot (controller.max_concurrent_reboots is {limit})",
                               transient=True)
        try:
            with self._reboot_lock:
                self.reboot_waiting.discard(vm_id)
            self._write(ctx, "reboot", lambda: self.client.reboot(ctx.node, ctx.desired.vmid), reason=reason,
                        automatic=True)
            self.status.set_vm(ctx.desired.id, cloud_init_applied_at=None)
            self._wait_running(ctx)
        finally:
            self.reboot_slots.release()
            with self._reboot_lock:
                waiting = sorted(self.reboot_waiting)
            if waiting and self.on_reboot_slot_free is not None:
                self.on_reboot_slot_free(waiting)

    def _wait_running(self, ctx: Context) -> None:
        """After an automatic reboot: hold the slot until the guest is back running (bounded)."""
        self.status.flush(ctx.desired.id)  # the reboot's outcome is not held back during the wait
        deadline = time.monotonic() + self.policy.shutdown_timeout + 60
        while not self.stopping.is_set() and time.monotonic() < deadline:
            if power_status(self.client.vm_status(ctx.node, ctx.desired.vmid)) == "running":
                return
            time.sleep(0.2)

    def _do_skip_restart(self, ctx: Context) -> None:
        self.status.set_vm(ctx.desired.id, restarts_done=ctx.restart_requests)
