"""Login and registration under attack: one normalisation everywhere, throttling counted before the
password check and shared through the database, argon2 outside transactions, races answered 409."""

from __future__ import annotations

import threading

import falcon.testing
import pytest

from controller import users
from controller.store.models import AuditLog, LoginThrottle, User
from tests.api.helpers import assert_envelope, assert_error
from tests.conftest import ADMIN, Api

FULL_WIDTH_ADMIN = "\uff41\uff44\uff4d\uff49\uff4e\uff20pve.local"  # "admin@" in full-width letters


def limited(api_with, per_email=3, per_address=100):
    return api_with(auth={"login_max_failures": per_email, "login_max_failures_per_address": per_address})


@pytest.mark.parametrize("variant", ["  admin@pve.local", "admin@pve.local  ", "\tADMIN@pve.local\n",
                                     FULL_WIDTH_ADMIN])
def test_email_throttle_counts_padded_and_look_alike_emails_as_one(api_with, variant):
    client = limited(api_with)
    for _ in range(3):
        assert_error(client.login(variant, "wrong-password"), 401)
    assert_error(client.login(ADMIN[0], ADMIN[1]), 429)


def test_full_width_email_logs_in_to_the_same_account(api):
    result = api.login(FULL_WIDTH_ADMIN, ADMIN[1])
    assert result.status_code == 200, result.text
    assert result.json["user"]["email"] == "admin@pve.local"


def test_full_width_look_alike_cannot_register_a_second_account(api):
    result = api.call("POST", "/api/auth/register",
                      json={"username": "mallory", "email": FULL_WIDTH_ADMIN, "password": "password123"})
    assert_error(result, 409)
    api.register("carol", email="\uff43arol@example.com")
    assert api.login("carol@example.com", "password123").status_code == 200


def test_concurrent_wrong_guesses_never_check_more_passwords_than_the_limit(api_with, passwords, monkeypatch):
    client = limited(api_with, per_email=5)
    checked = []
    real_verify = users.Passwords.verify

    def counting(self, stored, password):
        checked.append(password)
        return real_verify(self, stored, password)

    monkeypatch.setattr(users.Passwords, "verify", counting)
    statuses: list[int] = []
    barrier = threading.Barrier(20)

    def guess(index: int) -> None:
        barrier.wait(10)
        statuses.append(client.login(ADMIN[0], f"guess-{index}").status_code)

    threads = [threading.Thread(target=guess, args=(index,)) for index in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(statuses) == 20
    assert statuses.count(401) == 5 and statuses.count(429) == 15, statuses
    assert len(checked) == 5


def test_replicas_share_one_limit(api_with):
    first, second = limited(api_with), limited(api_with)
    assert_error(first.login(ADMIN[0], "wrong-1"), 401)
    assert_error(second.login(ADMIN[0], "wrong-2"), 401)
    assert_error(first.login(ADMIN[0], "wrong-3"), 401)
    assert_error(second.login(ADMIN[0], "wrong-4"), 429)


def test_the_throttle_stores_no_email(api, store):
    assert_error(api.login("secret-person@example.com", "wrong"), 401)
    with store.read() as session:
        keys = [row.key for row in session.query(LoginThrottle)]
    assert keys and not any("secret-person" in key or "example.com" in key for key in keys)


def test_failed_login_for_an_unknown_email_is_audited_without_the_email(api, admin_token, store):
    assert_error(api.login("Someone.Secret@Example.com", "wrong-password"), 401)
    with store.read() as session:
        record = session.query(AuditLog).filter_by(action="login_failed").order_by(AuditLog.seq.desc()).first()
        assert record is not None
        stored = str(record.details)
    assert "someone.secret" not in stored.lower()
    assert "example.com" in stored  # the redacted form keeps the domain
    # the same unknown email gives the same keyed hash, to correlate a spray
    assert_error(api.login("someone.secret@example.com ", "wrong-again"), 401)
    hashes = [record["details"]["email_hash"] for record in assert_envelope(
        api.call("GET", "/api/audit-logs", admin_token, query_string="action=login_failed"))[:2]]
    assert hashes[0] == hashes[1]


def test_failed_login_for_a_known_account_names_that_account(api, admin_token):
    assert_error(api.login(" ADMIN@pve.local", "wrong-password"), 401)
    record = assert_envelope(api.call("GET", "/api/audit-logs", admin_token, query_string="action=login_failed"))[0]
    assert record["details"]["email"] == "admin@pve.local"


def test_argon2_runs_with_no_database_connection_held(api, store, monkeypatch):
    held: list[int] = []
    real_hash, real_verify = users.Passwords.hash, users.Passwords.verify

    def hash_(self, password):
        held.append(store.engine.pool.checkedout())
        return real_hash(self, password)

    def verify(self, stored, password):
        held.append(store.engine.pool.checkedout())
        return real_verify(self, stored, password)

    monkeypatch.setattr(users.Passwords, "hash", hash_)
    monkeypatch.setattr(users.Passwords, "verify", verify)
    api.register("carol")
    assert api.login("carol@example.com", "password123").status_code == 200
    assert api.login("carol@example.com", "wrong-password").status_code == 401
    token = api.token_for("carol@example.com", "password123")
    assert api.call("PUT", "/api/auth/password", token,
                    json={"current_password": "password123", "new_password": "another-one-1"}).status_code == 200
    assert len(held) >= 6 and set(held) == {0}, held


def test_registration_that_loses_a_race_is_409_not_500(api, store, passwords, monkeypatch):
    """Another replica inserts the same email while this one hashes the password."""
    real_hash = users.Passwords.hash

    def racing_hash(self, password):
        hashed = real_hash(self, password)
        with store.write() as session:
            session.add(User(username="racer", email="carol@example.com", password_hash=hashed, role="user"))
        return hashed

    monkeypatch.setattr(users.Passwords, "hash", racing_hash)
    result = api.call("POST", "/api/auth/register",
                      json={"username": "carol", "email": "carol@example.com", "password": "password123"})
    assert_error(result, 409)


def test_simultaneous_registrations_of_one_email_give_one_201_and_409s(api, app_factory, settings):
    clients = [Api(falcon.testing.TestClient(app_factory(settings))) for _ in range(6)]
    statuses: list[int] = []
    barrier = threading.Barrier(len(clients))

    def register(index: int, client: Api) -> None:
        barrier.wait(10)
        statuses.append(client.call("POST", "/api/auth/register", json={
            "username": f"twin{index}", "email": "twin@example.com", "password": "password123"}).status_code)

    threads = [threading.Thread(target=register, args=pair) for pair in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) == [201] + [409] * 5


def test_an_email_that_normalises_past_254_characters_is_400(api):
    email = "a@" + "\ufdfa" * 20  # each of these NFKC-expands to 18 characters
    body = {"username": "long", "email": email, "password": "password123"}
    result = api.call("POST", "/api/auth/register", json=body)
    assert assert_error(result, 400)["field"] == "email"
