"""VMs: the contract's envelopes and fields, create defaults, updates and generations, deletion, vmids."""

from __future__ import annotations

from tests.api.helpers import (
    SYNC_STATUSES,
    VM_ADDED_FIELDS,
    VM_BODY,
    VM_SEED_FIELDS,
    assert_envelope,
    assert_error,
    assert_names_field,
    assert_timestamp,
    assert_uuid,
    get_vm,
    user_id_of,
)


def test_create_answers_201_with_the_vm_in_the_envelope(api, user_token):
    result = api.call("POST", "/api/vms", user_token, json={"name": "my-vm", "cpu_cores": 2, "memory_mb": 2048,
                                                            "disk_gb": 50, "node": "node1"})
    vm = assert_envelope(result, 201)
    assert result.json["message"] == "Virtual machine created successfully"
    assert set(vm) >= VM_SEED_FIELDS | VM_ADDED_FIELDS, vm
    assert_uuid(vm["id"])
    assert (vm["name"], vm["cpu_cores"], vm["memory_mb"], vm["disk_gb"], vm["node"]) == ("my-vm", 2, 2048, 50, "node1")
    assert vm["owner_id"] == user_id_of(api, user_token)
    assert type(vm["vmid"]) is int
    assert_timestamp(vm["created_at"])
    assert_timestamp(vm["updated_at"])


def test_new_vm_is_unknown_stopped_pending_and_unobserved(api, user_token):
    vm = api.create_vm(user_token)
    assert vm["status"] == "unknown"
    assert vm["power_state"] == "stopped"
    assert vm["observed_generation"] == 0
    assert type(vm["generation"]) is int and vm["generation"] >= 1
    assert vm["sync_status"] == "pending"
    assert vm["last_error"] is None
    assert vm["last_synced_at"] is None


def test_new_vm_may_ask_to_be_running(api, user_token):
    vm = api.create_vm(user_token, power_state="running")
    assert vm["power_state"] == "running"
    assert vm["status"] == "unknown"


def test_new_vm_may_say_stopped_explicitly(api, user_token):
    assert api.create_vm(user_token, power_state="stopped")["power_state"] == "stopped"


def test_get_one_vm_answers_the_same_object(api, user_token):
    vm = api.create_vm(user_token)
    result = api.call("GET", f"/api/vms/{vm['id']}", user_token)
    assert assert_envelope(result) == vm


def test_list_answers_an_array_of_vms(api, user_token):
    first = api.create_vm(user_token, name="a-1")
    second = api.create_vm(user_token, name="a-2")
    data = assert_envelope(api.call("GET", "/api/vms", user_token))
    assert isinstance(data, list)
    assert {vm["id"] for vm in data} == {first["id"], second["id"]}
    for vm in data:
        assert set(vm) >= VM_SEED_FIELDS | VM_ADDED_FIELDS
        assert vm["sync_status"] in SYNC_STATUSES


def test_list_is_empty_for_a_new_user(api, user_token):
    assert assert_envelope(api.call("GET", "/api/vms", user_token)) == []


def test_unknown_vm_is_404(api, user_token):
    assert_error(api.call("GET", "/api/vms/00000000-0000-0000-0000-000000000000", user_token), 404)
    assert_error(api.call("GET", "/api/vms/not-a-uuid", user_token), 404)


def test_update_answers_200_with_the_updated_vm(api, user_token):
    vm = api.create_vm(user_token)
    result = api.call("PUT", f"/api/vms/{vm['id']}", user_token,
                      json={"name": "updated-vm-name", "cpu_cores": 4, "memory_mb": 4096})
    data = assert_envelope(result)
    assert (data["name"], data["cpu_cores"], data["memory_mb"]) == ("updated-vm-name", 4, 4096)
    assert data["disk_gb"] == vm["disk_gb"] and data["node"] == vm["node"]
    assert get_vm(api, user_token, vm["id"]) == data


def test_every_spec_change_bumps_generation_by_one_and_sets_pending(api, user_token):
    vm = api.create_vm(user_token)
    generation = vm["generation"]
    for change in ({"cpu_cores": 4}, {"memory_mb": 4096}, {"disk_gb": 40}, {"name": "renamed"},
                   {"node": "pve2"}, {"power_state": "running"}, {"cpu_cores": 8, "memory_mb": 8192}):
        data = assert_envelope(api.call("PUT", f"/api/vms/{vm['id']}", user_token, json=change))
        generation += 1
        assert data["generation"] == generation, change
        assert data["sync_status"] == "pending"
        assert get_vm(api, user_token, vm["id"])["generation"] == generation


def test_update_with_identical_values_does_not_bump_generation(api, user_token):
    vm = api.create_vm(user_token)
    same = {key: vm[key] for key in ("name", "cpu_cores", "memory_mb", "disk_gb", "node")}
    data = assert_envelope(api.call("PUT", f"/api/vms/{vm['id']}", user_token, json=same))
    assert data["generation"] == vm["generation"]
    assert get_vm(api, user_token, vm["id"])["generation"] == vm["generation"]


def test_disk_may_grow(api, user_token):
    vm = api.create_vm(user_token, disk_gb=20)
    data = assert_envelope(api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={"disk_gb": 21}))
    assert data["disk_gb"] == 21


def test_disk_shrink_is_400_naming_disk_gb(api, user_token):
    vm = api.create_vm(user_token, disk_gb=20)
    assert_names_field(api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={"disk_gb": 19}), "disk_gb")
    after = get_vm(api, user_token, vm["id"])
    assert after["disk_gb"] == 20 and after["generation"] == vm["generation"]


def test_name_is_unique_per_owner_on_create(api, user_token):
    api.create_vm(user_token, name="dup")
    result = api.call("POST", "/api/vms", user_token, json={**VM_BODY, "name": "dup"})
    assert_error(result, 409)


def test_name_is_unique_per_owner_on_rename(api, user_token):
    api.create_vm(user_token, name="taken")
    other = api.create_vm(user_token, name="other")
    assert_error(api.call("PUT", f"/api/vms/{other['id']}", user_token, json={"name": "taken"}), 409)


def test_two_users_may_use_the_same_name(api, user_token, bob_token):
    mine = api.create_vm(user_token, name="web")
    theirs = api.create_vm(bob_token, name="web")
    assert mine["id"] != theirs["id"] and mine["vmid"] != theirs["vmid"]


def test_renaming_to_its_own_name_is_fine(api, user_token):
    vm = api.create_vm(user_token, name="same")
    assert assert_envelope(api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={"name": "same"}))


def test_delete_answers_deleted_true_and_marks_deleting(api, user_token):
    vm = api.create_vm(user_token)
    result = api.call("DELETE", f"/api/vms/{vm['id']}", user_token)
    assert assert_envelope(result) == {"deleted": True}
    assert result.json["message"] == "Virtual machine deleted successfully"
    assert get_vm(api, user_token, vm["id"])["sync_status"] == "deleting"


def test_deleting_twice_is_200(api, user_token):
    vm = api.create_vm(user_token)
    assert api.call("DELETE", f"/api/vms/{vm['id']}", user_token).status_code == 200
    result = api.call("DELETE", f"/api/vms/{vm['id']}", user_token)
    assert assert_envelope(result) == {"deleted": True}
    assert get_vm(api, user_token, vm["id"])["sync_status"] == "deleting"


def test_delete_unknown_vm_is_404(api, user_token):
    assert_error(api.call("DELETE", "/api/vms/00000000-0000-0000-0000-000000000000", user_token), 404)


def test_update_of_a_vm_being_deleted_is_409(api, user_token):
    vm = api.create_vm(user_token)
    api.call("DELETE", f"/api/vms/{vm['id']}", user_token)
    assert_error(api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={"cpu_cores": 4}), 409)
    assert get_vm(api, user_token, vm["id"])["cpu_cores"] == vm["cpu_cores"]


def test_vmids_are_unique(api, user_token):
    vmids = [api.create_vm(user_token, name=f"vm-{index}")["vmid"] for index in range(5)]
    assert len(set(vmids)) == 5


def test_vmids_stay_inside_the_configured_range_and_exhaustion_is_409(api_with, admin_token):
    client = api_with(proxmox={"vmid_min": 500, "vmid_max": 502, "default_node": "pve1"})
    vmids = [client.create_vm(admin_token, name=f"r-{index}")["vmid"] for index in range(3)]
    assert sorted(vmids) == [500, 501, 502]
    result = client.call("POST", "/api/vms", admin_token, json={**VM_BODY, "name": "r-3"})
    assert_error(result, 409)


def test_vmid_of_a_vm_being_deleted_is_not_reused(api_with, admin_token):
    client = api_with(proxmox={"vmid_min": 500, "vmid_max": 501, "default_node": "pve1"})
    first = client.create_vm(admin_token, name="a")
    client.call("DELETE", f"/api/vms/{first['id']}", admin_token)
    second = client.create_vm(admin_token, name="b")
    assert second["vmid"] != first["vmid"] and 500 <= second["vmid"] <= 501


def test_update_cannot_change_vmid_or_owner(api, user_token):
    vm = api.create_vm(user_token)
    for body in ({"vmid": 999}, {"owner_id": vm["owner_id"]}, {"status": "running"}, {"generation": 7}):
        assert_error(api.call("PUT", f"/api/vms/{vm['id']}", user_token, json=body), 400)
    assert get_vm(api, user_token, vm["id"]) == vm
