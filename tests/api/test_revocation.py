"""Logout and password change revoke tokens, in the database: on every replica and after a restart."""

from __future__ import annotations

import jwt

from controller.store.models import RevokedToken
from tests.api.helpers import assert_envelope, assert_error
from tests.conftest import ADMIN, JWT_SECRET

ME = "/api/auth/me"


def password(api, token, current, new):
    return api.call("PUT", "/api/auth/password", token, json={"current_password": current, "new_password": new})


def test_logout_revokes_the_presented_token(api, user_token):
    assert api.call("GET", ME, user_token).status_code == 200
    data = assert_envelope(api.call("POST", "/api/auth/logout", user_token))
    assert data == {"revoked": True}
    body = assert_error(api.call("GET", ME, user_token), 401)
    assert "revoked" in body["error"]


def test_logout_leaves_the_users_other_tokens_working(api, user_token):
    other = api.token_for("alice@example.com", "password123")
    assert_envelope(api.call("POST", "/api/auth/logout", user_token))
    assert api.call("GET", ME, other).status_code == 200


def test_logout_holds_on_another_replica_and_after_a_restart(api, api_with, user_token, store):
    replica = api_with()  # another app over the same database: a second API process, or a restarted one
    assert replica.call("GET", ME, user_token).status_code == 200
    assert_envelope(api.call("POST", "/api/auth/logout", user_token))
    assert_error(replica.call("GET", ME, user_token), 401)
    jti = jwt.decode(user_token, JWT_SECRET.encode(), algorithms=["HS256"], issuer="pvem")["jti"]
    with store.read() as session:
        assert session.get(RevokedToken, jti) is not None  # kept in the database, not in memory


def test_logout_without_a_token_is_401(api):
    assert_error(api.call("POST", "/api/auth/logout"), 401)


def test_logout_twice_is_401_the_second_time(api, user_token):
    assert_envelope(api.call("POST", "/api/auth/logout", user_token))
    assert_error(api.call("POST", "/api/auth/logout", user_token), 401)


def test_password_change_revokes_every_earlier_token_and_the_new_password_works(api, api_with, user_token):
    second = api.token_for("alice@example.com", "password123")
    data = assert_envelope(password(api, user_token, "password123", "new-password-456"))
    assert data["user"]["email"] == "alice@example.com"
    fresh = data["token"]
    replica = api_with()
    for token in (user_token, second):
        assert_error(api.call("GET", ME, token), 401)
        assert_error(replica.call("GET", ME, token), 401)
    assert api.call("GET", ME, fresh).status_code == 200
    assert_error(api.login("alice@example.com", "password123"), 401)
    relogged = api.token_for("alice@example.com", "new-password-456")  # issued in the same second: valid
    assert api.call("GET", ME, relogged).status_code == 200


def test_password_change_with_a_wrong_current_password_is_refused_and_changes_nothing(api, user_token):
    body = assert_error(password(api, user_token, "not-my-password", "new-password-456"), 403)
    assert "current_password" in body["error"]
    assert api.call("GET", ME, user_token).status_code == 200
    assert api.login("alice@example.com", "password123").status_code == 200


def test_password_change_validates_the_new_password(api, user_token):
    body = assert_error(password(api, user_token, "password123", "short"), 400)
    assert body["field"] == "new_password"
    body = assert_error(api.call("PUT", "/api/auth/password", user_token, json={"new_password": "long-enough-1"}),
                        400)
    assert body["field"] == "current_password"


def test_password_change_needs_a_token(api):
    assert_error(password(api, None, "password123", "new-password-456"), 401)


def test_password_change_and_logout_are_audited(api, admin_token, user_token):
    assert_envelope(password(api, user_token, "password123", "new-password-456"))
    fresh = api.token_for("alice@example.com", "new-password-456")
    assert_envelope(api.call("POST", "/api/auth/logout", fresh))
    actions = [record["action"] for record in assert_envelope(api.call("GET", "/api/audit-logs", admin_token))]
    assert actions[:3] == ["logout", "login", "change_password"]
    assert "new-password-456" not in str(assert_envelope(api.call("GET", "/api/audit-logs", admin_token)))


def test_admin_token_minted_elsewhere_before_a_password_change_is_revoked(api, admin_token):
    import time
    import uuid

    claims = jwt.decode(admin_token, JWT_SECRET.encode(), algorithms=["HS256"], issuer="pvem")
    now = int(time.time())  # an integer iat, as other services mint them
    minted = jwt.encode({"sub": claims["sub"], "iat": now, "exp": now + 600, "jti": str(uuid.uuid4()),
                         "iss": "pvem"}, JWT_SECRET.encode(), algorithm="HS256")
    assert api.call("GET", ME, minted).status_code == 200
    assert_envelope(password(api, admin_token, ADMIN[1], "new-admin-password"))
    assert_error(api.call("GET", ME, minted), 401)
