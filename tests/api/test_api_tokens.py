"""API tokens: create (shown once), list without secrets, revoke; scopes; stored only as a hash; audited."""

from __future__ import annotations

import hashlib

import pytest

from controller.store.models import ApiToken
from tests.api.helpers import VM_BODY, assert_envelope, assert_error, assert_timestamp, assert_uuid

TOKEN_FIELDS = {"id", "name", "scope", "created_at", "expires_at", "last_used_at"}


def create(api, token, **body):
    return api.call("POST", "/api/tokens", token, json={"name": "ci", **body})


def new_token(api, token, **body) -> dict:
    return dict(assert_envelope(create(api, token, **body), 201))


def test_create_answers_201_with_the_token_once(api, user_token):
    data = new_token(api, user_token, scope="write", expires_in_days=30)
    assert set(data) == TOKEN_FIELDS | {"token"}
    assert_uuid(data["id"])
    assert data["name"] == "ci" and data["scope"] == "write"
    assert data["token"].startswith("pvem_") and len(data["token"]) >= 40
    created, expires = assert_timestamp(data["created_at"]), assert_timestamp(data["expires_at"])
    assert 29 <= (expires - created).days <= 30
    assert data["last_used_at"] is None
    listed = assert_envelope(api.call("GET", "/api/tokens", user_token))
    assert [item["id"] for item in listed] == [data["id"]]
    assert set(listed[0]) == TOKEN_FIELDS  # never the secret again
    assert data["token"] not in str(listed)


def test_defaults_are_write_scope_and_no_expiry(api, user_token):
    data = new_token(api, user_token)
    assert data["scope"] == "write" and data["expires_at"] is None
    assert new_token(api, user_token, name="n", expires_in_days=None)["expires_at"] is None


def test_only_a_hash_of_the_token_is_stored(api, user_token, store):
    data = new_token(api, user_token)
    with store.read() as session:
        row = session.get(ApiToken, data["id"])
        assert row is not None
        assert row.token_hash == hashlib.sha256(data["token"].encode()).hexdigest()
        stored = {column.name: getattr(row, column.name) for column in ApiToken.__table__.columns}
    assert data["token"] not in str(stored)


def test_tokens_are_distinct_and_high_entropy(api, user_token):
    secrets = {new_token(api, user_token, name=f"t{index}")["token"] for index in range(5)}
    assert len(secrets) == 5
    assert all(len(secret.removeprefix("pvem_")) >= 43 for secret in secrets)


def test_api_token_authenticates_like_a_jwt_and_records_last_use(api, user_token):
    data = new_token(api, user_token)
    me = assert_envelope(api.call("GET", "/api/auth/me", data["token"]))
    assert me["email"] == "alice@example.com"
    vm = assert_envelope(api.call("POST", "/api/vms", data["token"], json=VM_BODY), 201)
    assert vm["name"] == VM_BODY["name"]
    listed = assert_envelope(api.call("GET", "/api/tokens", user_token))
    assert_timestamp(listed[0]["last_used_at"])


def test_read_scope_may_read_but_not_write(api, user_token):
    read = new_token(api, user_token, scope="read")["token"]
    assert api.call("GET", "/api/vms", read).status_code == 200
    body = assert_error(api.call("POST", "/api/vms", read, json=VM_BODY), 403)
    assert "read" in body["error"]
    vm = api.create_vm(user_token)
    for method, path, payload in (("PUT", f"/api/vms/{vm['id']}", {"cpu_cores": 3}),
                                  ("DELETE", f"/api/vms/{vm['id']}", None),
                                  ("POST", f"/api/vms/{vm['id']}/action", {"action": "start"}),
                                  ("POST", "/api/manifests", {"items": []})):
        assert_error(api.call(method, path, read, json=payload), 403)
    assert assert_envelope(api.call("GET", f"/api/vms/{vm['id']}", user_token))["cpu_cores"] == vm["cpu_cores"]


@pytest.mark.parametrize("scope", ["read", "write"])
def test_no_api_token_may_create_tokens_or_change_the_password(api, user_token, scope):
    secret = new_token(api, user_token, scope=scope)["token"]
    assert_error(create(api, secret, name="child"), 403)
    result = api.call("PUT", "/api/auth/password", secret,
                      json={"current_password": "password123", "new_password": "new-password-456"})
    assert_error(result, 403)
    assert api.login("alice@example.com", "password123").status_code == 200
    assert len(assert_envelope(api.call("GET", "/api/tokens", user_token))) == 1


def test_delete_revokes_at_once(api, user_token):
    data = new_token(api, user_token)
    assert assert_envelope(api.call("DELETE", f"/api/tokens/{data['id']}", user_token)) == {"deleted": True}
    assert_error(api.call("GET", "/api/vms", data["token"]), 401)
    assert assert_envelope(api.call("GET", "/api/tokens", user_token)) == []
    assert_error(api.call("DELETE", f"/api/tokens/{data['id']}", user_token), 404)


def test_another_users_token_cannot_be_seen_or_deleted(api, user_token, bob_token):
    data = new_token(api, user_token)
    assert assert_envelope(api.call("GET", "/api/tokens", bob_token)) == []
    assert_error(api.call("DELETE", f"/api/tokens/{data['id']}", bob_token), 404)
    assert api.call("GET", "/api/vms", data["token"]).status_code == 200


def test_logout_with_an_api_token_revokes_it(api, user_token):
    data = new_token(api, user_token, scope="read")
    assert_envelope(api.call("POST", "/api/auth/logout", data["token"]))
    assert_error(api.call("GET", "/api/vms", data["token"]), 401)


def test_an_expired_api_token_is_401(api, user_token, store):
    from datetime import timedelta

    from controller.store.models import utcnow

    data = new_token(api, user_token, expires_in_days=1)
    with store.write() as session:
        row = session.get(ApiToken, data["id"])
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
    body = assert_error(api.call("GET", "/api/vms", data["token"]), 401)
    assert "expired" in body["error"]


def test_a_password_change_revokes_api_tokens_created_before(api, user_token):
    data = new_token(api, user_token)
    assert_envelope(api.call("PUT", "/api/auth/password", user_token,
                             json={"current_password": "password123", "new_password": "new-password-456"}))
    assert_error(api.call("GET", "/api/vms", data["token"]), 401)


@pytest.mark.parametrize("token", ["pvem_", "pvem_not-a-real-token", "pvem_" + "A" * 43])
def test_unknown_api_tokens_are_401(api, token):
    assert_error(api.call("GET", "/api/vms", token), 401)


@pytest.mark.parametrize(("body", "field"), [
    ({"name": ""}, "name"), ({"name": "x" * 65}, "name"), ({"scope": "admin"}, "scope"),
    ({"expires_in_days": 0}, "expires_in_days"), ({"expires_in_days": "7"}, "expires_in_days"),
    ({"colour": "red"}, "colour"),
])
def test_bad_create_requests_are_400_naming_the_field(api, user_token, body, field):
    result = api.call("POST", "/api/tokens", user_token, json={"name": "ci", **body})
    assert assert_error(result, 400)["field"] == field


def test_audit_records_name_the_token(api, admin_token, user_token):
    data = new_token(api, user_token, name="deploy-bot")
    vm = assert_envelope(api.call("POST", "/api/vms", data["token"], json=VM_BODY), 201)
    records = assert_envelope(api.call("GET", "/api/audit-logs", admin_token, query_string="action=create_vm"))
    record = next(item for item in records if item["resource_id"] == vm["id"])
    assert record["details"]["token_id"] == data["id"]
    assert record["details"]["token_name"] == "deploy-bot"
    created = assert_envelope(api.call("GET", "/api/audit-logs", admin_token,
                                       query_string="action=create_api_token"))
    assert created[0]["resource_id"] == data["id"] and data["token"] not in str(created)


def test_token_answers_are_not_cached(api, user_token):
    result = create(api, user_token)
    assert result.headers.get("cache-control") == "no-store"
    assert api.call("GET", "/api/tokens", user_token).headers.get("cache-control") == "no-store"
