"""Fixtures shared by the API contract tests (on top of tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon.testing
import pytest

from tests.conftest import Api


@pytest.fixture
def api_with(api: Api, app_factory: Callable[..., Any], settings_factory: Callable[..., Any]) -> Callable[..., Api]:
    """An Api over an app built with extra settings sections (same database; the admin already exists)."""

    def build(**sections: dict[str, Any]) -> Api:
        return Api(falcon.testing.TestClient(app_factory(settings_factory(**sections))))

    return build


@pytest.fixture
def bob_token(api: Api) -> str:
    api.register("bob")
    return api.token_for("bob@example.com", "password123")


@pytest.fixture
def vm(api: Api, user_token: str) -> dict[str, Any]:
    """Alice's VM."""
    return api.create_vm(user_token, name="alice-vm")
