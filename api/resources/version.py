"""`/api/version`: the server's pvem version (public, like /api/health: `pvem version` asks it)."""

from __future__ import annotations

import falcon
from pydantic import BaseModel

from api.resources import Op
from api.schemas import Envelope, envelope
from api.version import pvem_version


class VersionOut(BaseModel):
    version: str
    api: str


class Version:
    public = True
    docs = {"GET": Op("The server's version", Envelope[VersionOut], errors=())}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = envelope({"version": pvem_version(), "api": "v1"})
