"""Shared fixtures: a migrated database per test, settings, the Falcon app and a test client.

SQLite (the default): the schema is migrated once per session into a template file and copied per
test (Alembic on every test would dominate the suite's time).

PostgreSQL: with `PVEM_TEST_DATABASE_URL` set (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test),
the run creates one fresh database of its own on that server, migrates it once, empties every table
before each test (TRUNCATE) and drops the database at the end. `fresh_database_url` gives a test an
empty, unmigrated database of its own (a new file, or a new PostgreSQL database) for what needs one.
Tests never build database URLs themselves: the whole suite runs on both backends.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import falcon.testing
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from api.app import create_app
from controller.config import Settings, load_settings
from controller.store import Store
from controller.users import Passwords

JWT_SECRET = "test-secret-0123456789-0123456789-abcdef"
ADMIN = ("admin@pve.local", "admin123")


SERVER_URL = os.environ.get("PVEM_TEST_DATABASE_URL") or None


class PostgresServer:
    """Creates and drops databases on the test server (the URL's own database is only connected to)."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.admin = create_engine(self.url, isolation_level="AUTOCOMMIT", pool_size=1)

    def create(self, prefix: str) -> str:
        name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            # A throw-away database: commits need not wait for the disk (the suite is several times faster).
            conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def dispose(self) -> None:
        self.admin.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer | None]:
    if SERVER_URL is None:
        yield None
        return
    server = PostgresServer(SERVER_URL)
    yield server
    server.dispose()


class PostgresRunDatabase:
    """The run's migrated database; `clean()` empties every table (the schema and its version stay).

    DELETE, children first, rather than TRUNCATE: on tables this small it is several times faster."""

    def __init__(self, url: str) -> None:
        from controller.store.models import Base

        self.url = url
        self.engine = create_engine(url, pool_size=1)
        self.tables = [table.name for table in reversed(Base.metadata.sorted_tables)]

    def clean(self) -> None:
        for _attempt in range(3):
            with self.engine.connect() as conn:
                conn.execute(text("SET lock_timeout = '5s'"))
                try:
                    for name in self.tables:
                        conn.execute(text(f'DELETE FROM "{name}"'))
                    conn.commit()
                    return
                except Exception:
                    conn.rollback()
            self.end_other_sessions()  # a previous test's process or session still holds a lock
        raise AssertionError("could not empty the test database")

    def end_other_sessions(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
            conn.commit()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory,
                      postgres_server: PostgresServer | None) -> Iterator[Path | PostgresRunDatabase]:
    """SQLite: a migrated file to copy per test. PostgreSQL: the run's migrated database."""
    if postgres_server is not None:
        url = postgres_server.create("pvem_test")
        store = Store(url)
        store.upgrade()
        store.dispose()
        database = PostgresRunDatabase(url)
        yield database
        database.engine.dispose()
        postgres_server.drop(url)
        return
    path = tmp_path_factory.mktemp("template") / "template.db"
    store = Store(f"sqlite:///{path}")
    store.upgrade()
    store.dispose()
    yield path


@pytest.fixture
def database_url(tmp_path: Path, migrated_template: Path | PostgresRunDatabase) -> str:
    """A migrated database with no rows, for this test only."""
    if isinstance(migrated_template, PostgresRunDatabase):
        migrated_template.clean()
        return migrated_template.url
    target = tmp_path / "pvem.db"
    shutil.copy(migrated_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def fresh_database_url(tmp_path: Path, postgres_server: PostgresServer | None) -> Iterator[str]:
    """An empty database (no schema yet) of this test's own, on the backend the suite runs on."""
    if postgres_server is None:
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    url = postgres_server.create("pvem_fresh")
    yield url
    postgres_server.drop(url)


@pytest.fixture
def backend(database_url: str) -> str:
    """`sqlite` or `postgresql`: the backend this run uses (for the few tests that differ by backend)."""
    return make_url(database_url).get_backend_name()


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
