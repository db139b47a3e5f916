"""The audit trail: one append-only record per mutation, and the queries that read it back.

A record names who acted (`user_id`, or actor `controller`/`system`), on what (`resource_type`,
`resource_id`), whose resource it was (`owner_id`, so users also see the controller's work on their
VMs), what changed (`details`) and from where (`ip_address`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, or_, select
from sqlalchemy.orm import Session

from controller import pages
from controller.actor import Actor
from controller.store.models import AuditLog, new_id, utcnow

MAX_LIMIT = 500


def record(
    session: Session,
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: str | None,
    details: dict[str, Any] | None = None,
    owner_id: str | None = None,
    user_id: str | None = None,
) -> AuditLog:
    entry = AuditLog(**entry_values(actor, action, resource_type, resource_id, details, owner_id, user_id))
    session.add(entry)
    return entry


INSERT = insert(AuditLog)  # Core: hot write paths insert `new_entry` rows with it, no ORM object


def new_entry(
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: str | None,
    details: dict[str, Any] | None = None,
    owner_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """A whole record's columns (id and time, `at` or now, included), for `INSERT`: API creates and the
    reconciler's status writer insert them in batches."""
    values = entry_values(actor, action, resource_type, resource_id, details, owner_id)
    values["id"], values["created_at"] = new_id(), at or utcnow()
    return values


def entry_values(
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: str | None,
    details: dict[str, Any] | None = None,
    owner_id: str | None = None,
    user_id: str | None = None,
) -> dict[str, Any]:
    """The columns of one record (without `id` and `created_at`): record() makes it an object,
    new_entry() a row to insert."""
    if actor.token_id is not None:  # name the API token that acted
        details = {**(details or {}), "token_id": actor.token_id, "token_name": actor.token_name}
    return {
        "actor": actor.kind,
        "user_id": user_id if user_id is not None else actor.user_id,
        "owner_id": owner_id,
        "action": action,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "details": details or {},
        "ip_address": actor.ip_address,
    }


def list_records(
    session: Session,
    viewer: Actor,
    limit: int = 50,
    offset: int = 0,
    action: str | None = None,
    resource_id: str | None = None,
) -> list[AuditLog]:
    """Newest first. Users see records they made or about resources they own; admins see all."""
    query = _visible(select(AuditLog), viewer, action, resource_id)
    return list(session.scalars(query.order_by(AuditLog.seq.desc()).limit(limit).offset(offset)))


def list_page(session: Session, viewer: Actor, page: pages.PageRequest, action: str | None = None,
              resource_id: str | None = None) -> tuple[list[AuditLog], str | None]:
    """As list_records, from a keyset cursor (`seq` below the last one seen): a deep page costs a shallow one."""
    rows, token = pages.fetch(session, _visible(select(AuditLog), viewer, action, resource_id), (AuditLog.seq,),
                              page, "audit", descending=True)
    return [row[0] for row in rows], token


def _visible(query: Any, viewer: Actor, action: str | None, resource_id: str | None) -> Any:
    if not viewer.is_admin:
        query = query.where(or_(AuditLog.user_id == viewer.user_id, AuditLog.owner_id == viewer.user_id))
    if action:
        query = query.where(AuditLog.action == action)
    if resource_id:
        query = query.where(AuditLog.resource_id == resource_id)
    return query


ADMIN_HIDDEN_DETAILS = ("token_id", "token_name")


def shown_as_role(entry: AuditLog, viewer: Actor) -> bool:
    """A user's view of a record another account made about their resource (only an admin can): the
    actor is shown as the role `admin`, without that admin's user id, address or token."""
    return not viewer.is_admin and entry.user_id is not None and entry.user_id != viewer.user_id
