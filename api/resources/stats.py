"""`/api/stats/system` (latest figures) and `/api/stats/system/history?minutes=N` (for charts)."""

from __future__ import annotations

from datetime import timedelta

import falcon

from api.errors import ApiError
from api.resources import Op
from api.schemas import Envelope, Paged, StatsOut, envelope, paged, stats_dict
from api.validation import PAGE_QUERY, PAGE_QUERY_SCHEMAS, int_param, page_param
from controller import stats
from controller.store import Store
from controller.store.models import utcnow

MAX_HISTORY_MINUTES = 7 * 24 * 60


class SystemStats:
    docs = {"GET": Op("Latest system figures (the cluster's once observed, else this host's)",
                      Envelope[StatsOut], errors=(401, 503))}

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.store.read() as session:
            sample = stats.latest(session, stats.preferred_source(session))
            if sample is None:
                raise ApiError(503, "no stats sample has been taken yet")
            resp.media = envelope(stats_dict(sample))


class StatsHistory:
    docs = {"GET": Op("Samples of the last N minutes, oldest first", Paged[list[StatsOut]],
                      query={"minutes": "How far back (1..10080, default 60).", **PAGE_QUERY},
                      query_schemas={"minutes": {"type": "integer", "minimum": 1, "maximum": MAX_HISTORY_MINUTES},
                                     **PAGE_QUERY_SCHEMAS})}

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        minutes = int_param(req, "minutes", 60, 1, MAX_HISTORY_MINUTES)
        page = page_param(req)
        with self.store.read() as session:
            source = stats.preferred_source(session)
            samples, token = stats.history_page(session, source, utcnow() - timedelta(minutes=minutes), page)
            resp.media = paged([stats_dict(sample) for sample in samples], page.size, token, include=page.paged)
