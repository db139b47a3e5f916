"""`/api/users`, `/api/users/{id}`, `/api/users/{id}/quota`: user administration (admins only)."""

from __future__ import annotations

import falcon

from api.resources import Op
from api.schemas import AdminUserOut, Envelope, admin_user_dict, envelope
from api.validation import parse_body
from controller import accounts
from controller.account_specs import QuotaUpdate, UserAdminUpdate
from controller.store import Store


class UserCollection:
    docs = {"GET": Op("Every user with their quota and usage (admins)", Envelope[list[AdminUserOut]],
                      errors=(401, 403))}

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.store.read() as session:
            found = accounts.list_users(session, req.context.actor)
            resp.media = envelope([admin_user_dict(user, usage) for user, usage in found])


class UserItem:
    docs = {
        "GET": Op("One user with quota and usage (admins)", Envelope[AdminUserOut], errors=(401, 403, 404)),
        "PUT": Op("Change a user's role or disabled flag (admins)", Envelope[AdminUserOut], UserAdminUpdate,
                  errors=(400, 401, 403, 404, 409)),
    }

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        with self.store.read() as session:
            resp.media = envelope(admin_user_dict(*accounts.get_user(session, req.context.actor, user_id)))

    def on_put(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        spec = parse_body(req, UserAdminUpdate)
        with self.store.write() as session:
            user, usage = accounts.update_user(session, req.context.actor, user_id, spec)
            resp.media = envelope(admin_user_dict(user, usage), "User updated")


class UserQuota:
    docs = {"PUT": Op("Set a user's quota (admins; omitted fields are kept, null is unlimited)",
                      Envelope[AdminUserOut], QuotaUpdate, errors=(400, 401, 403, 404))}

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_put(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        spec = parse_body(req, QuotaUpdate)
        with self.store.write() as session:
            user, usage = accounts.set_quota(session, req.context.actor, user_id, spec)
            resp.media = envelope(admin_user_dict(user, usage), "Quota updated")
