"""The web console served at `/`: server-rendered Jinja2 pages, hand-written static JS/CSS, a cookie session.

The console is a client of the REST API that happens to live in the same process: every read and
write goes through `/api` in-process (see `internal`), with the session's token as its bearer, so
validation, tenancy, audit and nudges are exactly the API's. `install(app, ...)` adds its routes.
"""

from __future__ import annotations

import falcon

from controller.config import Settings


def install(app: falcon.App, settings: Settings) -> None:
    """Routes for the console pages, its form posts and static files."""
    from api.console.routes import add_routes

    add_routes(app, settings)
