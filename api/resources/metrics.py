"""`/metrics`: Prometheus text exposition (no auth: it carries counts and timings, never names or ids)."""

from __future__ import annotations

import falcon

from api.resources import Op
from controller import metrics
from controller.store import Store


class Metrics:
    public = True
    docs = {"GET": Op("Prometheus metrics (text exposition format)", None, enveloped=False, errors=(),
                      response_types=("text/plain",))}

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.store.read() as session:
            counts = metrics.vm_counts(session)
        resp.content_type = metrics.CONTENT_TYPE_LATEST
        resp.data = metrics.render([metrics.vms_family(counts)])
