"""User administration (admins only): list users with their usage, change role or disabled, set quotas.

A disabled user is refused at login and every token they hold stops working at once (the auth
middleware reads the user row on each request). An admin cannot disable or demote themselves, so
the last admin cannot lock everyone out by accident.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller import audit, quotas
from controller.account_specs import QuotaUpdate, UserAdminUpdate
from controller.actor import Actor
from controller.errors import Conflict, Forbidden, NotFound
from controller.store.models import User

RESOURCE = "user"


def _require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise Forbidden("only admins may administer users")


def list_users(session: Session, actor: Actor) -> list[tuple[User, quotas.Usage]]:
    _require_admin(actor)
    usage = quotas.usage_by_owner(session)
    found = session.scalars(select(User).order_by(User.created_at, User.username))
    return [(user, usage.get(user.id, quotas.Usage())) for user in found]


def get_user(session: Session, actor: Actor, user_id: str) -> tuple[User, quotas.Usage]:
    _require_admin(actor)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    return user, quotas.usage_of(session, user.id)


def update_user(session: Session, actor: Actor, user_id: str, spec: UserAdminUpdate) -> tuple[User, quotas.Usage]:
    user, usage = get_user(session, actor, user_id)
    requested = spec.model_dump(exclude_unset=True)
    changes = {key: {"old": getattr(user, key), "new": value}
               for key, value in requested.items() if getattr(user, key) != value}
    if not changes:
        return user, usage
    if user.id == actor.user_id and ("disabled" in changes or "role" in changes):
        raise Conflict("admins cannot disable or demote their own account; ask another admin")
    for key, change in changes.items():
        setattr(user, key, change["new"])
    action = "update_user"
    if "disabled" in changes:
        action = "disable_user" if user.disabled else "enable_user"
    audit.record(session, actor, action, RESOURCE, user.id, {"username": user.username, "changes": changes},
                 owner_id=user.id)
    return user, usage


def set_quota(session: Session, actor: Actor, user_id: str, spec: QuotaUpdate) -> tuple[User, quotas.Usage]:
    user, usage = get_user(session, actor, user_id)
    requested = spec.model_dump(exclude_unset=True)
    changes = {key: {"old": getattr(user, key), "new": value}
               for key, value in requested.items() if getattr(user, key) != value}
    for key, change in changes.items():
        setattr(user, key, change["new"])
    if changes:
        audit.record(session, actor, "set_quota", RESOURCE, user.id, {"username": user.username, "changes": changes},
                     owner_id=user.id)
    return user, usage
