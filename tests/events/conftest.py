"""Fixtures for the event stream and webhook tests: the app on real waitress, with a short heartbeat."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from controller.events.feed import Feed
from controller.store import Store
from tests.conftest import Api
from tests.events.helpers import waitress_server

HEARTBEAT = 0.3


@pytest.fixture
def live(api: Api, app_factory: Callable[..., Any], settings_factory: Callable[..., Any],
         store: Store) -> Iterator[Callable[..., str]]:
    """live(**sections) -> base URL of the app (these settings) served by waitress on 127.0.0.1."""
    stack: list[Any] = []

    def start(**sections: dict[str, Any]) -> str:
        events = {"heartbeat_seconds": HEARTBEAT, "poll_seconds": 0.1, **sections.pop("events", {})}
        settings = settings_factory(events=events, **sections)
        feed = Feed(store, settings.events.poll_seconds)
        context = waitress_server(app_factory(settings, feed=feed), feed=feed)
        base = context.__enter__()
        stack.append(context)
        return base

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


@pytest.fixture
def other_store(database_url: str) -> Iterator[Store]:
    """A second Store on the same database: writes made "by another process" (own engine, own connections)."""
    second = Store(database_url)
    yield second
    second.dispose()
