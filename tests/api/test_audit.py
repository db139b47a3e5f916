"""The audit trail: one record per mutation, its fields, paging, scoping, filters and client addresses."""

from __future__ import annotations

import pytest

from controller import audit
from controller.actor import Actor
from tests.api.helpers import (
    AUDIT_FIELDS,
    RULE_BODY,
    VM_BODY,
    assert_envelope,
    assert_error,
    assert_timestamp,
    assert_uuid,
    create_rule,
    create_snapshot,
    user_id_of,
)
from tests.conftest import ADMIN


def records(api, token, query=""):
    return assert_envelope(api.call("GET", "/api/audit-logs", token, query_string=query))


def all_records(api, admin_token):
    return records(api, admin_token, "limit=500")


def new_records(api, admin_token, before):
    """Records written since `before` (a newest-first list), newest first."""
    now = all_records(api, admin_token)
    known = {record["id"] for record in before}
    return [record for record in now if record["id"] not in known]


def assert_one_record(api, admin_token, before, action, resource_id=None, user_id=None):
    added = new_records(api, admin_token, before)
    assert [record["action"] for record in added] == [action], added
    record = added[0]
    assert set(record) >= AUDIT_FIELDS, record
    if resource_id is not None:
        assert record["resource_id"] == resource_id, record
    if user_id is not None:
        assert record["user_id"] == user_id, record
    assert isinstance(record["resource_type"], str) and record["resource_type"]
    assert isinstance(record["details"], dict)
    assert_timestamp(record["created_at"])
    return record


# --- one record per mutation ------------------------------------------------------------------------------


def test_register_writes_one_record(api, admin_token):
    before = all_records(api, admin_token)
    user = api.register("frank")["user"]
    assert_one_record(api, admin_token, before, "register", resource_id=user["id"], user_id=user["id"])


def test_login_writes_one_record(api, admin_token):
    api.register("frank")
    before = all_records(api, admin_token)
    result = api.login("frank@example.com", "password123")
    user_id = result.json["user"]["id"]
    assert_one_record(api, admin_token, before, "login", resource_id=user_id, user_id=user_id)


@pytest.mark.parametrize("email", ["frank@example.com", "nobody@example.com"])
def test_failed_login_writes_one_login_failed_record(api, admin_token, email):
    api.register("frank")
    before = all_records(api, admin_token)
    assert api.login(email, "wrong-password").status_code == 401
    record = assert_one_record(api, admin_token, before, "login_failed")
    assert "wrong-password" not in str(record["details"])


def test_create_vm_record_matches_the_contract(api, admin_token, user_token):
    before = all_records(api, admin_token)
    vm = api.create_vm(user_token, name="my-vm")
    record = assert_one_record(api, admin_token, before, "create_vm", resource_id=vm["id"],
                               user_id=user_id_of(api, user_token))
    assert record["resource_type"] == "virtual_machine"
    assert record["details"].get("vm_name") == "my-vm"
    assert record["ip_address"] == "127.0.0.1"
    assert_uuid(record["id"])


def test_update_vm_writes_one_record(api, admin_token, user_token, vm):
    before = all_records(api, admin_token)
    api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={"cpu_cores": 4, "memory_mb": 4096})
    assert_one_record(api, admin_token, before, "update_vm", resource_id=vm["id"])


def test_delete_vm_writes_one_record(api, admin_token, user_token, vm):
    before = all_records(api, admin_token)
    api.call("DELETE", f"/api/vms/{vm['id']}", user_token)
    assert_one_record(api, admin_token, before, "delete_vm", resource_id=vm["id"])


@pytest.mark.parametrize(("setup", "action"), [
    ([], "start"), (["start"], "stop"), (["start"], "pause"), (["start", "pause"], "unpause"),
    (["start"], "restart"),
])
def test_each_power_action_writes_one_record(api, admin_token, user_token, vm, setup, action):
    for step in setup:
        api.call("POST", f"/api/vms/{vm['id']}/action", user_token, json={"action": step})
    before = all_records(api, admin_token)
    result = api.call("POST", f"/api/vms/{vm['id']}/action", user_token, json={"action": action})
    assert result.status_code == 200, result.text
    assert_one_record(api, admin_token, before, f"{action}_vm", resource_id=vm["id"])


def test_create_snapshot_writes_one_record(api, admin_token, user_token, vm):
    before = all_records(api, admin_token)
    snapshot = create_snapshot(api, user_token, vm["id"])
    assert_one_record(api, admin_token, before, "create_snapshot", resource_id=snapshot["id"])


def test_delete_snapshot_writes_one_record(api, admin_token, user_token, vm):
    snapshot = create_snapshot(api, user_token, vm["id"])
    before = all_records(api, admin_token)
    api.call("DELETE", f"/api/vms/{vm['id']}/snapshots/{snapshot['id']}", user_token)
    assert_one_record(api, admin_token, before, "delete_snapshot", resource_id=snapshot["id"])


def test_rollback_snapshot_writes_one_record(api, admin_token, user_token, vm):
    snapshot = create_snapshot(api, user_token, vm["id"])
    before = all_records(api, admin_token)
    api.call("POST", f"/api/vms/{vm['id']}/snapshots/{snapshot['id']}/rollback", user_token)
    assert_one_record(api, admin_token, before, "rollback_snapshot", resource_id=snapshot["id"])


def test_create_firewall_rule_writes_one_record(api, admin_token, user_token, vm):
    before = all_records(api, admin_token)
    rule = create_rule(api, user_token, vm["id"])
    assert_one_record(api, admin_token, before, "create_firewall_rule", resource_id=rule["id"])


def test_update_firewall_rule_writes_one_record(api, admin_token, user_token, vm):
    rule = create_rule(api, user_token, vm["id"])
    before = all_records(api, admin_token)
    api.call("PUT", f"/api/firewall/{rule['id']}", user_token, json={"port": 2222})
    assert_one_record(api, admin_token, before, "update_firewall_rule", resource_id=rule["id"])


def test_delete_firewall_rule_writes_one_record(api, admin_token, user_token, vm):
    rule = create_rule(api, user_token, vm["id"])
    before = all_records(api, admin_token)
    api.call("DELETE", f"/api/firewall/{rule['id']}", user_token)
    assert_one_record(api, admin_token, before, "delete_firewall_rule", resource_id=rule["id"])


def test_rejected_requests_write_no_record(api, admin_token, user_token, vm):
    before = all_records(api, admin_token)
    api.call("POST", "/api/vms", user_token, json={**VM_BODY, "cpu_cores": 0})
    api.call("POST", "/api/vms", user_token, json={**VM_BODY, "name": vm["name"]})
    api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={"disk_gb": 1})
    api.call("POST", f"/api/vms/{vm['id']}/action", user_token, json={"action": "pause"})
    api.call("POST", f"/api/vms/{vm['id']}/firewall", user_token, json={**RULE_BODY, "port": 0})
    api.call("GET", "/api/vms", user_token)
    assert new_records(api, admin_token, before) == []


def test_records_have_the_contract_fields(api, admin_token, user_token, vm):
    for record in records(api, admin_token):
        assert set(record) >= AUDIT_FIELDS, record
        assert_uuid(record["id"])
        assert_timestamp(record["created_at"])
        assert isinstance(record["details"], dict)


# --- reading ------------------------------------------------------------------------------------------------


@pytest.fixture
def many_records(api, store):
    """600 records of the admin's, oldest first (resource ids r-0000 .. r-0599)."""
    admin_id = api.login(*ADMIN).json["user"]["id"]
    actor = Actor(user_id=admin_id, role="admin", ip_address="192.0.2.1")
    with store.write() as session:
        for index in range(600):
            audit.record(session, actor, "bulk_test", "virtual_machine", f"r-{index:04d}", {"n": index},
                         owner_id=admin_id)
    return admin_id


def test_default_page_is_50_newest_first(api, admin_token, many_records):
    data = records(api, admin_token)
    assert len(data) == 50
    assert [record["resource_id"] for record in data] == [f"r-{index:04d}" for index in range(599, 549, -1)]


def test_offset_pages_on(api, admin_token, many_records):
    data = records(api, admin_token, "limit=10&offset=5")
    assert [record["resource_id"] for record in data] == [f"r-{index:04d}" for index in range(594, 584, -1)]


def test_explicit_defaults_match_the_default_page(api, admin_token, many_records):
    assert records(api, admin_token, "limit=50&offset=0") == records(api, admin_token)


@pytest.mark.parametrize("limit", [501, 1000])
def test_limit_is_capped_at_500_without_error(api, admin_token, many_records, limit):
    data = records(api, admin_token, f"limit={limit}")
    assert len(data) == 500


def test_offset_past_the_end_is_an_empty_page(api, admin_token, many_records):
    assert records(api, admin_token, "offset=100000") == []


@pytest.mark.parametrize("query", ["limit=abc", "limit=-1", "limit=1.5", "offset=x", "offset=-1", "offset=2.0",
                                   "limit=-50&offset=0", "limit=10&offset=-10", "limit=1e3"])
def test_bad_limit_or_offset_is_400(api, admin_token, query):
    body = assert_error(api.call("GET", "/api/audit-logs", admin_token, query_string=query), 400)
    assert query.split("=")[0] in body["error"] or "offset" in body["error"]


@pytest.mark.parametrize("query", ["offset=99999999999999999999", "limit=99999999999999999999",
                                   "limit=10&offset=9223372036854775808"])
def test_huge_limit_or_offset_is_not_a_server_error(api, admin_token, query):
    """An out-of-range number is a bad value (400) or an empty page past the end, never a 500."""
    result = api.call("GET", "/api/audit-logs", admin_token, query_string=query)
    if result.status_code == 400:
        assert_error(result, 400)
    else:
        data = assert_envelope(result)
        assert len(data) <= 500
        if "offset" in query:
            assert data == []


def test_newest_first_across_real_mutations(api, user_token):
    vm = api.create_vm(user_token)
    api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={"cpu_cores": 4})
    api.call("DELETE", f"/api/vms/{vm['id']}", user_token)
    actions = [record["action"] for record in records(api, user_token)]
    assert actions[:3] == ["delete_vm", "update_vm", "create_vm"]


def test_users_see_only_their_own_records_and_admins_all(api, admin_token, user_token, bob_token):
    alice_vm = api.create_vm(user_token, name="a")
    bob_vm = api.create_vm(bob_token, name="b")
    alice_id, bob_id = user_id_of(api, user_token), user_id_of(api, bob_token)
    alice_view = records(api, user_token, "limit=500")
    bob_view = records(api, bob_token, "limit=500")
    admin_view = records(api, admin_token, "limit=500")
    assert alice_view and bob_view
    assert {record["user_id"] for record in alice_view} == {alice_id}
    assert {record["user_id"] for record in bob_view} == {bob_id}
    assert bob_vm["id"] not in {record["resource_id"] for record in alice_view}
    assert alice_vm["id"] not in {record["resource_id"] for record in bob_view}
    admin_resources = {record["resource_id"] for record in admin_view}
    assert {alice_vm["id"], bob_vm["id"]} <= admin_resources
    assert {alice_id, bob_id} <= {record["user_id"] for record in admin_view}


def test_users_do_not_see_failed_logins_against_other_accounts(api, user_token, bob_token):
    api.login("bob@example.com", "wrong-password")
    assert "login_failed" not in {record["action"] for record in records(api, user_token, "limit=500")}


def test_filter_by_action(api, admin_token, user_token):
    first = api.create_vm(user_token, name="a")
    second = api.create_vm(user_token, name="b")
    api.call("PUT", f"/api/vms/{first['id']}", user_token, json={"cpu_cores": 4})
    data = records(api, admin_token, "action=create_vm")
    assert {record["action"] for record in data} == {"create_vm"}
    assert [record["resource_id"] for record in data] == [second["id"], first["id"]]


def test_filter_by_resource_id(api, admin_token, user_token):
    first = api.create_vm(user_token, name="a")
    api.create_vm(user_token, name="b")
    api.call("PUT", f"/api/vms/{first['id']}", user_token, json={"cpu_cores": 4})
    data = records(api, user_token, f"resource_id={first['id']}")
    assert [record["action"] for record in data] == ["update_vm", "create_vm"]
    assert {record["resource_id"] for record in data} == {first["id"]}


def test_filters_combine_and_respect_ownership(api, admin_token, user_token, bob_token):
    alice_vm = api.create_vm(user_token, name="a")
    assert records(api, bob_token, f"resource_id={alice_vm['id']}") == []
    data = records(api, user_token, f"action=create_vm&resource_id={alice_vm['id']}")
    assert [record["resource_id"] for record in data] == [alice_vm["id"]]


def test_unknown_filter_value_gives_an_empty_list(api, admin_token):
    assert records(api, admin_token, "action=no_such_action") == []


# --- client addresses -----------------------------------------------------------------------------------


def latest_create(api, admin_token):
    return records(api, admin_token, "action=create_vm&limit=1")[0]


def test_peer_address_is_recorded(api, admin_token):
    api.call("POST", "/api/vms", admin_token, json=VM_BODY, remote_addr="198.51.100.23")
    assert latest_create(api, admin_token)["ip_address"] == "198.51.100.23"


def test_forwarded_for_is_ignored_without_trusted_proxies(api, admin_token):
    api.call("POST", "/api/vms", admin_token, json=VM_BODY, remote_addr="198.51.100.23",
             headers={"X-Forwarded-For": "203.0.113.7"})
    assert latest_create(api, admin_token)["ip_address"] == "198.51.100.23"


def test_forwarded_for_is_honoured_from_a_trusted_proxy(api_with, admin_token):
    client = api_with(server={"trusted_proxies": ["10.0.0.1"]})
    client.call("POST", "/api/vms", admin_token, json=VM_BODY, remote_addr="10.0.0.1",
                headers={"X-Forwarded-For": "203.0.113.7"})
    assert latest_create(client, admin_token)["ip_address"] == "203.0.113.7"


def test_forwarded_for_is_ignored_from_an_untrusted_peer(api_with, admin_token):
    client = api_with(server={"trusted_proxies": ["10.0.0.1"]})
    client.call("POST", "/api/vms", admin_token, json=VM_BODY, remote_addr="10.0.0.2",
                headers={"X-Forwarded-For": "203.0.113.7"})
    assert latest_create(client, admin_token)["ip_address"] == "10.0.0.2"


def test_forwarded_for_takes_the_nearest_untrusted_hop(api_with, admin_token):
    """A client-supplied (spoofed) first hop does not win over the address the trusted proxy saw."""
    client = api_with(server={"trusted_proxies": ["10.0.0.0/24"]})
    client.call("POST", "/api/vms", admin_token, json=VM_BODY, remote_addr="10.0.0.1",
                headers={"X-Forwarded-For": "1.2.3.4, 203.0.113.7, 10.0.0.5"})
    assert latest_create(client, admin_token)["ip_address"] == "203.0.113.7"


def test_login_records_the_forwarded_address_from_a_trusted_proxy(api_with, admin_token):
    client = api_with(server={"trusted_proxies": ["10.0.0.1"]})
    client.call("POST", "/api/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]}, remote_addr="10.0.0.1",
                headers={"X-Forwarded-For": "203.0.113.8"})
    assert records(client, admin_token, "action=login&limit=1")[0]["ip_address"] == "203.0.113.8"
