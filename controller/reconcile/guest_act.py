"""The executor's guest actions (issue 7): clone from a template, cloud-init regenerate, extra disks, pools.

A mixin of act.VmReconciler (it uses its client, view, status writer and `_write`). A clone carries pvem's
mark in its description from the first request, so a clone cut short by a crash is found by the mark
and adopted by the next pass, never cloned twice; its UPID is stored before the (long) wait.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from controller.proxmox.errors import ProxmoxError
from controller.proxmox.marks import description_with_mark
from controller.proxmox.normalize import ObservedVm as ListedVm
from controller.reconcile.model import ObservedVm
from controller.store.models import VirtualMachine, utcnow

if TYPE_CHECKING:
    from controller.proxmox.client import ProxmoxClient
    from controller.reconcile.act import Context
    from controller.reconcile.observe import ClusterView
    from controller.reconcile.state import StatusWriter
    from controller.store import Store

_EXTRA_DISK = re.compile(r"^scsi([1-9]\d*)$")


def cloud_init_reboot_pending(applied_at: datetime | None, observed: ObservedVm) -> bool:
    """A cloud-init change regenerated while the VM ran waits for the guest's next boot."""
    if applied_at is None or observed.status == "stopped":
        return False
    if observed.uptime is None:
        return True
    # Proxmox rounds uptime down to whole seconds: only a boot clearly after the regenerate counts.
    return observed.uptime + 1 > (utcnow() - applied_at).total_seconds()


def _permanent(message: str) -> Exception:
    from controller.reconcile.act import Permanent  # act imports this module

    return Permanent(message)


class GuestActions:
    client: ProxmoxClient
    view: ClusterView
    status: StatusWriter
    store: Store
    storage: str
    clone_timeout: float
    _write: Callable[..., None]
    _require_node: Callable[[str], None]

    # ------------------------------------------------------------- clone

    def _resolve_template(self, ref: int | str) -> ListedVm:
        for attempt in (1, 2):
            listed = self.view.vms() if attempt == 1 else self.view.refresh()
            templates = [vm for vm in listed.values() if vm.template]
            if isinstance(ref, int):
                found = listed.get(ref)
                if found is not None and not found.template:
                    raise _permanent(f"template {ref}: VM {ref} ({found.name or 'unnamed'}) is not a template")
                matches = [found] if found is not None else []
            else:
                matches = [vm for vm in templates if vm.name == ref]
            if len(matches) > 1:
                raise _permanent(f"template {ref!r} is ambiguous: templates "
                                 + ", ".join(str(vm.vmid) for vm in matches) + " share that name; give a vmid")
            if matches:
                return matches[0]
        names = ", ".join(f"{vm.name or '?'} ({vm.vmid})" for vm in sorted(templates, key=lambda vm: vm.vmid))
        raise _permanent(f"template {ref!r} not found in the Proxmox cluster (templates: {names or 'none'})")

    def _require_pool(self, pool: str) -> None:
        pools = self.client.pool_ids()
        if pool not in pools:
            raise _permanent(f"pool {pool!r} does not exist in Proxmox (pools: {', '.join(pools) or 'none'})")

    def _clone(self, ctx: Context, recreate: bool) -> None:
        vm = ctx.desired
        guest = vm.guest
        assert guest is not None and guest.template is not None
        template = self._resolve_template(guest.template)
        if template.disk_gb is not None and vm.disk_gb < template.disk_gb:
            raise _permanent(f"disk_gb is {vm.disk_gb} GB, smaller than the {template.disk_gb} GB boot disk of "
                             f"template {guest.template!r} (disks only grow)")
        if guest.pool is not None:
            self._require_pool(guest.pool)
        full = guest.clone_mode != "linked"
        target = vm.node if vm.node != template.node else None
        call = lambda: self.client.clone_vm(  # noqa: E731
            template.node, template.vmid, vm.vmid, name=vm.name, full=full, target=target,
            storage=self.storage if full else None, pool=guest.pool,
            description=description_with_mark(vm.id, guest.description or ""))
        try:
            self._write(ctx, "clone", call, wait_timeout=self.clone_timeout, long_task=True, template=template.vmid,
                        template_name=template.name, full=full, target=target, pool=guest.pool, recreate=recreate)
        except ProxmoxError as exc:
            if "already exist" in exc.message:  # taken since the listing: the next round re-plans
                self.view.invalidate()
                raise ProxmoxError(exc.message, transient=True, status=exc.status) from exc
            raise
        self.view.invalidate()
        self.status.set_vm(vm.id, provisioned=True, applied_disk_gb=None, migrated_generation=None,
                           applied_disks={}, applied_cloud_init=None, cloud_init_applied_at=None)

    # ----------------------------------------------------- after a config write

    def _set_applied_disks(self, vm_id: str, update: Callable[[dict[str, Any]], None]) -> None:
        with self.store.write() as session:
            row = session.get(VirtualMachine, vm_id)
            if row is not None:
                sizes = dict(row.applied_disks or {})
                update(sizes)
                row.applied_disks = sizes

    def _after_config_write(self, ctx: Context, changes: dict[str, Any]) -> None:
        """Record the extra disks just attached (their size) or detached (audited: the data stays in Proxmox)."""
        attached = {key: int(str(value).rpartition(":")[2]) for key, value in changes.items()
                    if _EXTRA_DISK.match(key) and isinstance(value, str) and str(value).rpartition(":")[2].isdigit()}
        detached = [key for key, value in changes.items() if _EXTRA_DISK.match(key) and value is None]
        if not attached and not detached:
            return

        def update(sizes: dict[str, Any]) -> None:
            sizes.update(attached)
            for key in detached:
                sizes.pop(key, None)

        self._set_applied_disks(ctx.desired.id, update)
        for key in detached:
            self.status.audit("disk_detached", ctx.desired.id, ctx.owner_id, {
                "vm_name": ctx.desired.name, "vmid": ctx.desired.vmid, "disk": key,
                "note": "detached, not deleted: Proxmox keeps the volume as an unusedN disk"})

    # --------------------------------------------------------------- actions

    def _do_cloudinit_regenerate(self, ctx: Context, digest: str | None) -> None:
        vm = ctx.desired

        def call() -> None:
            self.client.regenerate_cloudinit(ctx.node, vm.vmid)

        self._write(ctx, "cloudinit_regenerate", call)
        running = ctx.observed is not None and ctx.observed.status != "stopped"
        values: dict[str, Any] = {"applied_cloud_init": digest}
        if running:
            values["cloud_init_applied_at"] = utcnow()
        self.status.set_vm(vm.id, **values)

    def _do_disk_resize(self, ctx: Context, disk_key: str, size_gb: int) -> None:
        self._write(ctx, "resize", lambda: self.client.resize_disk(ctx.node, ctx.desired.vmid, disk_key, size_gb),
                    disk=disk_key, size_gb=size_gb)
        self._set_applied_disks(ctx.desired.id, lambda sizes: sizes.__setitem__(disk_key, size_gb))

    def _do_pool_move(self, ctx: Context, pool: str) -> None:
        self._require_pool(pool)
        old = ctx.observed.pool if ctx.observed else None

        def call() -> None:
            self.client.set_pool(ctx.desired.vmid, pool)

        self._write(ctx, "pool_move", call, pool=pool, old_pool=old)
        self.view.invalidate()
