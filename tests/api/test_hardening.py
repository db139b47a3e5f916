"""Hardening: security headers, readiness details for admins only, an admin shown as a role in a
user's audit view, duplicate JSON keys refused, private database and secret files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import falcon.testing
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from api.server import write_secret_file
from controller.store import Store
from tests.api.helpers import VM_BODY, assert_envelope, assert_error, user_id_of
from tests.conftest import Api


@pytest.mark.parametrize("path", ["/api/health", "/api/vms", "/api/nope", "/api/openapi.json"])
def test_every_answer_has_nosniff_and_a_referrer_policy(api, user_token, path):
    result = api.call("GET", path, user_token)
    assert result.headers.get("x-content-type-options") == "nosniff"
    assert result.headers.get("referrer-policy") == "no-referrer"


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/vms"), ("GET", "/api/auth/me"),
                                              ("GET", "/api/audit-logs"), ("GET", "/api/tokens")])
def test_authenticated_answers_are_not_stored(api, user_token, method, path):
    assert api.call(method, path, user_token).headers.get("cache-control") == "no-store"


def test_token_answers_of_login_and_register_are_not_stored(api):
    registered = api.call("POST", "/api/auth/register",
                          json={"username": "carol", "email": "carol@example.com", "password": "password123"})
    assert registered.status_code == 201 and registered.headers.get("cache-control") == "no-store"
    logged_in = api.login("carol@example.com", "password123")
    assert logged_in.status_code == 200 and logged_in.headers.get("cache-control") == "no-store"


def _ready_app(api, app_factory, settings):
    def proxmox():
        return False, {"error": "connection refused by pve.internal.example:8006"}

    return Api(falcon.testing.TestClient(app_factory(settings, readiness={"proxmox": proxmox})))


def test_readiness_details_only_for_admins(api, app_factory, settings, admin_token, user_token):
    client = _ready_app(api, app_factory, settings)
    for token in (None, user_token, "garbage-token"):
        result = client.call("GET", "/api/health/ready", token)
        assert result.status_code == 503
        assert result.json["status"] == "unavailable"
        assert "pve.internal" not in result.text and "8006" not in result.text
        assert result.json["checks"] == {"database": {"ok": True}, "proxmox": {"ok": False}}
    result = client.call("GET", "/api/health/ready", admin_token)
    assert result.status_code == 503
    assert "pve.internal.example:8006" in result.json["checks"]["proxmox"]["error"]


def test_users_see_an_admin_acting_on_their_vm_as_a_role(api, admin_token, user_token):
    vm = api.create_vm(user_token)
    admin_id = user_id_of(api, admin_token)
    assert_envelope(api.call("PUT", f"/api/vms/{vm['id']}", admin_token, json={"cpu_cores": 3},
                             remote_addr="203.0.113.50"))
    mine = assert_envelope(api.call("GET", "/api/audit-logs", user_token, query_string="action=update_vm"))
    assert len(mine) == 1
    record = mine[0]
    assert record["actor"] == "admin" and record["user_id"] is None and record["ip_address"] is None
    assert admin_id not in str(mine) and "203.0.113.50" not in str(mine)
    assert record["details"]["changes"]["cpu_cores"] == {"old": 2, "new": 3}
    # The admin's own view keeps everything.
    full = assert_envelope(api.call("GET", "/api/audit-logs", admin_token, query_string="action=update_vm"))[0]
    assert full["user_id"] == admin_id and full["ip_address"] == "203.0.113.50"


def test_users_still_see_themselves_in_their_records(api, user_token):
    vm = api.create_vm(user_token)
    record = assert_envelope(api.call("GET", "/api/audit-logs", user_token,
                                      query_string=f"resource_id={vm['id']}"))[0]
    assert record["user_id"] == user_id_of(api, user_token) and record["ip_address"]


@pytest.mark.parametrize(("raw", "field"), [
    ('{"name": "a", "name": "b", "cpu_cores": 1}', "name"),
    ('{"name": "a", "labels": {"k": "1", "k": "2"}}', "k"),
])
def test_duplicate_keys_in_a_json_body_are_400(api, user_token, raw, field):
    result = api.call("POST", "/api/vms", user_token, body=raw, headers={"Content-Type": "application/json"})
    body = assert_error(result, 400)
    assert "duplicate" in body["error"] and body["field"] == field
    assert assert_envelope(api.call("GET", "/api/vms", user_token)) == []


def test_duplicate_keys_in_a_login_body_are_400(api):
    raw = '{"email": "admin@pve.local", "password": "x", "password": "admin123"}'
    assert_error(api.call("POST", "/api/auth/login", body=raw, headers={"Content-Type": "application/json"}), 400)


def _sqlite_path(database_url: str) -> Path:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        pytest.skip("file modes concern SQLite database files")
    return Path(url.database)


def test_sqlite_files_are_private_including_wal_and_shm(database_url):
    path = _sqlite_path(database_url)
    path.chmod(0o644)  # as an older install left it
    store = Store(database_url)
    try:
        with store.write() as session:
            session.execute(text("SELECT 1"))
        with store.engine.connect():  # a connection open: the -wal and -shm files exist
            files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
            present = [candidate for candidate in files if candidate.exists()]
            assert path in present and len(present) == 3, present
            for candidate in present:
                assert stat.S_IMODE(candidate.stat().st_mode) == 0o600, candidate
    finally:
        store.dispose()


def test_a_new_sqlite_database_is_created_private(database_url):
    path = _sqlite_path(database_url)
    path.unlink()
    old_umask = os.umask(0o022)
    try:
        store = Store(database_url)
        try:
            store.upgrade()
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            wal = path.with_name(path.name + "-wal")
            with store.engine.connect():
                if wal.exists():
                    assert stat.S_IMODE(wal.stat().st_mode) == 0o600
        finally:
            store.dispose()
    finally:
        os.umask(old_umask)


def test_secret_files_are_created_0600_and_kept(tmp_path, monkeypatch):
    target = tmp_path / "demo-jwt-secret"
    modes: list[int] = []
    real_open = os.open

    def watching_open(path, flags, mode=0o777, *args, **kwargs):
        modes.append(mode)
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", watching_open)
    old_umask = os.umask(0)
    try:
        assert write_secret_file(target, "s3cret") is True
    finally:
        os.umask(old_umask)
    assert modes == [0o600]  # the mode is given when the file is created, not set afterwards
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert write_secret_file(target, "other") is False
    assert target.read_text() == "s3cret"


def test_vm_body_without_duplicates_still_works(api, user_token):
    assert api.call("POST", "/api/vms", user_token, json=VM_BODY).status_code == 201
