"""The template inventory: the cluster's template VMs, kept in the database for the API (which never asks
Proxmox) and refreshed by the controller from the bulk listing its full pass already makes.

A template's config (boot disk size, cloud-init drive) is read only when the template is new or its listed
name, node or disk size changed, so an unchanged cluster costs no request beyond the listing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.log import get_logger
from controller.proxmox.client import ProxmoxClient
from controller.proxmox.errors import ProxmoxError
from controller.proxmox.guest_config import guest_from_config
from controller.proxmox.normalize import ObservedVm as ListedVm
from controller.store import Store
from controller.store.models import ClusterTemplate, utcnow

log = get_logger("pvem.templates")


def _changed(row: ClusterTemplate, listed: ListedVm) -> bool:
    return (row.name, row.node, row.listed_disk_bytes) != (listed.name, listed.node, listed.maxdisk_bytes)


Inventory = dict[int, tuple[str | None, str, int | None]]  # vmid -> (name, node, listed disk bytes)


def inventory(session: Session) -> Inventory:
    """What cluster_templates holds, as refresh_inventory compares it with a listing."""
    return {row.vmid: (row.name, row.node, row.listed_disk_bytes) for row in session.scalars(select(ClusterTemplate))}


def refresh_inventory(store: Store, client: ProxmoxClient, listed: dict[int, ListedVm],
                      known: Inventory | None = None) -> None:
    """Bring cluster_templates in line with a fresh listing; a failed config read keeps the old row.
    `known`: the inventory as read in the caller's transaction (the full pass's), saving a read."""
    templates = {vmid: vm for vmid, vm in listed.items() if vm.template}
    if known is None:
        with store.read() as session:
            known = inventory(session)
    details: dict[int, tuple[int | None, bool]] = {}
    for vmid, vm in templates.items():
        if known.get(vmid) == (vm.name, vm.node, vm.maxdisk_bytes):
            continue
        try:
            config = client.vm_config(vm.node, vmid)
        except ProxmoxError as exc:
            log.info("template_read_failed", vmid=vmid, error=exc.message)
            continue
        details[vmid] = (config.disk_gb or vm.disk_gb, guest_from_config(config.raw).cloud_init_drive is not None)
    if not details and set(known) == set(templates):
        return
    now = utcnow()
    with store.write() as session:
        for row in session.scalars(select(ClusterTemplate)):
            if row.vmid not in templates:
                session.delete(row)
        for vmid, (disk_gb, has_cloud_init) in details.items():
            vm = templates[vmid]
            session.merge(ClusterTemplate(vmid=vmid, name=vm.name, node=vm.node, disk_gb=disk_gb,
                                          has_cloud_init=has_cloud_init, listed_disk_bytes=vm.maxdisk_bytes,
                                          seen_at=now))


def list_templates(session: Session) -> list[dict[str, Any]]:
    """The inventory as `GET /api/templates` answers it, by name then vmid."""
    rows = session.scalars(select(ClusterTemplate).order_by(ClusterTemplate.name, ClusterTemplate.vmid))
    return [{"vmid": row.vmid, "name": row.name, "node": row.node, "disk_gb": row.disk_gb,
             "has_cloud_init": row.has_cloud_init} for row in rows]
