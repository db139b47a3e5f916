"""`/api/health` (liveness, exactly as the contract) and `/api/health/ready` (can it do its job)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import falcon
from sqlalchemy import text

from api.resources import Op
from api.schemas import HealthOut, ReadyOut, timestamp
from controller.store import Store

ReadinessCheck = Callable[[], tuple[bool, dict[str, Any]]]


class Health:
    public = True
    docs = {"GET": Op("Liveness", HealthOut, enveloped=False, errors=())}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok", "timestamp": timestamp(datetime.now(UTC))}


class Ready:
    """Database reachable, plus whatever the controller adds (Proxmox, last pass); 503 when not ready."""

    public = True
    optional_auth = True  # details (hosts, ports, error texts) only for an admin's token
    docs = {"GET": Op("Readiness: database and controller checks (details for admins only)", ReadyOut,
                      enveloped=False, errors=(503,))}

    def __init__(self, store: Store, checks: dict[str, ReadinessCheck] | None = None) -> None:
        self.store = store
        self.checks = checks or {}

    def _database(self) -> tuple[bool, dict[str, Any]]:
        try:
            with self.store.read() as session:
                session.execute(text("SELECT 1"))
        except Exception as exc:
            return False, {"error": str(exc).splitlines()[0]}
        return True, {}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        results: dict[str, Any] = {}
        ready = True
        for name, check in {"database": self._database, **self.checks}.items():
            ok, info = check()
            results[name] = {"ok": ok, **info} if req.context.actor.is_admin else {"ok": ok}
            ready = ready and ok
        resp.media = {"status": "ok" if ready else "unavailable", "timestamp": timestamp(datetime.now(UTC)),
                      "checks": results}
        resp.status = falcon.HTTP_200 if ready else falcon.HTTP_503
