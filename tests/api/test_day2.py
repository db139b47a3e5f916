"""Day-2 API: cluster listing and import (through the controller's importer, against fakepve), /api/version,
impacts and apply-set adoption in manifest plans, the plan-time node check, and the 429 wording."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import falcon.testing
import pytest

from controller import cluster
from controller.importer import Importer
from controller.proxmox.client import ProxmoxClient
from controller.store.models import VirtualMachine
from tests.api.manifest_helpers import apply, doc, post_yaml
from tests.conftest import Api


@pytest.fixture
def cluster_api(fakepve: Any, fakepve_cafile: str, settings_factory: Any, app_factory: Any, api: Api,
                store: Any) -> Iterator[Api]:
    settings = settings_factory(proxmox={"host": fakepve.host, "port": fakepve.port, "user": "root@pam",
                                         "password": "secret", "ca_file": fakepve_cafile, "timeout_seconds": 5})
    fakepve.add_vm(9001, "legacy-db", node="pve1", status="running",
                   config={"cores": 2, "memory": "4096", "tags": "legacy", "description": "kept"})
    fakepve.add_vm(9100, "golden", node="pve1", template=True)
    client = ProxmoxClient(settings.proxmox)
    yield Api(falcon.testing.TestClient(app_factory(settings, importer=Importer(client, store))))
    client.close()


def test_admins_list_the_cluster_and_import_a_vm(cluster_api, admin_token, fakepve):
    result = cluster_api.call("GET", "/api/cluster/vms", admin_token)
    assert result.status_code == 200, result.text
    listed = {vm["vmid"]: vm for vm in result.json["data"]}
    assert listed[9001] == {"vmid": 9001, "name": "legacy-db", "node": "pve1", "status": "running",
                            "template": False, "managed": False, "vm_id": None}
    assert listed[9100]["template"] is True

    result = cluster_api.call("POST", "/api/vms/import", admin_token, json={"vmid": 9001})
    assert result.status_code == 201, result.text
    vm = result.json["data"]
    assert (vm["name"], vm["vmid"], vm["cpu_cores"], vm["memory_mb"], vm["power_state"], vm["management"]) == (
        "legacy-db", 9001, 2, 4096, "running", "enforce")
    assert fakepve.vm(9001).config["description"].startswith("kept")
    listed = {item["vmid"]: item for item in cluster_api.call("GET", "/api/cluster/vms", admin_token).json["data"]}
    assert listed[9001]["managed"] is True and listed[9001]["vm_id"] == vm["id"]
    audit = cluster_api.call("GET", "/api/audit-logs", admin_token, query_string="action=import_vm").json["data"]
    assert [record["resource_id"] for record in audit] == [vm["id"]]

    again = cluster_api.call("POST", "/api/vms/import", admin_token, json={"vmid": 9001})
    assert again.status_code == 409 and again.json["code"] == 409
    assert cluster_api.call("POST", "/api/vms/import", admin_token, json={"vmid": 4242}).status_code == 404
    template = cluster_api.call("POST", "/api/vms/import", admin_token, json={"vmid": 9100})
    assert template.status_code == 400 and "template" in template.json["error"]
    bad = cluster_api.call("POST", "/api/vms/import", admin_token, json={"vmid": "x"})
    assert bad.status_code == 400 and bad.json["field"] == "vmid"


def test_users_may_neither_list_the_cluster_nor_import(cluster_api, user_token):
    assert cluster_api.call("GET", "/api/cluster/vms", user_token).status_code == 403
    result = cluster_api.call("POST", "/api/vms/import", user_token, json={"vmid": 9001})
    assert result.status_code == 403 and result.json["code"] == 403


def test_without_proxmox_the_cluster_endpoints_answer_503(api, admin_token):
    for method, path, body in (("GET", "/api/cluster/vms", None), ("POST", "/api/vms/import", {"vmid": 9001})):
        result = api.call(method, path, admin_token, json=body)
        assert result.status_code == 503 and "proxmox.host" in result.json["error"]


def test_version_is_public(api):
    result = api.call("GET", "/api/version")
    assert result.status_code == 200 and result.json["data"]["version"]


def mark_running(store: Any, name: str, status: str = "running", **observed: Any) -> None:
    """As the reconciler records an observation (tests here run no reconciler)."""
    with store.write() as session:
        for vm in session.query(VirtualMachine).filter(VirtualMachine.name == name):
            vm.status, vm.observed = status, {"status": status, **observed}


def test_every_change_carries_its_impact_and_the_summary_counts_objects_per_impact(api, user_token, store):
    apply(api, user_token, doc("web-1", cpu_cores=2, power_state="running"), doc("web-2"), doc("web-3"),
          doc("gone"), query="apply_set=web")
    mark_running(store, "web-1")
    mark_running(store, "web-3", hotplug="network,disk,cpu,memory")
    mark_running(store, "gone")
    mark_running(store, "web-2", status="stopped")
    result = post_yaml(api, user_token, doc("web-1", {"tier": "web"}, cpu_cores=4, power_state="running"),
                       doc("web-2", memory_mb=1024), doc("web-3", cpu_cores=4), doc("new"),
                       query="apply_set=web&prune=true&dry_run=true")
    data = result.json["data"]
    objects = {item["name"]: item for item in data["objects"]}
    assert {change["field"]: change["impact"] for change in objects["web-1"]["changes"]} == {
        "metadata.labels": "none", "spec.cpu_cores": "reboot"}
    assert objects["web-1"]["impact"] == "reboot"
    assert objects["web-2"]["impact"] == "live"  # a stopped VM takes any change live
    assert objects["web-3"]["impact"] == "live"  # cores are hotplugged
    assert objects["gone"]["impact"] == "destructive" and objects["new"]["impact"] == "none"
    assert {key: data["summary"][key] for key in ("none", "live", "reboot", "stop", "destructive")} == {
        "none": 1, "live": 2, "reboot": 1, "stop": 0, "destructive": 1}

    result = post_yaml(api, user_token, doc("web-1", power_state="stopped"), query="dry_run=true")
    [item] = result.json["data"]["objects"]
    assert item["impact"] == "stop"


def test_an_apply_set_over_vms_outside_it_warns_and_adopt_makes_them_members(api, user_token):
    apply(api, user_token, doc("web-1"))
    data = apply(api, user_token, doc("web-1"), query="apply_set=web-tier")
    assert data["warnings"] == ["web-1 exists outside apply set web-tier: --adopt makes it a member"]
    data = apply(api, user_token, doc("web-1"), query="apply_set=web-tier&adopt=true")
    assert data["warnings"] == [] and data["objects"][0]["action"] == "update"
    vm = api.call("GET", "/api/vms", user_token, query_string="name=web-1").json["data"][0]
    assert vm["apply_set"] == "web-tier"
    data = apply(api, user_token, doc("web-2"), query="apply_set=web-tier&prune=true")  # now prune sees it
    assert [(item["name"], item["action"]) for item in data["objects"]] == [("web-2", "create"), ("web-1", "delete")]


def test_an_unknown_node_is_refused_at_plan_time_naming_the_known_nodes(api, user_token, store):
    result = post_yaml(api, user_token, doc("web-1", node="pve9"), query="dry_run=true")
    assert result.status_code == 200  # the cluster's nodes are not known yet: accepted
    with store.write() as session:
        cluster.record_nodes(session, [{"node": "pve1", "status": "online"}, {"node": "pve2"}])
    result = post_yaml(api, user_token, doc("web-1", node="pve9"), query="dry_run=true")
    assert result.status_code == 400
    assert result.json["error"] == ("document 0 (web-1): spec.node: node 'pve9' is not in the Proxmox cluster "
                                    "(nodes: pve1, pve2)")
    created = api.call("POST", "/api/vms", user_token, json={"name": "x", "node": "pve9"})
    assert created.status_code == 400 and created.json["field"] == "node" and "pve1, pve2" in created.json["error"]


def test_observe_mode_reboot_policy_and_schedule_are_spec_fields(api, user_token):
    vm = api.create_vm(user_token, management="observe", reboot_policy="auto",
                       snapshot_schedule={"every": "6h", "keep": 4})
    assert (vm["management"], vm["reboot_policy"], vm["drift"]) == ("observe", "auto", [])
    assert vm["snapshot_schedule"] == {"every": "6h", "keep": 4, "prefix": "auto"}
    plain = api.create_vm(user_token, name="vm-2")
    assert (plain["management"], plain["reboot_policy"], plain["snapshot_schedule"]) == ("enforce", "never", None)
    for body, field in (({"snapshot_schedule": {"every": "30s", "keep": 1}}, "snapshot_schedule.every"),
                        ({"snapshot_schedule": {"every": "1h", "keep": 0}}, "snapshot_schedule.keep"),
                        ({"management": "watch"}, "management"), ({"reboot_policy": "sometimes"}, "reboot_policy")):
        result = api.call("PUT", f"/api/vms/{plain['id']}", user_token, json=body)
        assert result.status_code == 400 and result.json["field"] == field, result.text
    result = api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={"snapshot_schedule": None})
    assert result.status_code == 200 and result.json["data"]["snapshot_schedule"] is None


def test_in_observe_mode_a_plan_promises_no_impact(api, user_token, store):
    apply(api, user_token, doc("web-1", power_state="running", management="observe"))
    mark_running(store, "web-1")
    [item] = apply(api, user_token, doc("web-1", power_state="stopped", cpu_cores=4))["objects"]
    assert item["impact"] == "none" and {change["impact"] for change in item["changes"]} == {"none"}


def test_back_to_enforce_carries_the_impact_of_correcting_the_drift(api, user_token, store):
    apply(api, user_token, doc("web-1", power_state="stopped", management="observe"))
    with store.write() as session:
        vm = session.query(VirtualMachine).filter(VirtualMachine.name == "web-1").one()
        vm.status, vm.observed = "running", {"status": "running"}
        vm.drift = [{"field": "power_state", "desired": "stopped", "observed": "running"}]
    [item] = apply(api, user_token, doc("web-1", management="enforce"), query="dry_run=true")["objects"]
    assert item["impact"] == "stop"
