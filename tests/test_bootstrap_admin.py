"""The bootstrap admin (auth.admin_email): never promotes a self-registered account, survives a
concurrent start of two processes."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from controller import users
from controller.service import ControllerService
from controller.store.models import AuditLog, User
from tests.conftest import JWT_SECRET
from tests.test_serve_e2e import PVEM, free_port


def test_admin_email_of_a_non_admin_account_refuses_to_start(api, database_url, tmp_path: Path):
    api.register("mallory", email="ops@example.com")
    token = api.token_for("ops@example.com", "password123")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PVEM_")}
    env.update({"PVEM_DATABASE__URL": database_url, "PVEM_AUTH__JWT_SECRET": JWT_SECRET,
                "PVEM_AUTH__ADMIN_EMAIL": "OPS@example.com", "PVEM_AUTH__ADMIN_PASSWORD": "ops-password",
                "PVEM_AUTH__ARGON2_TIME_COST": "1", "PVEM_AUTH__ARGON2_MEMORY_KIB": "64",
                "PVEM_LOGGING__FORMAT": "json"})
    result = subprocess.run([PVEM, "api", "--port", str(free_port())], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("pvem: ")]
    assert len(lines) == 1 and "ops@example.com" in lines[0] and "non-admin" in lines[0], result.stderr
    me = api.call("GET", "/api/auth/me", token).json["data"]
    assert me["role"] == "user"  # not promoted; the token the owner holds did not become an admin token


def test_ensure_admin_refuses_a_non_admin_account(api, store, passwords):
    api.register("mallory", email="ops@example.com")
    with store.write() as session, pytest.raises(users.AdminConflict):
        users.ensure_admin(session, passwords, "ops@example.com", "ops-password")


def test_bootstrap_survives_another_process_creating_the_admin_meanwhile(store, passwords, monkeypatch):
    real_hash = users.Passwords.hash

    def racing_hash(self, password):
        hashed = real_hash(self, password)
        with store.write() as session:  # the other process wins the insert while this one hashes
            session.add(User(username="ops", email="ops@example.com", password_hash=hashed, role="admin"))
        return hashed

    monkeypatch.setattr(users.Passwords, "hash", racing_hash)
    user = users.bootstrap_admin(store, passwords, "ops@example.com", "ops-password")
    assert user.role == "admin"
    with store.read() as session:
        assert session.query(User).filter_by(email="ops@example.com").count() == 1


def test_two_services_bootstrapping_at_once_both_start(settings_factory, store, passwords):
    settings = settings_factory(auth={"admin_email": "ops@example.com", "admin_password": "ops-password"})
    services = [ControllerService(settings, store, passwords) for _ in range(2)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def boot(service: ControllerService) -> None:
        barrier.wait(10)
        try:
            service.bootstrap_admins()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=boot, args=(service,)) for service in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with store.read() as session:
        admins = session.query(User).filter_by(email="ops@example.com").all()
        assert [admin.role for admin in admins] == ["admin"]
        assert passwords.verify(admins[0].password_hash, "ops-password")
        assert session.query(AuditLog).filter_by(action="bootstrap_admin").count() >= 1
