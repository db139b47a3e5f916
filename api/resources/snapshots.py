"""`/api/vms/{id}/snapshots[/{snapshot_id}[/rollback]]`: snapshot desired state."""

from __future__ import annotations

import falcon

from api.resources import Op
from api.resources.vms import Nudge
from api.schemas import DeletedOut, Envelope, Paged, SnapshotOut, envelope, paged, snapshot_dict
from api.validation import PAGE_QUERY, PAGE_QUERY_SCHEMAS, page_param, parse_body
from controller import snapshots
from controller.specs import SnapshotCreate
from controller.store import Store


class SnapshotCollection:
    docs = {
        "GET": Op("A VM's snapshots, oldest first", Paged[list[SnapshotOut]], query=dict(PAGE_QUERY),
                  query_schemas=PAGE_QUERY_SCHEMAS),
        "POST": Op("Create a snapshot", Envelope[SnapshotOut], SnapshotCreate, status=201,
                   errors=(400, 401, 404, 409)),
    }

    def __init__(self, store: Store, nudge: Nudge) -> None:
        self.store, self.nudge = store, nudge

    def on_get(self, req: falcon.Request, resp: falcon.Response, vm_id: str) -> None:
        page = page_param(req)
        with self.store.read() as session:
            items, token = snapshots.list_snapshots_page(session, req.context.actor, vm_id, page)
            resp.media = paged([snapshot_dict(item) for item in items], page.size, token, include=page.paged)

    def on_post(self, req: falcon.Request, resp: falcon.Response, vm_id: str) -> None:
        spec = parse_body(req, SnapshotCreate)
        with self.store.write() as session:
            snapshot = snapshots.create_snapshot(session, req.context.actor, vm_id, spec)
            resp.media = envelope(snapshot_dict(snapshot), "Snapshot created successfully")
        resp.status = falcon.HTTP_201
        self.nudge(vm_id)


class SnapshotItem:
    docs = {"DELETE": Op("Delete a snapshot (marks it; the controller removes it)", Envelope[DeletedOut])}

    def __init__(self, store: Store, nudge: Nudge) -> None:
        self.store, self.nudge = store, nudge

    def on_delete(self, req: falcon.Request, resp: falcon.Response, vm_id: str, snapshot_id: str) -> None:
        with self.store.write() as session:
            snapshots.request_deletion(session, req.context.actor, vm_id, snapshot_id)
        resp.media = envelope({"deleted": True}, "Snapshot deleted successfully")
        self.nudge(vm_id)


class SnapshotRollback:
    docs = {"POST": Op("Roll the VM back to this snapshot (a one-shot request)", Envelope[SnapshotOut],
                       errors=(401, 404, 409))}

    def __init__(self, store: Store, nudge: Nudge) -> None:
        self.store, self.nudge = store, nudge

    def on_post(self, req: falcon.Request, resp: falcon.Response, vm_id: str, snapshot_id: str) -> None:
        with self.store.write() as session:
            snapshot = snapshots.request_rollback(session, req.context.actor, vm_id, snapshot_id)
            resp.media = envelope(snapshot_dict(snapshot), "Rollback requested")
        self.nudge(vm_id)
