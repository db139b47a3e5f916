"""Snapshots: Proxmox's name rule, uniqueness per VM, fields, deletion marks, rollback requests, generations."""

from __future__ import annotations

import pytest

from tests.api.helpers import (
    SNAPSHOT_FIELDS,
    SYNC_STATUSES,
    assert_envelope,
    assert_error,
    assert_names_field,
    assert_timestamp,
    assert_uuid,
    create_snapshot,
    get_vm,
)

GOOD_NAMES = ["ab", "a1", "A_", "backup-2024-01-15", "Weekly_backup", "a" * 40, "x-_-_", "currently", "current2"]
BAD_NAMES = ["", "a", "1abc", "-abc", "_abc", "a b", "a.b", "a/b", "a" * 41, "current", "b\u00e4ckup", "snap!",
             " ", 5, None, ["ab"]]


def snapshots_url(vm_id, *rest):
    return "/".join([f"/api/vms/{vm_id}/snapshots", *rest])


def test_create_answers_201_with_the_snapshot(api, user_token, vm):
    result = api.call("POST", snapshots_url(vm["id"]), user_token,
                      json={"name": "backup-2024-01-15", "description": "Weekly backup"})
    snapshot = assert_envelope(result, 201)
    assert set(snapshot) >= SNAPSHOT_FIELDS, snapshot
    assert_uuid(snapshot["id"])
    assert snapshot["vm_id"] == vm["id"]
    assert snapshot["name"] == "backup-2024-01-15"
    assert snapshot["description"] == "Weekly backup"
    assert_timestamp(snapshot["created_at"])
    assert snapshot["sync_status"] == "pending"
    assert snapshot["last_error"] is None


def test_description_is_optional(api, user_token, vm):
    snapshot = create_snapshot(api, user_token, vm["id"], "nodesc")
    assert snapshot["description"] is None


def test_list_answers_the_vms_snapshots(api, user_token, vm):
    first = create_snapshot(api, user_token, vm["id"], "first")
    second = create_snapshot(api, user_token, vm["id"], "second", description="two")
    data = assert_envelope(api.call("GET", snapshots_url(vm["id"]), user_token))
    assert isinstance(data, list)
    assert {item["id"] for item in data} == {first["id"], second["id"]}
    for item in data:
        assert set(item) >= SNAPSHOT_FIELDS
        assert item["sync_status"] in SYNC_STATUSES


def test_list_is_empty_for_a_vm_without_snapshots(api, user_token, vm):
    assert assert_envelope(api.call("GET", snapshots_url(vm["id"]), user_token)) == []


def test_list_shows_only_that_vms_snapshots(api, user_token, vm):
    other = api.create_vm(user_token, name="other")
    create_snapshot(api, user_token, other["id"], "elsewhere")
    assert assert_envelope(api.call("GET", snapshots_url(vm["id"]), user_token)) == []


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_valid_snapshot_name_is_accepted(api, user_token, vm, name):
    assert create_snapshot(api, user_token, vm["id"], name)["name"] == name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_snapshot_name_is_400_naming_name(api, user_token, vm, name):
    result = api.call("POST", snapshots_url(vm["id"]), user_token, json={"name": name})
    assert_names_field(result, "name")
    assert assert_envelope(api.call("GET", snapshots_url(vm["id"]), user_token)) == []


@pytest.mark.parametrize(("body", "field"), [
    ({}, "name"),
    ({"name": "ok-name", "description": 5}, "description"),
    ({"name": "ok-name", "vmstate": True}, "vmstate"),
])
def test_bad_snapshot_request_is_400_naming_the_field(api, user_token, vm, body, field):
    assert_names_field(api.call("POST", snapshots_url(vm["id"]), user_token, json=body), field)


@pytest.mark.parametrize("body", [[], "snap", 3])
def test_non_object_snapshot_body_is_400(api, user_token, vm, body):
    assert_error(api.call("POST", snapshots_url(vm["id"]), user_token, json=body), 400)


def test_duplicate_name_on_one_vm_is_409(api, user_token, vm):
    create_snapshot(api, user_token, vm["id"], "dup")
    assert_error(api.call("POST", snapshots_url(vm["id"]), user_token, json={"name": "dup"}), 409)


def test_same_name_on_two_vms_is_fine(api, user_token, vm):
    other = api.create_vm(user_token, name="other")
    first = create_snapshot(api, user_token, vm["id"], "same")
    second = create_snapshot(api, user_token, other["id"], "same")
    assert first["id"] != second["id"]


def test_snapshot_on_unknown_vm_is_404(api, user_token):
    vm_id = "00000000-0000-0000-0000-000000000000"
    assert_error(api.call("POST", snapshots_url(vm_id), user_token, json={"name": "snap"}), 404)
    assert_error(api.call("GET", snapshots_url(vm_id), user_token), 404)


def test_snapshot_on_a_vm_being_deleted_is_409(api, user_token, vm):
    api.call("DELETE", f"/api/vms/{vm['id']}", user_token)
    assert_error(api.call("POST", snapshots_url(vm["id"]), user_token, json={"name": "late"}), 409)


def test_delete_answers_200_and_marks_the_snapshot_deleting(api, user_token, vm):
    snapshot = create_snapshot(api, user_token, vm["id"])
    result = api.call("DELETE", snapshots_url(vm["id"], snapshot["id"]), user_token)
    assert assert_envelope(result) == {"deleted": True}
    listed = assert_envelope(api.call("GET", snapshots_url(vm["id"]), user_token))
    assert [(item["id"], item["sync_status"]) for item in listed] == [(snapshot["id"], "deleting")]


def test_delete_unknown_snapshot_is_404(api, user_token, vm):
    result = api.call("DELETE", snapshots_url(vm["id"], "00000000-0000-0000-0000-000000000000"), user_token)
    assert_error(result, 404)


def test_snapshot_is_only_reachable_through_its_own_vm(api, user_token, vm):
    other = api.create_vm(user_token, name="other")
    snapshot = create_snapshot(api, user_token, vm["id"])
    assert_error(api.call("DELETE", snapshots_url(other["id"], snapshot["id"]), user_token), 404)
    assert_error(api.call("POST", snapshots_url(other["id"], snapshot["id"], "rollback"), user_token), 404)


def test_rollback_answers_200_and_sets_rollback_pending(api, user_token, vm):
    snapshot = create_snapshot(api, user_token, vm["id"])
    assert snapshot.get("rollback_pending") is False
    result = api.call("POST", snapshots_url(vm["id"], snapshot["id"], "rollback"), user_token)
    data = assert_envelope(result)
    assert data["id"] == snapshot["id"]
    assert data["rollback_pending"] is True
    listed = assert_envelope(api.call("GET", snapshots_url(vm["id"]), user_token))
    assert listed[0]["rollback_pending"] is True


def test_rollback_of_unknown_snapshot_is_404(api, user_token, vm):
    result = api.call("POST", snapshots_url(vm["id"], "00000000-0000-0000-0000-000000000000", "rollback"),
                      user_token)
    assert_error(result, 404)


def test_rollback_to_a_snapshot_being_deleted_is_409(api, user_token, vm):
    snapshot = create_snapshot(api, user_token, vm["id"])
    api.call("DELETE", snapshots_url(vm["id"], snapshot["id"]), user_token)
    assert_error(api.call("POST", snapshots_url(vm["id"], snapshot["id"], "rollback"), user_token), 409)


def test_snapshot_changes_bump_the_vms_generation(api, user_token, vm):
    generation = vm["generation"]
    snapshot = create_snapshot(api, user_token, vm["id"])
    after_create = get_vm(api, user_token, vm["id"])
    assert after_create["generation"] == generation + 1 and after_create["sync_status"] == "pending"
    api.call("POST", snapshots_url(vm["id"], snapshot["id"], "rollback"), user_token)
    assert get_vm(api, user_token, vm["id"])["generation"] == generation + 2
    api.call("DELETE", snapshots_url(vm["id"], snapshot["id"]), user_token)
    assert get_vm(api, user_token, vm["id"])["generation"] == generation + 3


def test_a_refused_snapshot_does_not_bump_generation(api, user_token, vm):
    create_snapshot(api, user_token, vm["id"], "dup")
    generation = get_vm(api, user_token, vm["id"])["generation"]
    api.call("POST", snapshots_url(vm["id"]), user_token, json={"name": "dup"})
    api.call("POST", snapshots_url(vm["id"]), user_token, json={"name": "1bad"})
    assert get_vm(api, user_token, vm["id"])["generation"] == generation
