"""The reference endpoints the API is measured against, in the same process, app and middleware.

- `GET /bench/ref/vms`: one Core select of a VM list's twelve plain columns (the figures an inventory
  table shows), rows to dicts, JSON. No auth, no envelope logic: the least a list endpoint can do.
- `GET /bench/ref/one`: decode the bearer JWT (same key, algorithm and checks as the API), read one
  row (the user) with Core, JSON.
"""

from __future__ import annotations

from typing import Any

import falcon
import jwt
from sqlalchemy import select

from api.auth import ALGORITHM, REQUIRED_CLAIMS
from controller.store import Store
from controller.store.models import User, VirtualMachine

_VM = VirtualMachine.__table__.c
LIST_COLUMNS = (_VM.id, _VM.vmid, _VM.name, _VM.status, _VM.cpu_cores, _VM.memory_mb, _VM.disk_gb, _VM.node,
                _VM.owner_id, _VM.created_at, _VM.updated_at, _VM.power_state)
_USER = User.__table__.c


class ReferenceList:
    public = True

    def __init__(self, store: Store) -> None:
        self.query = select(*LIST_COLUMNS).order_by(_VM.created_at, _VM.vmid)
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.store.engine.connect() as conn:
            resp.media = {"data": [dict(row) for row in conn.execute(self.query).mappings()]}


class ReferenceOne:
    public = True

    def __init__(self, store: Store, key: bytes, issuer: str) -> None:
        self.store, self.key, self.issuer = store, key, issuer

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        token = (req.get_header("Authorization") or "").partition(" ")[2]
        try:
            claims: dict[str, Any] = jwt.decode(token, self.key, algorithms=[ALGORITHM], issuer=self.issuer,
                                                options={"require": REQUIRED_CLAIMS})
        except jwt.InvalidTokenError:
            raise falcon.HTTPUnauthorized() from None
        query = select(_USER.id, _USER.username, _USER.email, _USER.role).where(_USER.id == claims["sub"])
        with self.store.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        resp.media = {"data": dict(row) if row else None}


def mount(app: falcon.App, store: Store, key: bytes, issuer: str) -> None:
    app.add_route("/bench/ref/vms", ReferenceList(store))
    app.add_route("/bench/ref/one", ReferenceOne(store, key, issuer))
