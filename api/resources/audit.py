"""`/api/audit-logs`: the audit trail, newest first, scoped to the caller unless admin."""

from __future__ import annotations

from typing import Any

import falcon

from api.resources import Op
from api.schemas import AuditOut, Envelope, audit_dict, envelope
from api.validation import int_param
from controller import audit
from controller.actor import Actor
from controller.store import Store
from controller.store.models import AuditLog


class AuditLogs:
    docs = {"GET": Op("Audit records, newest first", Envelope[list[AuditOut]], query={
        "limit": "Records per page (default 50, at most 500).",
        "offset": "Records to skip (default 0).",
        "action": "Only this action, e.g. create_vm.",
        "resource_id": "Only records about this resource.",
    })}

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        limit = min(int_param(req, "limit", 50, 1), audit.MAX_LIMIT)
        offset = int_param(req, "offset", 0, 0)
        with self.store.read() as session:
            records = audit.list_records(session, req.context.actor, limit, offset,
                                         action=req.get_param("action") or None,
                                         resource_id=req.get_param("resource_id") or None)
            resp.media = envelope([_as_seen_by(record, req.context.actor) for record in records])


def _as_seen_by(record: AuditLog, viewer: Actor) -> dict[str, Any]:
    shown = audit_dict(record)
    if audit.shown_as_role(record, viewer):
        shown.update(user_id=None, ip_address=None, actor="admin",
                     details={key: value for key, value in shown["details"].items()
                              if key not in audit.ADMIN_HIDDEN_DETAILS})
    return shown
