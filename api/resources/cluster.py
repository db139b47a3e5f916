"""`/api/cluster/vms` (what the Proxmox cluster holds, managed or not) and `/api/vms/import` (take one over).

Both read Proxmox synchronously through the controller's importer, injected by the composition root;
without a configured Proxmox they answer 503.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import falcon
from pydantic import BaseModel, Field

from api.resources import Op
from api.schemas import Envelope, VmOut, envelope, vm_dict
from api.validation import parse_body
from controller import vms
from controller.actor import Actor
from controller.errors import Forbidden, Unavailable
from controller.specs import VmImportRequest
from controller.store import Store

NO_PROXMOX = "no Proxmox cluster is configured (set proxmox.host): there is nothing to list or import"


class ClusterReader(Protocol):
    def cluster_vms(self, actor: Actor) -> list[dict[str, Any]]: ...

    def import_vm(self, actor: Actor, vmid: int, owner_id: str | None = None,
                  management: str = "enforce") -> str: ...


class ClusterVmOut(BaseModel):
    vmid: int
    name: str | None
    node: str
    status: str
    template: bool
    managed: bool = Field(description="Whether pvem manages this VM")
    vm_id: str | None = Field(description="pvem's id for it, or null")


def _reader(importer: ClusterReader | None, actor: Actor, what: str) -> ClusterReader:
    if not actor.is_admin:
        raise Forbidden(f"only admins may {what}")
    if importer is None:
        raise Unavailable(NO_PROXMOX)
    return importer


class ClusterVms:
    docs = {"GET": Op("Every QEMU guest in the Proxmox cluster, and whether pvem manages it (admins)",
                      Envelope[list[ClusterVmOut]], errors=(401, 403, 503))}

    def __init__(self, importer: ClusterReader | None) -> None:
        self.importer = importer

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reader = _reader(self.importer, req.context.actor, "list the cluster's VMs")
        resp.media = envelope(reader.cluster_vms(req.context.actor))


class VmImport:
    docs = {"POST": Op("Import an existing Proxmox VM: its spec is what is observed; nothing in the guest "
                       "changes (admins)", Envelope[VmOut], VmImportRequest, status=201,
                       errors=(400, 401, 403, 404, 409, 503))}

    def __init__(self, store: Store, importer: ClusterReader | None, nudge: Callable[[str], None]) -> None:
        self.store, self.importer, self.nudge = store, importer, nudge

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        actor = req.context.actor
        if not actor.is_admin:
            raise Forbidden("only admins may import virtual machines")
        request = parse_body(req, VmImportRequest)
        reader = _reader(self.importer, actor, "import virtual machines")
        vm_id = reader.import_vm(actor, request.vmid, request.owner_id, request.management)
        with self.store.read() as session:
            resp.media = envelope(vm_dict(vms.get_vm(session, actor, vm_id)), "Virtual machine imported")
        resp.status = falcon.HTTP_201
        self.nudge(vm_id)
