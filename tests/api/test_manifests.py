"""Manifests through the API: server-side apply, idempotence, updates, dry runs, apply sets and pruning, audit,
tenancy. Invalid manifests and hostile YAML are in test_manifest_errors.py; export and VM filters in
test_manifest_export.py."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from tests.api.helpers import assert_envelope, assert_error, assert_uuid, create_rule, create_snapshot, get_vm
from tests.api.manifest_helpers import (
    DROP,
    HTTP,
    SSH,
    WEB_1_YAML,
    action_counts,
    apply,
    as_yaml,
    audit_ids,
    by_name,
    changes_of,
    doc,
    plain_changes,
    post,
    post_json,
    post_yaml,
    rule_specs,
    snapshots,
    state,
    vms,
)

FULL: dict[str, Any] = {"node": "pve1", "cpu_cores": 2, "memory_mb": 2048, "disk_gb": 40, "power_state": "running"}

# --- apply creates ------------------------------------------------------------------------------------------


def test_applying_the_issue_example_creates_the_vm_with_its_snapshots_and_ordered_rules(api, user_token):
    result = post(api, user_token, WEB_1_YAML, query="apply_set=web")
    data = assert_envelope(result)
    assert result.json["message"] == "Applied: 1 created, 0 updated, 0 deleted, 0 unchanged"
    assert {key: data[key] for key in ("dry_run", "apply_set", "prune", "changed", "summary")} == {
        "dry_run": False, "apply_set": "web", "prune": False, "changed": True,
        "summary": {"create": 1, "update": 0, "delete": 0, "unchanged": 0, "none": 1, "live": 0, "reboot": 0,
                    "stop": 0, "destructive": 0}}
    [item] = data["objects"]
    assert (item["kind"], item["name"], item["action"], item["document"]) == ("VirtualMachine", "web-1", "create", 0)
    assert_uuid(item["id"])
    assert changes_of(item) == {
        "metadata.labels": (None, {"tier": "web"}),
        "spec.node": (None, "pve1"), "spec.cpu_cores": (None, 2), "spec.memory_mb": (None, 2048),
        "spec.disk_gb": (None, 40), "spec.power_state": (None, "running"),
        "spec.snapshots[baseline]": (None, {"name": "baseline", "description": "after provisioning"}),
        "spec.firewall[0]": (None, {**SSH, "enabled": True}),
        "spec.firewall[1]": (None, {**DROP, "enabled": True}),
    }

    vm = get_vm(api, user_token, item["id"])
    assert {key: vm[key] for key in FULL} == FULL
    assert (vm["name"], vm["vmid"], vm["labels"], vm["apply_set"]) == ("web-1", item["vmid"], {"tier": "web"}, "web")
    assert (vm["generation"], vm["sync_status"]) == (1, "pending")
    assert [(snap["name"], snap["description"], snap["sync_status"]) for snap in snapshots(api, user_token, vm["id"])
            ] == [("baseline", "after provisioning", "pending")]
    assert rule_specs(api, user_token, vm["id"]) == [SSH, DROP]


DOCS = [doc("a-1", cpu_cores=2), doc("a-2", {"tier": "db"}, memory_mb=1024)]


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/yaml", as_yaml(*DOCS)),
    ("application/x-yaml", as_yaml(*DOCS)),
    ("text/yaml", as_yaml(*DOCS)),
    ("text/x-yaml; charset=utf-8", as_yaml(*DOCS)),
    (None, as_yaml(*DOCS)),  # curl --data-binary without a type
    ("application/json", json.dumps(DOCS)),
    ("application/json", json.dumps({"items": DOCS})),
], ids=["yaml", "x-yaml", "text-yaml", "text-x-yaml-charset", "no-type", "json-list", "json-items"])
def test_every_accepted_body_form_creates_the_same_vms(api, user_token, content_type, body):
    data = assert_envelope(post(api, user_token, body, content_type))
    assert [(item["name"], item["action"], item["document"]) for item in data["objects"]] == [
        ("a-1", "create", 0), ("a-2", "create", 1)]
    found = vms(api, user_token)
    assert (found["a-1"]["cpu_cores"], found["a-1"]["labels"]) == (2, {})
    assert (found["a-2"]["memory_mb"], found["a-2"]["labels"]) == (1024, {"tier": "db"})


def test_many_creates_in_one_apply_get_distinct_vmids_after_those_in_use(api, user_token):
    first = api.create_vm(user_token, name="before")
    assert_envelope(post_yaml(api, user_token, *[doc(f"many-{index}", node="pve1") for index in range(6)],
                              doc("with-rules", node="pve1", firewall=[SSH])))
    found = vms(api, user_token)
    vmids = sorted(vm["vmid"] for name, vm in found.items() if name != "before")
    assert vmids == list(range(first["vmid"] + 1, first["vmid"] + 8))
    assert rule_specs(api, user_token, found["with-rules"]["id"]) == [SSH]
    later = api.create_vm(user_token, name="after")
    assert later["vmid"] == first["vmid"] + 8


def test_a_single_json_document_creates_one_vm(api, user_token):
    data = assert_envelope(post_json(api, user_token, doc("solo", **FULL)))
    assert [item["action"] for item in data["objects"]] == ["create"]
    assert {key: vms(api, user_token)["solo"][key] for key in FULL} == FULL


def test_omitted_spec_fields_get_the_api_defaults_on_create(api, user_token):
    apply(api, user_token, doc("bare"))
    vm = vms(api, user_token)["bare"]
    assert (vm["node"], vm["cpu_cores"], vm["memory_mb"], vm["disk_gb"], vm["power_state"]) == (
        "pve1", 1, 512, 10, "stopped")
    assert (vm["labels"], vm["apply_set"]) == ({}, None)
    assert snapshots(api, user_token, vm["id"]) == [] and rule_specs(api, user_token, vm["id"]) == []


# --- idempotence --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True], ids=["yaml", "json"])
def test_reapplying_the_same_manifest_changes_nothing(api, user_token, admin_token, as_json):
    documents = [doc("web-1", {"tier": "web"}, **FULL, snapshots=[{"name": "baseline", "description": "x"}],
                     firewall=[SSH, DROP]), doc("web-2")]
    send = (lambda: post_json(api, user_token, documents, "apply_set=web")) if as_json else \
        (lambda: post_yaml(api, user_token, *documents, query="apply_set=web"))
    assert_envelope(send())
    before = state(api, user_token, admin_token)

    result = send()
    data = assert_envelope(result)
    assert data["changed"] is False
    assert action_counts(data["summary"]) == {"create": 0, "update": 0, "delete": 0, "unchanged": 2}
    assert [(item["action"], item["changes"]) for item in data["objects"]] == [("unchanged", [])] * 2
    assert result.json["message"] == "Applied: 0 created, 0 updated, 0 deleted, 2 unchanged"
    assert state(api, user_token, admin_token) == before  # same generations, timestamps, rows; no audit


# --- updates ------------------------------------------------------------------------------------------------


def test_a_changed_field_is_an_update_with_its_diff_and_one_generation_bump(api, user_token):
    created = apply(api, user_token, doc("web-1", **FULL))["objects"][0]
    before = get_vm(api, user_token, created["id"])
    data = apply(api, user_token, doc("web-1", **{**FULL, "cpu_cores": 4, "memory_mb": 4096}))
    [item] = data["objects"]
    assert (item["action"], item["id"], item["vmid"]) == ("update", created["id"], created["vmid"])
    assert plain_changes(item["changes"]) == [{"field": "spec.cpu_cores", "old": 2, "new": 4},
                               {"field": "spec.memory_mb", "old": 2048, "new": 4096}]
    assert data["summary"]["update"] == 1
    after = get_vm(api, user_token, created["id"])
    assert (after["cpu_cores"], after["memory_mb"], after["disk_gb"]) == (4, 4096, 40)
    assert (after["generation"], after["sync_status"]) == (before["generation"] + 1, "pending")


def test_fields_a_manifest_omits_are_left_alone(api, user_token):
    apply(api, user_token, doc("web-1", {"tier": "web"}, **FULL, snapshots=[{"name": "keep"}], firewall=[SSH]))
    vm = vms(api, user_token)["web-1"]
    for partial in (doc("web-1"), doc("web-1", cpu_cores=2), doc("web-1", power_state="running", disk_gb=40)):
        assert [item["action"] for item in apply(api, user_token, partial)["objects"]] == ["unchanged"]
    data = apply(api, user_token, doc("web-1", disk_gb=50))
    assert changes_of(data["objects"][0]) == {"spec.disk_gb": (40, 50)}
    after = vms(api, user_token)["web-1"]
    assert {key: after[key] for key in FULL} == {**FULL, "disk_gb": 50}
    assert after["labels"] == {"tier": "web"}
    assert [snap["name"] for snap in snapshots(api, user_token, vm["id"])] == ["keep"]
    assert rule_specs(api, user_token, vm["id"]) == [SSH]


def test_a_labels_only_change_is_an_update_without_a_generation_bump(api, user_token):
    apply(api, user_token, doc("web-1", {"tier": "web"}, **FULL))
    before = vms(api, user_token)["web-1"]
    [item] = apply(api, user_token, doc("web-1", {"tier": "api", "env": "prod"}, **FULL))["objects"]
    assert item["action"] == "update"
    assert plain_changes(item["changes"]) == [{"field": "metadata.labels", "old": {"tier": "web"},
                                "new": {"tier": "api", "env": "prod"}}]
    after = vms(api, user_token)["web-1"]
    assert after["labels"] == {"tier": "api", "env": "prod"}
    assert (after["generation"], after["sync_status"]) == (before["generation"], before["sync_status"])
    [item] = apply(api, user_token, doc("web-1", {}))["objects"]  # empty labels: all removed
    assert changes_of(item) == {"metadata.labels": ({"tier": "api", "env": "prod"}, {})}


def test_a_manifest_updates_a_vm_created_through_rest_without_adopting_it(api, user_token):
    rest = api.create_vm(user_token, name="legacy", cpu_cores=2)
    [item] = apply(api, user_token, doc("legacy", cpu_cores=3), query="apply_set=web")["objects"]
    assert (item["action"], item["id"]) == ("update", rest["id"])
    after = get_vm(api, user_token, rest["id"])
    assert (after["cpu_cores"], after["apply_set"]) == (3, None)


# --- snapshots: the listed set is the desired set -----------------------------------------------------------


def test_listed_snapshots_are_the_desired_set(api, user_token):
    apply(api, user_token, doc("lab", snapshots=[{"name": "old"}, {"name": "keep", "description": "v1"}]))
    vm = vms(api, user_token)["lab"]
    generation = vm["generation"]
    [item] = apply(api, user_token, doc("lab", snapshots=[{"name": "keep", "description": "v2"},
                                                          {"name": "new", "description": "fresh"}]))["objects"]
    assert item["action"] == "update"
    assert changes_of(item) == {
        "spec.snapshots[new]": (None, {"name": "new", "description": "fresh"}),
        "spec.snapshots[keep].description": ("v1", "v2"),
        "spec.snapshots[old]": ({"name": "old"}, None),
    }
    found = {snap["name"]: snap for snap in snapshots(api, user_token, vm["id"])}
    assert found["old"]["sync_status"] == "deleting"  # deletion requested: the reconciler removes it
    assert (found["keep"]["description"], found["keep"]["sync_status"]) == ("v2", "pending")
    assert (found["new"]["description"], found["new"]["sync_status"]) == ("fresh", "pending")
    assert vms(api, user_token)["lab"]["generation"] == generation + 1
    # The snapshot being deleted is not part of the desired state any more: the same manifest is now a no-op.
    again = apply(api, user_token, doc("lab", snapshots=[{"name": "keep", "description": "v2"},
                                                         {"name": "new", "description": "fresh"}]))
    assert again["changed"] is False


def test_an_empty_snapshot_list_removes_every_snapshot_and_an_absent_one_keeps_them(api, user_token):
    vm = api.create_vm(user_token, name="lab")
    create_snapshot(api, user_token, vm["id"], "by-rest")
    apply(api, user_token, doc("lab", snapshots=[{"name": "by-manifest"}]))  # the REST one is not listed
    assert {snap["name"]: snap["sync_status"] for snap in snapshots(api, user_token, vm["id"])} == {
        "by-rest": "deleting", "by-manifest": "pending"}
    assert apply(api, user_token, doc("lab", cpu_cores=2))["changed"] is False  # no snapshots key: left alone
    [item] = apply(api, user_token, doc("lab", snapshots=[]))["objects"]
    assert changes_of(item) == {"spec.snapshots[by-manifest]": ({"name": "by-manifest"}, None)}
    assert {snap["sync_status"] for snap in snapshots(api, user_token, vm["id"])} == {"deleting"}


def test_listing_a_snapshot_that_is_still_being_deleted_is_409(api, user_token, admin_token):
    apply(api, user_token, doc("lab", snapshots=[{"name": "snap"}]))
    apply(api, user_token, doc("lab", snapshots=[]))
    before = state(api, user_token, admin_token)
    body = assert_error(post_yaml(api, user_token, doc("lab", cpu_cores=4, snapshots=[{"name": "snap"}])), 409)
    assert "snap" in body["error"] and "document 0 (lab)" in body["error"]
    assert state(api, user_token, admin_token) == before


# --- firewall: the listed rules are the desired, ordered list -----------------------------------------------


@pytest.mark.parametrize(("desired", "expected_changes"), [
    ([{**SSH, "port": 2222}, HTTP, DROP], {"spec.firewall[0].port": (22, 2222)}),
    ([SSH, DROP], {"spec.firewall[1].port": (80, None), "spec.firewall[1].action": ("accept", "drop"),
                   "spec.firewall[2]": ({**DROP, "enabled": True}, None)}),
    ([SSH, HTTP], {"spec.firewall[2]": ({**DROP, "enabled": True}, None)}),
    ([SSH, HTTP, DROP, {**HTTP, "port": 443, "comment": "tls"}],
     {"spec.firewall[3]": (None, {**HTTP, "port": 443, "comment": "tls", "enabled": True})}),
    ([HTTP, SSH, DROP], {"spec.firewall[0].port": (22, 80), "spec.firewall[0].source": ("10.0.0.0/8", None),
                         "spec.firewall[1].port": (80, 22), "spec.firewall[1].source": (None, "10.0.0.0/8")}),
    ([], {f"spec.firewall[{index}]": ({**rule, "enabled": True}, None)
          for index, rule in enumerate([SSH, HTTP, DROP])}),
], ids=["change-port", "remove-middle", "remove-last", "add", "reorder", "remove-all"])
def test_listed_firewall_rules_are_the_desired_ordered_list(api, user_token, desired, expected_changes):
    apply(api, user_token, doc("web-1", firewall=[SSH, HTTP, DROP]))
    vm = vms(api, user_token)["web-1"]
    [item] = apply(api, user_token, doc("web-1", firewall=desired))["objects"]
    assert item["action"] == "update"
    assert changes_of(item) == expected_changes
    assert rule_specs(api, user_token, vm["id"]) == desired
    assert vms(api, user_token)["web-1"]["generation"] == vm["generation"] + 1
    assert apply(api, user_token, doc("web-1", firewall=desired))["changed"] is False


def test_an_absent_firewall_key_leaves_rest_created_rules_alone(api, user_token):
    vm = api.create_vm(user_token, name="web-1")
    create_rule(api, user_token, vm["id"], protocol="TCP", port=443, source="0.0.0.0/0")
    assert apply(api, user_token, doc("web-1", cpu_cores=2))["changed"] is False
    assert len(rule_specs(api, user_token, vm["id"])) == 1


# --- dry run ------------------------------------------------------------------------------------------------


def test_dry_run_answers_the_plan_and_writes_nothing(api, user_token, admin_token):
    apply(api, user_token, doc("keep", cpu_cores=1), doc("grow", cpu_cores=1), doc("gone"), query="apply_set=lab")
    before = state(api, user_token, admin_token)
    result = post_yaml(api, user_token, doc("keep", cpu_cores=1), doc("grow", cpu_cores=2, firewall=[SSH]),
                       doc("new", memory_mb=1024), query="apply_set=lab&prune=true&dry_run=true")
    data = assert_envelope(result)
    assert result.json["message"] == "Dry run: 1 to create, 1 to update, 1 to delete, 1 unchanged"
    assert (data["dry_run"], data["apply_set"], data["prune"], data["changed"]) == (True, "lab", True, True)
    assert action_counts(data["summary"]) == {"create": 1, "update": 1, "delete": 1, "unchanged": 1}
    plan = by_name(data)
    assert [(item["name"], item["action"], item["document"]) for item in data["objects"]] == [
        ("keep", "unchanged", 0), ("grow", "update", 1), ("new", "create", 2), ("gone", "delete", None)]
    assert (plan["new"]["id"], plan["new"]["vmid"]) == (None, None)
    assert changes_of(plan["new"])["spec.memory_mb"] == (None, 1024)
    assert changes_of(plan["grow"]) == {"spec.cpu_cores": (1, 2),
                                        "spec.firewall[0]": (None, {**SSH, "enabled": True})}
    assert plan["gone"]["changes"] == []
    assert plan["gone"]["id"] == before[0]["gone"]["id"] and plan["grow"]["id"] == before[0]["grow"]["id"]
    assert plan["keep"]["changes"] == []
    assert state(api, user_token, admin_token) == before


def test_dry_run_of_a_new_manifest_creates_nothing(api, user_token):
    data = assert_envelope(post(api, user_token, WEB_1_YAML, query="dry_run=true"))
    assert [item["action"] for item in data["objects"]] == ["create"]
    assert vms(api, user_token) == {}


@pytest.mark.parametrize(("value", "dry"), [("true", True), ("1", True), ("yes", True), ("TRUE", True),
                                            ("false", False), ("0", False), ("no", False), ("", False)])
def test_dry_run_flag_values(api, user_token, value, dry):
    data = assert_envelope(post_yaml(api, user_token, doc("flag"), query=f"dry_run={value}"))
    assert data["dry_run"] is dry
    assert ("flag" in vms(api, user_token)) is not dry


@pytest.mark.parametrize("flag", ["dry_run", "prune"])
def test_a_flag_that_is_not_a_boolean_is_400(api, user_token, flag):
    body = assert_error(post_yaml(api, user_token, doc("flag"), query=f"apply_set=s&{flag}=maybe"), 400)
    assert body["field"] == flag
    assert vms(api, user_token) == {}


# --- apply sets and pruning ---------------------------------------------------------------------------------


def test_prune_deletes_only_the_callers_vms_of_that_apply_set_missing_from_the_manifest(
        api, user_token, bob_token, admin_token):
    apply(api, user_token, doc("w-1"), doc("w-2"), doc("w-3"), query="apply_set=web")
    apply(api, user_token, doc("d-1"), query="apply_set=db")
    api.create_vm(user_token, name="rest-1")
    apply(api, user_token, doc("plain"))  # no apply set
    apply(api, bob_token, doc("w-2"), doc("w-3"), query="apply_set=web")
    before_alice, before_bob = vms(api, user_token), vms(api, bob_token)
    audit_before = audit_ids(api, admin_token)

    data = apply(api, user_token, doc("w-1"), query="apply_set=web&prune=true")
    assert action_counts(data["summary"]) == {"create": 0, "update": 0, "delete": 2, "unchanged": 1}
    assert [(item["name"], item["action"]) for item in data["objects"]] == [
        ("w-1", "unchanged"), ("w-2", "delete"), ("w-3", "delete")]
    assert {item["id"] for item in data["objects"][1:]} == {before_alice["w-2"]["id"], before_alice["w-3"]["id"]}

    after = vms(api, user_token)
    assert {name for name, vm in after.items() if vm["sync_status"] == "deleting"} == {"w-2", "w-3"}
    for name in ("w-1", "d-1", "rest-1", "plain"):
        assert after[name] == before_alice[name], name
    assert vms(api, bob_token) == before_bob
    assert len(audit_ids(api, admin_token)) == len(audit_before) + 2
    # Already being deleted: a second prune has nothing left to do.
    assert apply(api, user_token, doc("w-1"), query="apply_set=web&prune=true")["changed"] is False


def test_an_apply_set_without_prune_deletes_nothing(api, user_token):
    apply(api, user_token, doc("w-1"), doc("w-2"), query="apply_set=web")
    data = apply(api, user_token, doc("w-1"), query="apply_set=web")
    assert [item["name"] for item in data["objects"]] == ["w-1"]
    assert {vm["sync_status"] for vm in vms(api, user_token).values()} == {"pending"}


def test_an_empty_manifest_cannot_prune_everything(api, user_token):
    apply(api, user_token, doc("w-1"), query="apply_set=web")
    assert_error(post(api, user_token, "# nothing here\n", query="apply_set=web&prune=true"), 400)
    assert vms(api, user_token)["w-1"]["sync_status"] == "pending"


def test_prune_without_an_apply_set_is_400(api, user_token):
    apply(api, user_token, doc("w-1"), doc("w-2"))
    for query in ("prune=true", "prune=true&apply_set="):
        body = assert_error(post_yaml(api, user_token, doc("w-1"), query=query), 400)
        assert body["field"] == "prune" and "apply_set" in body["error"]
    assert {vm["sync_status"] for vm in vms(api, user_token).values()} == {"pending"}


@pytest.mark.parametrize("name", ["-web", "web-", "a b", "web/prod", "x" * 64, "wéb", "web%00", "web\n", "\nweb"])
def test_a_bad_apply_set_name_is_400(api, user_token, name):
    body = assert_error(post_yaml(api, user_token, doc("w-1"), query=f"apply_set={quote(name)}"), 400)
    assert body["field"] == "apply_set"
    assert vms(api, user_token) == {}


@pytest.mark.parametrize("name", ["w", "web", "web.prod_2-a", "x" * 63])
def test_good_apply_set_names_are_recorded_on_created_vms(api, user_token, name):
    data = apply(api, user_token, doc("w-1"), query=f"apply_set={name}")
    assert data["apply_set"] == name
    assert vms(api, user_token)["w-1"]["apply_set"] == name


# --- audit --------------------------------------------------------------------------------------------------


def test_audit_has_one_record_per_changed_object_naming_the_manifest_and_apply_set(api, user_token):
    def records():
        return assert_envelope(api.call("GET", "/api/audit-logs", user_token, query_string="limit=500"))

    apply(api, user_token, doc("a-1"), doc("a-2"), doc("a-3"), query="apply_set=web")
    created = [record for record in records() if record["action"] == "create_vm"]
    assert sorted(record["details"]["vm_name"] for record in created) == ["a-1", "a-2", "a-3"]
    assert all(record["details"]["via"] == "manifest" and record["details"]["apply_set"] == "web"
               for record in created)
    count = len(records())

    ids = {name: vm["id"] for name, vm in vms(api, user_token).items()}
    apply(api, user_token, doc("a-1"), doc("a-2", cpu_cores=3), query="apply_set=web&prune=true")
    added = records()[:len(records()) - count]
    assert sorted((record["action"], record["resource_id"]) for record in added) == sorted(
        [("update_vm", ids["a-2"]), ("delete_vm", ids["a-3"])])
    update = next(record for record in added if record["action"] == "update_vm")
    assert update["details"]["via"] == "manifest" and update["details"]["apply_set"] == "web"
    assert plain_changes(update["details"]["changes"]) == [{"field": "spec.cpu_cores", "old": 1, "new": 3}]
    delete = next(record for record in added if record["action"] == "delete_vm")
    assert delete["details"]["via"] == "manifest" and delete["details"]["vm_name"] == "a-3"


# --- tenancy and deletion -----------------------------------------------------------------------------------


def test_a_manifest_never_touches_another_users_vm_of_the_same_name(api, user_token, bob_token):
    bobs = api.create_vm(bob_token, name="web-1", cpu_cores=2)
    [item] = apply(api, user_token, doc("web-1", cpu_cores=8), query="apply_set=web")["objects"]
    assert item["action"] == "create" and item["id"] != bobs["id"]
    assert get_vm(api, bob_token, bobs["id"]) == bobs
    assert vms(api, user_token)["web-1"]["cpu_cores"] == 8
    apply(api, bob_token, doc("other"), query="apply_set=web&prune=true")  # bob's prune: not alice's web-1
    assert vms(api, user_token)["web-1"]["sync_status"] == "pending"


def test_a_vm_being_deleted_that_a_manifest_names_is_409_and_nothing_is_applied(api, user_token, admin_token):
    vm = api.create_vm(user_token, name="going")
    assert api.call("DELETE", f"/api/vms/{vm['id']}", user_token).status_code in (200, 202)
    before = state(api, user_token, admin_token)
    body = assert_error(post_yaml(api, user_token, doc("fresh"), doc("going", cpu_cores=4)), 409)
    assert "document 1 (going)" in body["error"] and "deleted" in body["error"]
    assert state(api, user_token, admin_token) == before
