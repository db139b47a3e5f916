"""`/api/vms`, `/api/vms/{id}`, `/api/vms/{id}/action`: VM desired state."""

from __future__ import annotations

from collections.abc import Callable

import falcon
import orjson

from api import vm_json
from api.resources import Op
from api.schemas import DeletedOut, Envelope, Paged, VmOut, envelope, paged, vm_dict
from api.validation import PAGE_QUERY, PAGE_QUERY_SCHEMAS, label_selector_param, page_param, parse_body
from controller import vms
from controller.create_queue import CreateQueue
from controller.specs import VmActionRequest, VmCreate, VmUpdate
from controller.store import Store

Nudge = Callable[[str], None]


class VmCollection:
    docs = {
        "GET": Op("List the caller's VMs (admins: all), oldest first", Paged[list[VmOut]],
                  query={"name": "only the VM(s) with this name",
                         "label_selector": "k=v[,k2=v2...]: only VMs carrying every one of these labels",
                         **PAGE_QUERY}, query_schemas=PAGE_QUERY_SCHEMAS),
        "POST": Op("Create a VM (desired state)", Envelope[VmOut], VmCreate, status=201,
                   errors=(400, 401, 403, 409)),
    }

    def __init__(self, store: Store, creates: CreateQueue, nudge: Nudge) -> None:
        self.store, self.creates, self.nudge = store, creates, nudge

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        name, selector, page = req.get_param("name"), label_selector_param(req), page_param(req)
        with self.store.connect() as conn:
            rows, token = vms.list_vm_rows(conn, req.context.actor, vm_json.select_list(self.store.dialect),
                                           name=name, labels=selector, page=page)
        resp.media = paged([orjson.Fragment(document) for document, in rows], page.size, token, include=page.paged)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        spec = parse_body(req, VmCreate)
        vm = self.creates.create(req.context.actor, spec)  # committed (with concurrent creates: group commit)
        resp.media = envelope(vm_dict(vm), "Virtual machine created successfully")
        resp.status = falcon.HTTP_201
        self.nudge(vm.id)


class VmItem:
    docs = {
        "GET": Op("One VM", Envelope[VmOut]),
        "PUT": Op("Update a VM's desired state (any subset of fields)", Envelope[VmOut], VmUpdate,
                  errors=(400, 401, 404, 409)),
        "DELETE": Op("Delete a VM (marks it; the controller destroys it, then the row goes)",
                     Envelope[DeletedOut]),
    }

    def __init__(self, store: Store, nudge: Nudge) -> None:
        self.store, self.nudge = store, nudge

    def on_get(self, req: falcon.Request, resp: falcon.Response, vm_id: str) -> None:
        with self.store.connect() as conn:
            (document,) = vms.get_vm_row(conn, req.context.actor, vm_id, vm_json.select_list(self.store.dialect))
        resp.media = envelope(orjson.Fragment(document))

    def on_put(self, req: falcon.Request, resp: falcon.Response, vm_id: str) -> None:
        update = parse_body(req, VmUpdate)
        with self.store.write() as session:
            vm = vms.update_vm(session, req.context.actor, vm_id, update)
            resp.media = envelope(vm_dict(vm), "Virtual machine updated successfully")
        self.nudge(vm_id)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, vm_id: str) -> None:
        with self.store.write() as session:
            vms.request_deletion(session, req.context.actor, vm_id)
        resp.media = envelope({"deleted": True}, "Virtual machine deleted successfully")
        self.nudge(vm_id)


class VmAction:
    docs = {"POST": Op("Power action: start, stop, restart, pause, unpause (changes desired state)",
                       Envelope[VmOut], VmActionRequest, errors=(400, 401, 404, 409))}

    def __init__(self, store: Store, nudge: Nudge) -> None:
        self.store, self.nudge = store, nudge

    def on_post(self, req: falcon.Request, resp: falcon.Response, vm_id: str) -> None:
        request = parse_body(req, VmActionRequest)
        with self.store.write() as session:
            vm = vms.request_action(session, req.context.actor, vm_id, request.action)
            resp.media = envelope(vm_dict(vm), f"Action {request.action} accepted")
        self.nudge(vm_id)
