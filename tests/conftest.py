"""Shared fixtures: a migrated SQLite database per test, settings, the Falcon app and a test client.

The schema is migrated once per session into a template file and copied per test (Alembic on every
test would dominate the suite's time).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from api.app import create_app
from controller.config import Settings, load_settings
from controller.store import Store
from controller.users import Passwords

JWT_SECRET = "test-secret-0123456789-0123456789-abcdef"
ADMIN = ("admin@pve.local", "admin123")


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    store = Store(f"sqlite:///{path}")
    store.upgrade()
    store.dispose()
    return path


@pytest.fixture
def database_url(tmp_path: Path, migrated_template: Path) -> str:
    target = tmp_path / "pvem.db"
    shutil.copy(migrated_template, target)
    return f"sqlite:///{target}"


def make_settings(database_url: str, **sections: dict[str, Any]) -> Settings:
    base: dict[str, dict[str, Any]] = {
        "database": {"url": database_url},
        "auth": {"jwt_secret": JWT_SECRET, "argon2_time_cost": 1, "argon2_memory_kib": 64},
        "proxmox": {"default_node": "pve1"},
        "logging": {"format": "console", "level": "WARNING"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return load_settings(None, **base)


@pytest.fixture
def settings_factory(database_url: str) -> Callable[..., Settings]:
    return lambda **sections: make_settings(database_url, **sections)


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory()


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    store = Store(settings.database.url)
    yield store
    store.dispose()


@pytest.fixture
def passwords(settings: Settings) -> Passwords:
    return Passwords(settings.auth.argon2_time_cost, settings.auth.argon2_memory_kib)


class Api:
    """A thin helper over Falcon's TestClient: JSON in, (status, body) out, tokens remembered."""

    def __init__(self, client: falcon.testing.TestClient) -> None:
        self.client = client

    def call(self, method: str, path: str, token: str | None = None, json: Any = None,
             **kwargs: Any) -> falcon.testing.Result:
        headers = dict(kwargs.pop("headers", {}) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.simulate_request(method, path, headers=headers, json=json, **kwargs)

    def register(self, username: str, email: str | None = None, password: str = "password123") -> dict[str, Any]:
        result = self.call("POST", "/api/auth/register",
                           json={"username": username, "email": email or f"{username}@example.com",
                                 "password": password})
        assert result.status_code == 201, result.text
        return result.json

    def login(self, email: str, password: str) -> falcon.testing.Result:
        return self.call("POST", "/api/auth/login", json={"email": email, "password": password})

    def token_for(self, email: str, password: str) -> str:
        result = self.login(email, password)
        assert result.status_code == 200, result.text
        return str(result.json["token"])

    def create_vm(self, token: str, **fields: Any) -> dict[str, Any]:
        body = {"name": "vm-1", "cpu_cores": 2, "memory_mb": 2048, "disk_gb": 20, "node": "pve1", **fields}
        result = self.call("POST", "/api/vms", token, json=body)
        assert result.status_code == 201, result.text
        return dict(result.json["data"])


@pytest.fixture
def app_factory(store: Store, passwords: Passwords) -> Callable[..., falcon.App]:
    def build(settings: Settings, **kwargs: Any) -> falcon.App:
        return create_app(settings, store, passwords=passwords, **kwargs)

    return build


@pytest.fixture
def api(settings: Settings, store: Store, passwords: Passwords,
        app_factory: Callable[..., falcon.App]) -> Api:
    from controller import users

    with store.write() as session:
        users.ensure_admin(session, passwords, *ADMIN, username="admin")
    return Api(falcon.testing.TestClient(app_factory(settings)))


@pytest.fixture
def admin_token(api: Api) -> str:
    return api.token_for(*ADMIN)


@pytest.fixture
def user_token(api: Api) -> str:
    api.register("alice")
    return api.token_for("alice@example.com", "password123")
