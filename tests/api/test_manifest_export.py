"""GET /api/manifests/export (formats, scoping, filters, round trips) and the VM list's name/label filters and
labels on the REST API."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.api.helpers import assert_envelope, assert_error, assert_names_field, create_rule, create_snapshot, get_vm
from tests.api.manifest_helpers import DROP, SSH, action_counts, apply, doc, post, state, vms

EXPORT = "/api/manifests/export"


def export_yaml(api, token, query=""):
    result = api.call("GET", EXPORT, token, query_string=query)
    assert result.status_code == 200, result.text
    assert result.headers["content-type"].startswith("application/yaml")
    return result.text


def exported(api, token, query=""):
    """The export as JSON documents."""
    return assert_envelope(api.call("GET", EXPORT, token, query_string=f"format=json&{query}"))


def names(documents):
    return [document["metadata"]["name"] for document in documents]


@pytest.fixture
def estate(api, user_token):
    """Alice's VMs: two from apply set `web` (one with snapshots and rules), one from `db`, one from REST, one
    being deleted."""
    apply(api, user_token,
          doc("web-2", {"tier": "web", "env": "prod"}, cpu_cores=2, snapshots=[{"name": "base", "description": "d"}],
              firewall=[SSH, DROP]),
          doc("web-1", {"tier": "web", "env": "dev"}), query="apply_set=web")
    apply(api, user_token, doc("db-1", {"tier": "db", "env": "prod"}), query="apply_set=db")
    rest = api.create_vm(user_token, name="rest-1", labels={"tier": "web"})
    create_snapshot(api, user_token, rest["id"], "manual", description="2024-01-01")
    create_rule(api, user_token, rest["id"], protocol="TCP", port=443, comment="on")
    gone = api.create_vm(user_token, name="gone")
    assert api.call("DELETE", f"/api/vms/{gone['id']}", user_token).status_code in (200, 202)


def test_export_defaults_to_yaml_documents_with_every_spec_field(api, user_token, estate):
    documents = list(yaml.safe_load_all(export_yaml(api, user_token)))
    assert names(documents) == ["db-1", "rest-1", "web-1", "web-2"]  # sorted; "gone" is being deleted
    web_2 = documents[-1]
    assert web_2 == {
        "apiVersion": "pvem/v1", "kind": "VirtualMachine",
        "metadata": {"name": "web-2", "labels": {"tier": "web", "env": "prod"}},
        "spec": {"node": "pve1", "cpu_cores": 2, "memory_mb": 512, "disk_gb": 10, "power_state": "stopped",
                 "disks": [], "tags": [], "start_on_boot": False, "agent": True,
                 "management": "enforce", "reboot_policy": "never",
                 "snapshots": [{"name": "base", "description": "d"}],
                 "firewall": [{**SSH, "enabled": True}, {**DROP, "enabled": True}]},
    }
    web_1 = documents[2]
    assert (web_1["spec"]["snapshots"], web_1["spec"]["firewall"]) == ([], [])  # always present, even empty


@pytest.mark.parametrize(("query", "headers"), [
    ("format=json", {}), ("format=JSON", {}), ("", {"Accept": "application/json"}),
    ("format=json", {"Accept": "application/yaml"}),
])
def test_export_as_json_is_an_envelope_around_the_same_documents(api, user_token, estate, query, headers):
    result = api.call("GET", EXPORT, user_token, query_string=query, headers=headers)
    data = assert_envelope(result)
    assert result.headers["content-type"].startswith("application/json")
    assert data == list(yaml.safe_load_all(export_yaml(api, user_token)))


@pytest.mark.parametrize(("query", "headers"), [
    ("", {"Accept": "application/yaml, application/json"}), ("", {"Accept": "*/*"}),
    ("format=yaml", {"Accept": "application/json"}),
])
def test_export_stays_yaml_unless_json_is_asked_for(api, user_token, estate, query, headers):
    result = api.call("GET", EXPORT, user_token, query_string=query, headers=headers)
    assert result.status_code == 200 and result.headers["content-type"].startswith("application/yaml")


@pytest.mark.parametrize(("query", "expected"), [
    ("apply_set=web", ["web-1", "web-2"]),
    ("apply_set=db", ["db-1"]),
    ("apply_set=none", []),
    ("label_selector=tier=web", ["rest-1", "web-1", "web-2"]),
    ("label_selector=tier=web,env=prod", ["web-2"]),
    ("label_selector=env=prod", ["db-1", "web-2"]),
    ("apply_set=web&label_selector=env=dev", ["web-1"]),
    ("name=rest-1", ["rest-1"]),
    ("name=gone", []),
])
def test_export_filters(api, user_token, estate, query, expected):
    assert names(exported(api, user_token, query)) == expected
    assert names(yaml.safe_load_all(export_yaml(api, user_token, query))) == expected


def test_export_holds_only_the_callers_own_vms(api, user_token, bob_token, admin_token, estate):
    api.create_vm(bob_token, name="bobs")
    assert names(exported(api, bob_token)) == ["bobs"]
    assert "bobs" not in names(exported(api, user_token))
    assert names(exported(api, admin_token)) == []  # an admin exports their own VMs, not everyone's


@pytest.mark.parametrize("as_json", [False, True], ids=["yaml", "json"])
def test_applying_an_export_changes_nothing(api, user_token, admin_token, estate, as_json):
    vm = vms(api, user_token)["rest-1"]
    api.call("PUT", f"/api/vms/{vm['id']}", user_token,
             json={"labels": {"on": "yes", "n": "123", "e": "", "f": "1.0", "d": "2024-01-01", "x.io/k": "0x1F"}})
    create_snapshot(api, user_token, vm["id"], "quirky", description="yes\nkey: value # not a comment")
    for comment in ("next\x85line", "line\u2028sep", "<<", "=", "1:30", "null", "bell\x07", "- [x]: y", "é😀"):
        create_rule(api, user_token, vm["id"], comment=comment)
    before = state(api, user_token, admin_token)
    if as_json:
        result = post(api, user_token, json.dumps(exported(api, user_token)), "application/json")
    else:
        result = post(api, user_token, export_yaml(api, user_token))
    data = assert_envelope(result)
    assert action_counts(data["summary"]) == {"create": 0, "update": 0, "delete": 0, "unchanged": 4}, data
    assert data["changed"] is False
    assert state(api, user_token, admin_token) == before


def test_an_export_of_an_apply_set_prunes_nothing_when_applied_back(api, user_token, estate):
    data = assert_envelope(post(api, user_token, export_yaml(api, user_token, "apply_set=web"),
                                query="apply_set=web&prune=true"))
    assert data["changed"] is False and [item["name"] for item in data["objects"]] == ["web-1", "web-2"]


def test_an_empty_export_is_an_empty_yaml_stream(api, user_token):
    assert list(yaml.safe_load_all(export_yaml(api, user_token))) == []
    assert exported(api, user_token) == []


@pytest.mark.parametrize("query", ["label_selector=tier", "label_selector=bad key=x", "label_selector=a=b!",
                                   "format=xml", "format=yml"])
def test_a_bad_export_parameter_is_400_naming_it(api, user_token, query):
    assert_names_field(api.call("GET", EXPORT, user_token, query_string=query), query.split("=", 1)[0])


def test_export_needs_authentication(api):
    assert_error(api.call("GET", EXPORT), 401)


# --- the VM list's filters, and labels through the REST API -------------------------------------------------


@pytest.mark.parametrize(("query", "expected"), [
    ("name=web-1", {"web-1"}),
    ("name=nope", set()),
    ("label_selector=tier=web", {"web-1", "web-2", "rest-1"}),
    ("label_selector=tier=web,env=prod", {"web-2"}),
    ("label_selector= tier = web , env = dev ", {"web-1"}),
    ("label_selector=", {"web-1", "web-2", "db-1", "rest-1", "gone"}),
    ("name=web-2&label_selector=env=prod", {"web-2"}),
    ("name=web-2&label_selector=env=dev", set()),
])
def test_the_vm_list_filters_by_name_and_labels(api, user_token, estate, query, expected):
    assert set(vms(api, user_token, query)) == expected


def test_the_vm_list_filters_only_the_callers_vms(api, user_token, bob_token, estate):
    api.create_vm(bob_token, name="web-1", labels={"tier": "web"})
    assert [vm["name"] for vm in vms(api, bob_token, "label_selector=tier=web").values()] == ["web-1"]
    assert len(vms(api, user_token, "name=web-1")) == 1


@pytest.mark.parametrize("selector", ["tier", "=web", "tier=we b", "ti er=web", "tier=web,env"])
def test_a_bad_label_selector_on_the_vm_list_is_400(api, user_token, selector):
    assert_names_field(api.call("GET", "/api/vms", user_token, query_string=f"label_selector={selector}"),
                       "label_selector")


def test_labels_on_rest_create_and_update(api, user_token):
    vm = api.create_vm(user_token, labels={"tier": "web", "example.com/team": "a_b.c-d"})
    assert (vm["labels"], vm["apply_set"]) == ({"tier": "web", "example.com/team": "a_b.c-d"}, None)
    assert api.create_vm(user_token, name="no-labels")["labels"] == {}
    data = assert_envelope(api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={"labels": {"tier": "db"}}))
    assert data["labels"] == {"tier": "db"}
    assert data["generation"] == vm["generation"]  # labels are pvem's own: nothing for Proxmox to converge
    assert get_vm(api, user_token, vm["id"])["labels"] == {"tier": "db"}
    data = assert_envelope(api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={"labels": {}, "cpu_cores": 3}))
    assert (data["labels"], data["generation"]) == ({}, vm["generation"] + 1)


@pytest.mark.parametrize("labels", [{"bad key": "v"}, {"k": "bad value"}, {"k": "-v"}, {"k": 1}, {"": "v"},
                                    {"k" * 64: "v"}, {f"k{i}": "v" for i in range(65)}, ["k"], None])
def test_bad_labels_on_rest_create_and_update_are_400(api, user_token, labels):
    assert_error(api.call("POST", "/api/vms", user_token, json={"name": "x", "labels": labels}), 400)
    vm = api.create_vm(user_token, labels={"keep": "me"})
    assert_error(api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={"labels": labels}), 400)
    assert get_vm(api, user_token, vm["id"])["labels"] == {"keep": "me"}


def test_empty_export_query_values_behave_as_absent(api, user_token, estate):
    full = api.call("GET", EXPORT, user_token)
    empty = api.call("GET", EXPORT, user_token, query_string="format=&apply_set=&label_selector=&name=")
    assert empty.status_code == 200 and empty.text == full.text and empty.text.strip()
    as_json = api.call("GET", EXPORT, user_token, query_string="format=json&apply_set=&label_selector=")
    assert len(as_json.json["data"]) == len(list(yaml.safe_load_all(full.text)))


def test_an_export_matching_nothing_is_not_an_empty_body(api, user_token):
    result = api.call("GET", EXPORT, user_token, query_string="apply_set=nothing-here")
    assert result.status_code == 200 and result.text.strip()
    assert list(yaml.safe_load_all(result.text)) == []
