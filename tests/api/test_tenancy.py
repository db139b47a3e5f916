"""Ownership: users see and touch only their own resources (others' are 404, never 403); admins see all."""

from __future__ import annotations

import pytest

from tests.api.helpers import (
    RULE_BODY,
    VM_BODY,
    assert_envelope,
    assert_error,
    assert_names_field,
    create_rule,
    create_snapshot,
    get_vm,
    user_id_of,
)

# (method, path template, body, expected admin status)
ROUTES = [
    ("GET", "/api/vms/{vm}", None, 200),
    ("PUT", "/api/vms/{vm}", {"cpu_cores": 3}, 200),
    ("POST", "/api/vms/{vm}/action", {"action": "start"}, 200),
    ("GET", "/api/vms/{vm}/snapshots", None, 200),
    ("POST", "/api/vms/{vm}/snapshots", {"name": "intruder"}, 201),
    ("POST", "/api/vms/{vm}/snapshots/{snapshot}/rollback", None, 200),
    ("DELETE", "/api/vms/{vm}/snapshots/{snapshot}", None, 200),
    ("GET", "/api/vms/{vm}/firewall", None, 200),
    ("POST", "/api/vms/{vm}/firewall", RULE_BODY, 201),
    ("PUT", "/api/firewall/{rule}", {"port": 8080}, 200),
    ("DELETE", "/api/firewall/{rule}", None, 200),
    ("DELETE", "/api/vms/{vm}", None, 200),
]


@pytest.fixture
def alices(api, user_token):
    """Alice's VM with a snapshot and a firewall rule."""
    vm = api.create_vm(user_token, name="alice-vm")
    snapshot = create_snapshot(api, user_token, vm["id"], "alice-snap")
    rule = create_rule(api, user_token, vm["id"])
    return {"vm": vm["id"], "snapshot": snapshot["id"], "rule": rule["id"]}


def state_of(api, token, ids):
    return (get_vm(api, token, ids["vm"]),
            assert_envelope(api.call("GET", f"/api/vms/{ids['vm']}/snapshots", token)),
            assert_envelope(api.call("GET", f"/api/vms/{ids['vm']}/firewall", token)))


@pytest.mark.parametrize(("method", "template", "body", "_admin_status"), ROUTES,
                         ids=[f"{route[0]} {route[1]}" for route in ROUTES])
def test_another_users_resource_is_404_and_untouched(api, user_token, bob_token, alices, method, template, body,
                                                      _admin_status):
    before = state_of(api, user_token, alices)
    result = api.call(method, template.format(**alices), bob_token, json=body)
    assert_error(result, 404)
    assert state_of(api, user_token, alices) == before


@pytest.mark.parametrize(("method", "template", "body", "admin_status"), ROUTES,
                         ids=[f"{route[0]} {route[1]}" for route in ROUTES])
def test_admin_may_use_every_route_on_a_users_resources(api, user_token, admin_token, alices, method, template,
                                                         body, admin_status):
    result = api.call(method, template.format(**alices), admin_token, json=body)
    assert_envelope(result, admin_status)


@pytest.mark.parametrize(("method", "template", "body", "status"), ROUTES,
                         ids=[f"{route[0]} {route[1]}" for route in ROUTES])
def test_owner_may_use_every_route(api, user_token, alices, method, template, body, status):
    assert_envelope(api.call(method, template.format(**alices), user_token, json=body), status)


def test_admin_changes_are_visible_to_the_owner(api, user_token, admin_token, alices):
    assert_envelope(api.call("PUT", f"/api/vms/{alices['vm']}", admin_token, json={"memory_mb": 1024}))
    assert get_vm(api, user_token, alices["vm"])["memory_mb"] == 1024


def test_list_shows_users_only_their_own_vms_and_admins_all(api, user_token, bob_token, admin_token):
    alice_vm = api.create_vm(user_token, name="a")
    bob_vm = api.create_vm(bob_token, name="b")
    admin_vm = api.create_vm(admin_token, name="c")
    ids = lambda token: {vm["id"] for vm in assert_envelope(api.call("GET", "/api/vms", token))}  # noqa: E731
    assert ids(user_token) == {alice_vm["id"]}
    assert ids(bob_token) == {bob_vm["id"]}
    assert ids(admin_token) == {alice_vm["id"], bob_vm["id"], admin_vm["id"]}


def test_users_cannot_see_an_admins_vm(api, user_token, admin_token):
    admin_vm = api.create_vm(admin_token, name="admin-only")
    assert_error(api.call("GET", f"/api/vms/{admin_vm['id']}", user_token), 404)


def test_admin_may_create_a_vm_for_another_user(api, user_token, admin_token):
    alice_id = user_id_of(api, user_token)
    vm = api.create_vm(admin_token, name="gift", owner_id=alice_id)
    assert vm["owner_id"] == alice_id
    assert get_vm(api, user_token, vm["id"])["name"] == "gift"
    assert vm["id"] in {item["id"] for item in assert_envelope(api.call("GET", "/api/vms", user_token))}


def test_vm_created_for_a_user_counts_against_that_users_names(api, user_token, admin_token):
    alice_id = user_id_of(api, user_token)
    api.create_vm(user_token, name="mine")
    result = api.call("POST", "/api/vms", admin_token, json={**VM_BODY, "name": "mine", "owner_id": alice_id})
    assert_error(result, 409)
    api.create_vm(admin_token, name="mine")  # the admin's own namespace is separate


def test_user_may_not_create_a_vm_for_someone_else(api, user_token, bob_token):
    bob_id = user_id_of(api, bob_token)
    result = api.call("POST", "/api/vms", user_token, json={**VM_BODY, "owner_id": bob_id})
    assert_error(result, 403)
    assert assert_envelope(api.call("GET", "/api/vms", bob_token)) == []


def test_user_naming_themself_as_owner_is_fine(api, user_token):
    alice_id = user_id_of(api, user_token)
    assert api.create_vm(user_token, owner_id=alice_id)["owner_id"] == alice_id


def test_admin_with_unknown_owner_is_400(api, admin_token):
    result = api.call("POST", "/api/vms", admin_token,
                      json={**VM_BODY, "owner_id": "00000000-0000-0000-0000-000000000000"})
    assert_names_field(result, "owner_id")
    assert assert_envelope(api.call("GET", "/api/vms", admin_token)) == []


def test_a_foreign_rule_looks_exactly_like_a_missing_one(api, user_token, bob_token, alices):
    foreign = api.call("PUT", f"/api/firewall/{alices['rule']}", bob_token, json={"port": 1})
    missing = api.call("PUT", "/api/firewall/00000000-0000-0000-0000-000000000000", bob_token, json={"port": 1})
    assert assert_error(foreign, 404) == assert_error(missing, 404)


def test_a_foreign_vm_looks_exactly_like_a_missing_one(api, user_token, bob_token, alices):
    foreign = api.call("GET", f"/api/vms/{alices['vm']}", bob_token)
    missing = api.call("GET", "/api/vms/00000000-0000-0000-0000-000000000000", bob_token)
    assert assert_error(foreign, 404) == assert_error(missing, 404)
