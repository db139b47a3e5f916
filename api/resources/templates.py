"""`/api/templates`: the cluster's template VMs, from the controller's inventory (no request to Proxmox)."""

from __future__ import annotations

import falcon
from pydantic import BaseModel, Field

from api.resources import Op
from api.schemas import Envelope, envelope
from controller.store import Store
from controller.templates import list_templates


class TemplateOut(BaseModel):
    vmid: int
    name: str | None
    node: str
    disk_gb: int | None = Field(description="Boot disk size in GB (null until the controller has read it).")
    has_cloud_init: bool = Field(description="Whether the template has a cloud-init drive (pvem adds one to "
                                             "clones that lack it).")


class TemplateCollection:
    docs = {"GET": Op("The cluster's templates (refreshed by the controller's full pass)",
                      Envelope[list[TemplateOut]], errors=(401,))}

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.store.read() as session:
            resp.media = envelope(list_templates(session))
