"""User administration (admins): list with usage, role and disabled, quotas enforced by REST and manifests."""

from __future__ import annotations

import pytest

from tests.api.helpers import VM_BODY, assert_envelope, assert_error, user_id_of
from tests.api.manifest_helpers import doc, post_yaml, vms

ADMIN_USER_FIELDS = {"id", "username", "email", "role", "disabled", "created_at", "quota", "usage"}
UNLIMITED = {"max_vms": None, "max_cpu_cores": None, "max_memory_mb": None, "max_disk_gb": None}


def quota(api, admin_token, user_id, **limits):
    return api.call("PUT", f"/api/users/{user_id}/quota", admin_token, json=limits)


@pytest.fixture
def alice_id(api, user_token):
    return user_id_of(api, user_token)


def test_admin_lists_users_with_quota_and_usage(api, admin_token, user_token, alice_id):
    api.create_vm(user_token, name="a-1", cpu_cores=2, memory_mb=1024, disk_gb=10)
    api.create_vm(user_token, name="a-2", cpu_cores=1, memory_mb=512, disk_gb=5)
    listed = {user["email"]: user for user in assert_envelope(api.call("GET", "/api/users", admin_token))}
    assert set(listed) == {"admin@pve.local", "alice@example.com"}
    alice = listed["alice@example.com"]
    assert set(alice) == ADMIN_USER_FIELDS
    assert alice["id"] == alice_id and alice["role"] == "user" and alice["disabled"] is False
    assert alice["usage"] == {"vms": 2, "cpu_cores": 3, "memory_mb": 1536, "disk_gb": 15}
    assert alice["quota"] == UNLIMITED
    assert listed["admin@pve.local"]["usage"] == {"vms": 0, "cpu_cores": 0, "memory_mb": 0, "disk_gb": 0}
    one = assert_envelope(api.call("GET", f"/api/users/{alice_id}", admin_token))
    assert one == alice


def test_deleted_vms_do_not_count_as_usage(api, admin_token, user_token, alice_id):
    vm = api.create_vm(user_token)
    assert_envelope(api.call("DELETE", f"/api/vms/{vm['id']}", user_token))
    assert assert_envelope(api.call("GET", f"/api/users/{alice_id}", admin_token))["usage"]["vms"] == 0


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/api/users", None), ("GET", "/api/users/{id}", None), ("PUT", "/api/users/{id}", {"role": "admin"}),
    ("PUT", "/api/users/{id}/quota", {"max_vms": 100}),
])
def test_users_administration_is_for_admins_only(api, user_token, alice_id, method, path, body):
    assert_error(api.call(method, path.format(id=alice_id), user_token, json=body), 403)
    assert_error(api.call(method, path.format(id=alice_id), json=body), 401)
    me = assert_envelope(api.call("GET", "/api/auth/me", user_token))
    assert me["role"] == "user"


def test_unknown_user_is_404(api, admin_token):
    assert_error(api.call("GET", "/api/users/nope", admin_token), 404)
    assert_error(api.call("PUT", "/api/users/nope", admin_token, json={"disabled": True}), 404)
    assert_error(quota(api, admin_token, "nope", max_vms=1), 404)


def test_role_change_applies_at_once(api, admin_token, user_token, alice_id):
    data = assert_envelope(api.call("PUT", f"/api/users/{alice_id}", admin_token, json={"role": "admin"}))
    assert data["role"] == "admin"
    assert api.call("GET", "/api/users", user_token).status_code == 200


def test_disabling_stops_every_token_at_once_and_refuses_login(api, admin_token, user_token, alice_id):
    api_token = assert_envelope(api.call("POST", "/api/tokens", user_token, json={"name": "ci"}), 201)["token"]
    data = assert_envelope(api.call("PUT", f"/api/users/{alice_id}", admin_token, json={"disabled": True}))
    assert data["disabled"] is True
    for token in (user_token, api_token):
        body = assert_error(api.call("GET", "/api/vms", token), 401)
        assert "disabled" in body["error"]
    assert_error(api.login("alice@example.com", "password123"), 403)
    assert_error(api.login("alice@example.com", "wrong-password"), 401)
    assert_envelope(api.call("PUT", f"/api/users/{alice_id}", admin_token, json={"disabled": False}))
    assert api.call("GET", "/api/vms", user_token).status_code == 200
    assert api.login("alice@example.com", "password123").status_code == 200


def test_admins_cannot_disable_or_demote_themselves(api, admin_token):
    admin_id = user_id_of(api, admin_token)
    for body in ({"disabled": True}, {"role": "user"}):
        assert_error(api.call("PUT", f"/api/users/{admin_id}", admin_token, json=body), 409)
    assert api.call("GET", "/api/users", admin_token).status_code == 200


@pytest.mark.parametrize(("body", "field"), [({"role": "root"}, "role"), ({"disabled": "yes"}, "disabled"),
                                             ({"role": None}, "role"), ({"email": "x@y.z"}, "email")])
def test_bad_user_updates_are_400(api, admin_token, alice_id, body, field):
    result = api.call("PUT", f"/api/users/{alice_id}", admin_token, json=body)
    assert assert_error(result, 400)["field"] == field


@pytest.mark.parametrize(("body", "field"), [({"max_vms": -1}, "max_vms"), ({"max_cpu_cores": "4"}, "max_cpu_cores"),
                                             ({"max_ram": 1}, "max_ram")])
def test_bad_quotas_are_400(api, admin_token, alice_id, body, field):
    assert assert_error(quota(api, admin_token, alice_id, **body), 400)["field"] == field


def test_set_quota_keeps_omitted_fields_and_null_is_unlimited(api, admin_token, alice_id):
    data = assert_envelope(quota(api, admin_token, alice_id, max_vms=3, max_disk_gb=100))
    assert data["quota"] == {**UNLIMITED, "max_vms": 3, "max_disk_gb": 100}
    data = assert_envelope(quota(api, admin_token, alice_id, max_vms=None))
    assert data["quota"] == {**UNLIMITED, "max_disk_gb": 100}


def test_create_past_max_vms_is_403_naming_the_quota_and_creates_nothing(api, admin_token, user_token, alice_id):
    assert_envelope(quota(api, admin_token, alice_id, max_vms=1))
    api.create_vm(user_token, name="a-1")
    body = assert_error(api.call("POST", "/api/vms", user_token, json={**VM_BODY, "name": "a-2"}), 403)
    assert "max_vms" in body["error"] and body["quota"] == "max_vms"
    assert [vm["name"] for vm in assert_envelope(api.call("GET", "/api/vms", user_token))] == ["a-1"]


@pytest.mark.parametrize(("limit", "field", "value"), [("max_cpu_cores", "cpu_cores", 5),
                                                        ("max_memory_mb", "memory_mb", 4096),
                                                        ("max_disk_gb", "disk_gb", 50)])
def test_each_resource_quota_bounds_create_and_update(api, admin_token, user_token, alice_id, limit, field, value):
    assert_envelope(quota(api, admin_token, alice_id, **{limit: value}))
    body = assert_error(api.call("POST", "/api/vms", user_token, json={**VM_BODY, field: value + 1}), 403)
    assert limit in body["error"]
    vm = api.create_vm(user_token, **{field: value})
    body = assert_error(api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={field: value + 1}), 403)
    assert body["quota"] == limit
    assert assert_envelope(api.call("GET", f"/api/vms/{vm['id']}", user_token))[field] == value


def test_extra_disks_count_toward_max_disk_gb(api, admin_token, user_token, alice_id):
    assert_envelope(quota(api, admin_token, alice_id, max_disk_gb=50))
    body = assert_error(api.call("POST", "/api/vms", user_token,
                                 json={**VM_BODY, "disk_gb": 20, "disks": [{"size_gb": 31}]}), 403)
    assert body["quota"] == "max_disk_gb"
    vm = api.create_vm(user_token, disk_gb=20, disks=[{"size_gb": 10}])
    data = assert_envelope(api.call("GET", f"/api/users/{alice_id}", admin_token))
    assert data["usage"]["disk_gb"] == 30
    body = assert_error(api.call("PUT", f"/api/vms/{vm['id']}", user_token,
                                 json={"disks": [{"size_gb": 10}, {"size_gb": 21}]}), 403)
    assert body["quota"] == "max_disk_gb"
    assert_envelope(api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={"disks": [{"size_gb": 30}]}))
    body = assert_error(post_yaml(api, user_token, doc("m-disk", node="pve1", disk_gb=10)), 403)
    assert body["quota"] == "max_disk_gb"


def test_a_user_over_a_lowered_quota_may_still_shrink(api, admin_token, user_token, alice_id):
    vm = api.create_vm(user_token, cpu_cores=4)
    assert_envelope(quota(api, admin_token, alice_id, max_cpu_cores=2))
    assert_envelope(api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={"cpu_cores": 3}))
    assert_envelope(api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={"labels": {"a": "b"}}))
    assert_error(api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={"cpu_cores": 4}), 403)


def test_admin_creating_for_a_user_meets_that_users_quota(api, admin_token, user_token, alice_id):
    assert_envelope(quota(api, admin_token, alice_id, max_vms=0))
    body = assert_error(api.call("POST", "/api/vms", admin_token, json={**VM_BODY, "owner_id": alice_id}), 403)
    assert body["quota"] == "max_vms"


def test_admins_own_vms_are_not_limited(api, admin_token):
    admin_id = user_id_of(api, admin_token)
    assert_envelope(quota(api, admin_token, admin_id, max_vms=0))
    api.create_vm(admin_token)


def test_manifest_apply_past_a_quota_is_403_and_applies_nothing(api, admin_token, user_token, alice_id):
    assert_envelope(quota(api, admin_token, alice_id, max_vms=2, max_cpu_cores=4))
    documents = [doc(f"m-{index}", node="pve1", cpu_cores=1) for index in range(3)]
    body = assert_error(post_yaml(api, user_token, *documents), 403)
    assert body["quota"] == "max_vms" and "max_vms" in body["error"]
    assert vms(api, user_token) == {}
    body = assert_error(post_yaml(api, user_token, *documents, query="dry_run=true"), 403)
    assert_envelope(post_yaml(api, user_token, *documents[:2]))
    body = assert_error(post_yaml(api, user_token, doc("m-0", node="pve1", cpu_cores=2),
                                  doc("m-1", node="pve1", cpu_cores=3)), 403)
    assert body["quota"] == "max_cpu_cores"
    assert {vm["cpu_cores"] for vm in vms(api, user_token).values()} == {1}
    # Within the quota (4 cores in all) the same apply goes through.
    assert_envelope(post_yaml(api, user_token, doc("m-0", node="pve1", cpu_cores=3), doc("m-1", node="pve1")))


def test_new_users_get_auth_default_quota(api_with, admin_token):
    client = api_with(auth={"default_quota": {"max_vms": 1, "max_memory_mb": 2048}})
    token = client.register("zoe")["token"]
    zoe_id = user_id_of(client, token)
    data = assert_envelope(client.call("GET", f"/api/users/{zoe_id}", admin_token))
    assert data["quota"] == {**UNLIMITED, "max_vms": 1, "max_memory_mb": 2048}
    client.create_vm(token, name="z-1", memory_mb=1024)
    assert_error(client.call("POST", "/api/vms", token, json={**VM_BODY, "name": "z-2", "memory_mb": 512}), 403)


def test_quota_changes_are_audited(api, admin_token, alice_id):
    assert_envelope(quota(api, admin_token, alice_id, max_vms=5))
    assert_envelope(api.call("PUT", f"/api/users/{alice_id}", admin_token, json={"disabled": True}))
    records = assert_envelope(api.call("GET", "/api/audit-logs", admin_token))
    assert [record["action"] for record in records[:2]] == ["disable_user", "set_quota"]
    assert records[1]["details"]["changes"] == {"max_vms": {"old": None, "new": 5}}
