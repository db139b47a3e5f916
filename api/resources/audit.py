"""`/api/audit-logs`: the audit trail, newest first, scoped to the caller unless admin."""

from __future__ import annotations

from typing import Any

import falcon

from api.errors import ApiError
from api.resources import Op
from api.schemas import AuditOut, Paged, audit_dict, paged
from api.validation import int_param
from controller import audit, pages
from controller.actor import Actor
from controller.store import Store
from controller.store.models import AuditLog


class AuditLogs:
    docs = {"GET": Op("Audit records, newest first", Paged[list[AuditOut]], query={
        "limit": "Records per page (default 50, at most 500).",
        "continue": "The `pagination.continue` value of the previous page (keyset: deep pages cost the same).",
        "offset": "Records to skip (default 0; not with continue).",
        "action": "Only this action, e.g. create_vm.",
        "resource_id": "Only records about this resource.",
    }, query_schemas={"limit": {"type": "integer", "minimum": 1}, "offset": {"type": "integer", "minimum": 0}})}

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        limit = min(int_param(req, "limit", 50, 1), audit.MAX_LIMIT)
        offset = int_param(req, "offset", 0, 0)
        token = req.get_param("continue") or None
        if token is not None and offset:
            raise ApiError(400, "offset: cannot be combined with continue", field="offset")
        filters = {"action": req.get_param("action") or None, "resource_id": req.get_param("resource_id") or None}
        with self.store.read() as session:
            if offset:
                records = audit.list_records(session, req.context.actor, limit + 1, offset, **filters)
                # An offset page still hands out a cursor, so a client can switch to keyset from here on.
                more, records = len(records) > limit, records[:limit]
                next_token = pages.encode("audit", (records[-1].seq,)) if more and records else None
            else:
                records, next_token = audit.list_page(session, req.context.actor,
                                                      pages.PageRequest(limit, token), **filters)
            resp.media = paged([_as_seen_by(record, req.context.actor) for record in records], limit, next_token)


def _as_seen_by(record: AuditLog, viewer: Actor) -> dict[str, Any]:
    shown = audit_dict(record)
    if audit.shown_as_role(record, viewer):
        shown.update(user_id=None, ip_address=None, actor="admin",
                     details={key: value for key, value in shown["details"].items()
                              if key not in audit.ADMIN_HIDDEN_DETAILS})
    return shown
