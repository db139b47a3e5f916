"""Registration and login: shapes, validation, uniqueness, closed registration and login throttling."""

from __future__ import annotations

import pytest

from controller.store.models import User
from tests.api.helpers import USER_FIELDS, assert_error, assert_names_field, assert_uuid
from tests.conftest import ADMIN


def register(api, **body):
    payload = {"username": "carol", "email": "carol@example.com", "password": "password123", **body}
    return api.call("POST", "/api/auth/register", json=payload)


def assert_auth_shape(body, username, email, role):
    assert {"token", "user"} <= set(body), body
    assert isinstance(body["token"], str) and body["token"].count(".") == 2
    user = body["user"]
    assert set(user) >= USER_FIELDS, user
    assert_uuid(user["id"])
    assert (user["username"], user["email"], user["role"]) == (username, email, role)
    assert not any("password" in key for key in user), user


def test_register_answers_201_with_token_and_user_of_role_user(api):
    result = register(api)
    assert result.status_code == 201, result.text
    assert_auth_shape(result.json, "carol", "carol@example.com", "user")


def test_registered_token_authenticates(api):
    token = register(api).json["token"]
    me = api.call("GET", "/api/vms", token)
    assert me.status_code == 200, me.text


def test_login_answers_200_with_token_and_user(api):
    result = api.login(*ADMIN)
    assert result.status_code == 200, result.text
    assert_auth_shape(result.json, "admin", "admin@pve.local", "admin")


def test_login_returns_the_same_user_as_register(api):
    registered = register(api).json["user"]
    logged_in = api.login("carol@example.com", "password123").json["user"]
    assert logged_in == registered


def test_login_email_is_case_insensitive(api):
    register(api)
    result = api.login("CAROL@Example.COM", "password123")
    assert result.status_code == 200, result.text


def test_password_is_stored_as_argon2id_hash(api, store):
    register(api)
    with store.read() as session:
        user = session.query(User).filter_by(username="carol").one()
        assert user.password_hash.startswith("$argon2id$")
        assert "password123" not in user.password_hash


def test_admin_pve_local_is_a_valid_registration_email(api, store):
    with store.write() as session:  # free the address the bootstrap admin holds
        session.delete(session.query(User).filter_by(email="admin@pve.local").one())
    result = register(api, username="second-admin", email="admin@pve.local")
    assert result.status_code == 201, result.text
    assert result.json["user"]["email"] == "admin@pve.local"


def test_register_cannot_choose_its_role(api):
    result = register(api, role="admin")
    assert_names_field(result, "role")


@pytest.mark.parametrize("email", ["carol@example.com", "CAROL@example.com", "Carol@Example.Com"])
def test_duplicate_email_any_case_is_409(api, email):
    assert register(api).status_code == 201
    result = register(api, username="carol2", email=email)
    assert_error(result, 409)


def test_duplicate_username_is_409(api):
    assert register(api).status_code == 201
    result = register(api, email="other@example.com")
    assert_error(result, 409)


def test_duplicate_admin_email_is_409(api):
    result = register(api, username="someone", email="admin@pve.local")
    assert_error(result, 409)


@pytest.mark.parametrize("email", [
    "no-at-sign", "@example.com", "carol@", "car ol@example.com", "carol@exa mple.com", "a@b@c", "", 42, None,
])
def test_register_bad_email_is_400_naming_email(api, email):
    assert_names_field(register(api, email=email), "email")


@pytest.mark.parametrize("password", ["", "short", "1234567", 12345678, None])
def test_register_bad_password_is_400_naming_password(api, password):
    assert_names_field(register(api, password=password), "password")


def test_register_password_of_exactly_8_characters_is_accepted(api):
    assert register(api, password="12345678").status_code == 201


@pytest.mark.parametrize("password", ["  pass12  ", "        ", "\tpass word\n"])
def test_password_length_counts_every_character(api, password):
    """Whitespace is part of a password: a 10-character password meets the minimum of 8."""
    result = register(api, password=password)
    assert result.status_code == 201, result.text
    assert api.login("carol@example.com", password).status_code == 200


def test_password_whitespace_is_significant_at_login(api):
    assert register(api, password="password123 ").status_code == 201
    assert_error(api.login("carol@example.com", "password123"), 401)
    assert api.login("carol@example.com", "password123 ").status_code == 200


@pytest.mark.parametrize("missing", ["username", "email", "password"])
def test_register_missing_field_is_400_naming_it(api, missing):
    payload = {"username": "carol", "email": "carol@example.com", "password": "password123"}
    del payload[missing]
    assert_names_field(api.call("POST", "/api/auth/register", json=payload), missing)


@pytest.mark.parametrize("body", [[], "x", 5, None])
def test_register_non_object_body_is_400(api, body):
    if body is None:
        result = api.call("POST", "/api/auth/register", body="null", headers={"Content-Type": "application/json"})
    else:
        result = api.call("POST", "/api/auth/register", json=body)
    assert_error(result, 400)


def test_registration_closed_is_403(api_with):
    closed = api_with(auth={"allow_registration": False})
    result = register(closed)
    assert_error(result, 403)
    assert closed.login("carol@example.com", "password123").status_code == 401


def test_login_still_works_when_registration_is_closed(api_with):
    closed = api_with(auth={"allow_registration": False})
    assert closed.login(*ADMIN).status_code == 200


def test_wrong_password_and_unknown_email_give_the_same_401(api):
    register(api)
    wrong_password = api.login("carol@example.com", "not-the-password")
    unknown_email = api.login("nobody@example.com", "not-the-password")
    body_wrong = assert_error(wrong_password, 401)
    body_unknown = assert_error(unknown_email, 401)
    assert body_wrong["error"] == body_unknown["error"]
    assert body_wrong == body_unknown


@pytest.mark.parametrize("body", [{}, {"email": "carol@example.com"}, {"password": "password123"},
                                  {"email": 5, "password": "password123"}])
def test_login_malformed_request_is_400(api, body):
    assert_error(api.call("POST", "/api/auth/login", json=body), 400)


# --- throttling -------------------------------------------------------------------------------------------


def test_login_throttled_per_email_after_max_failures(api_with):
    client = api_with(auth={"login_max_failures": 3, "login_max_failures_per_address": 100})
    for _ in range(3):
        assert_error(client.login(ADMIN[0], "wrong-password"), 401)
    result = client.login(ADMIN[0], "wrong-password")
    body = assert_error(result, 429)
    assert body["error"]
    retry_after = result.headers.get("retry-after")
    assert retry_after is not None and retry_after.isdigit() and int(retry_after) >= 1, result.headers


def test_throttled_email_refuses_even_the_right_password(api_with):
    client = api_with(auth={"login_max_failures": 3, "login_max_failures_per_address": 100})
    for _ in range(3):
        client.login(ADMIN[0], "wrong-password")
    assert_error(client.login(*ADMIN), 429)


def test_email_throttle_counts_the_email_case_insensitively(api_with):
    client = api_with(auth={"login_max_failures": 3, "login_max_failures_per_address": 100})
    for email in ("admin@pve.local", "ADMIN@pve.local", "Admin@PVE.local"):
        client.login(email, "wrong-password")
    assert_error(client.login("admin@PVE.LOCAL", "wrong-password"), 429)


def test_email_throttle_does_not_affect_other_emails(api_with):
    client = api_with(auth={"login_max_failures": 3, "login_max_failures_per_address": 100})
    client.register("dave")
    for _ in range(4):
        client.login(ADMIN[0], "wrong-password")
    assert client.login("dave@example.com", "password123").status_code == 200


def test_login_throttled_per_client_address(api_with):
    client = api_with(auth={"login_max_failures": 100, "login_max_failures_per_address": 4})
    for index in range(4):
        result = client.call("POST", "/api/auth/login", json={"email": f"u{index}@example.com", "password": "x"},
                             remote_addr="198.51.100.7")
        assert_error(result, 401)
    result = client.call("POST", "/api/auth/login", json={"email": "fresh@example.com", "password": "x"},
                         remote_addr="198.51.100.7")
    assert_error(result, 429)
    assert result.headers.get("retry-after", "").isdigit()
    # Another client address is not affected.
    other = client.call("POST", "/api/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]},
                        remote_addr="198.51.100.8")
    assert other.status_code == 200, other.text


def test_address_throttle_cannot_be_evaded_with_a_spoofed_forwarded_for(api_with):
    client = api_with(auth={"login_max_failures": 100, "login_max_failures_per_address": 3})
    for index in range(3):
        client.call("POST", "/api/auth/login", json={"email": f"u{index}@example.com", "password": "x"},
                    remote_addr="198.51.100.7", headers={"X-Forwarded-For": f"203.0.113.{index}"})
    result = client.call("POST", "/api/auth/login", json={"email": "z@example.com", "password": "x"},
                         remote_addr="198.51.100.7", headers={"X-Forwarded-For": "203.0.113.99"})
    assert_error(result, 429)


def test_successful_login_resets_the_per_email_failure_count(api_with):
    client = api_with(auth={"login_max_failures": 3, "login_max_failures_per_address": 100})
    for _ in range(2):
        assert_error(client.login(ADMIN[0], "wrong-password"), 401)
    assert client.login(*ADMIN).status_code == 200
    for _ in range(2):
        assert_error(client.login(ADMIN[0], "wrong-password"), 401)
    # Without the reset this would be the 5th failure in the window (limit 3).
    assert client.login(*ADMIN).status_code == 200
