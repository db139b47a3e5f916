"""The guest fields through the REST API and manifests (issue 7): validation, merges, the fixed template,
the template inventory, and the write-only cloud-init password (never in answers, audit, export or logs)."""

from __future__ import annotations

import json
import logging

import pytest

from controller.store.models import ClusterTemplate, VirtualMachine, utcnow
from tests.api.helpers import assert_error

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHb0F9mDQmWZsY5Y1vQ9J2dFJ0M4tqM2sLr9n3w2X4a1 ops@example"
SECRET = "Very-Secret-Pa55"
YAML = {"Content-Type": "application/yaml"}


def inventory(store, *templates: tuple[int, str, int]) -> None:
    with store.write() as session:
        for vmid, name, disk_gb in templates:
            session.add(ClusterTemplate(vmid=vmid, name=name, node="pve1", disk_gb=disk_gb, has_cloud_init=True,
                                        seen_at=utcnow()))


def create(api, token, **fields):
    return api.call("POST", "/api/vms", token, json={"name": "web-1", "node": "pve1", **fields})


FULL = {"template": "ubuntu-24.04", "clone_mode": "linked", "disk_gb": 20,
        "cloud_init": {"user": "ops", "password": SECRET, "ssh_keys": [KEY],
                       "ip_config": [{"ipv4": "192.0.2.21/24", "gateway4": "192.0.2.1"}, {"ipv4": "dhcp",
                                                                                         "ipv6": "auto"}],
                       "nameservers": ["192.0.2.53"], "search_domain": "lab.example"},
        "disks": [{"size_gb": 50}, {"size_gb": 10, "storage": "fast"}],
        "networks": [{"bridge": "vmbr0"}, {"bridge": "vmbr1", "model": "e1000", "vlan": 30, "firewall": False,
                                           "mac": "bc:24:11:12:34:56"}],
        "tags": ["Web", "prod", "web", "pvem"], "pool": "team-a", "start_on_boot": True, "agent": False,
        "description": "my notes"}


def test_every_guest_field_is_accepted_stored_and_answered_without_the_password(api, user_token, store):
    inventory(store, (9100, "ubuntu-24.04", 4))
    result = create(api, user_token, **FULL)
    assert result.status_code == 201, result.text
    vm = result.json["data"]
    assert vm["template"] == "ubuntu-24.04" and vm["clone_mode"] == "linked"
    assert vm["cloud_init"] == {**{k: v for k, v in FULL["cloud_init"].items() if k != "password"},
                                "password_set": True}
    assert vm["disks"] == [{"size_gb": 50}, {"size_gb": 10, "storage": "fast"}]
    assert vm["networks"][1] == {"bridge": "vmbr1", "model": "e1000", "vlan": 30, "firewall": False,
                                 "mac": "BC:24:11:12:34:56"}
    assert vm["networks"][0] == {"bridge": "vmbr0", "model": "virtio", "vlan": None, "firewall": True, "mac": None}
    assert vm["tags"] == ["prod", "web"]  # a case-insensitive set; pvem's own tag is implied
    assert (vm["pool"], vm["start_on_boot"], vm["agent"], vm["description"]) == ("team-a", True, False, "my notes")
    assert vm["ip_addresses"] == []
    assert SECRET not in result.text
    listing = api.call("GET", "/api/vms", user_token)
    one = api.call("GET", f"/api/vms/{vm['id']}", user_token)
    assert SECRET not in listing.text and SECRET not in one.text


def test_defaults_without_guest_fields(api, user_token):
    vm = create(api, user_token).json["data"]
    assert (vm["template"], vm["clone_mode"], vm["cloud_init"], vm["disks"], vm["networks"], vm["tags"],
            vm["pool"], vm["start_on_boot"], vm["agent"], vm["description"]) == (
        None, None, None, [], None, [], None, False, True, None)


def test_the_password_stays_out_of_audit_export_plans_and_logs(api, user_token, admin_token, store, caplog,
                                                                capfd):
    caplog.set_level(logging.DEBUG)
    vm = create(api, user_token, template=9100, cloud_init={"user": "ops", "password": SECRET}).json["data"]
    update = api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={"cloud_init": {"password": "Other-Secret-1"}})
    assert update.status_code == 200 and update.json["data"]["cloud_init"]["password_set"] is True
    manifest = (f"apiVersion: pvem/v1\nkind: VirtualMachine\nmetadata: {{name: m-1}}\nspec: {{node: pve1, "
                f"template: 9100, cloud_init: {{user: ops, password: {SECRET}}}}}\n")
    planned = api.call("POST", "/api/manifests?dry_run=true", user_token, body=manifest, headers=YAML)
    applied = api.call("POST", "/api/manifests", user_token, body=manifest, headers=YAML)
    assert planned.status_code == applied.status_code == 200, applied.text
    exported = api.call("GET", "/api/manifests/export", user_token)
    audit = api.call("GET", "/api/audit-logs", admin_token)
    out, err = capfd.readouterr()
    assert "/api/manifests" in out + err + caplog.text  # the request log was captured
    for text in (planned.text, applied.text, exported.text, audit.text, caplog.text, out, err):
        assert SECRET not in text and "Other-Secret-1" not in text
    with store.read() as session:
        rows = session.query(VirtualMachine).all()
        assert {row.cloud_init_password for row in rows} == {"Other-Secret-1", SECRET}  # kept only to send it
    changes = [entry["details"]["changes"] for entry in audit.json["data"] if entry["action"] == "update_vm"]
    assert changes[0]["cloud_init"]["password_changed"] is True


def test_a_partial_cloud_init_merges_and_null_clears_a_key(api, user_token):
    vm = create(api, user_token, cloud_init={"user": "ops", "ssh_keys": [KEY], "search_domain": "a.example",
                                             "password": SECRET}).json["data"]
    result = api.call("PUT", f"/api/vms/{vm['id']}", user_token,
                      json={"cloud_init": {"user": "admin", "search_domain": None}})
    assert result.json["data"]["cloud_init"] == {"user": "admin", "ssh_keys": [KEY], "password_set": True}
    cleared = api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={"cloud_init": {"password": None}})
    assert cleared.json["data"]["cloud_init"]["password_set"] is False


def test_changing_the_template_or_clone_mode_later_is_a_409(api, user_token):
    vm = create(api, user_token, template="ubuntu-24.04").json["data"]
    for body in ({"template": "debian-13"}, {"clone_mode": "linked"}, {"template": None}):
        result = api.call("PUT", f"/api/vms/{vm['id']}", user_token, json=body)
        assert "fixed at creation" in assert_error(result, 409)["error"]
    same = api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={"template": "ubuntu-24.04", "clone_mode": "full"})
    assert same.status_code == 200 and same.json["data"]["generation"] == vm["generation"]


def test_an_unknown_template_is_a_400_naming_it_once_the_inventory_is_known(api, user_token, store):
    accepted = create(api, user_token, name="early", template="centos-9")  # no inventory yet: the controller decides
    assert accepted.status_code == 201
    inventory(store, (9100, "ubuntu-24.04", 4))
    body = assert_error(create(api, user_token, template="centos-9"), 400)
    assert body["field"] == "template" and "centos-9" in body["error"] and "ubuntu-24.04" in body["error"]
    assert body["details"][0]["field"] == "template"
    assert create(api, user_token, template=9100).status_code == 201


def test_a_disk_smaller_than_the_template_is_a_400_naming_both_sizes(api, user_token, store):
    inventory(store, (9100, "ubuntu-24.04", 32))
    body = assert_error(create(api, user_token, template="ubuntu-24.04", disk_gb=20), 400)
    assert body["field"] == "disk_gb" and "20 GB" in body["error"] and "32 GB" in body["error"]
    vm = create(api, user_token, template="ubuntu-24.04").json["data"]
    assert vm["disk_gb"] == 32  # left out: the template's size


def test_extra_disks_only_grow(api, user_token):
    vm = create(api, user_token, disks=[{"size_gb": 20}, {"size_gb": 30}]).json["data"]
    body = assert_error(api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={"disks": [{"size_gb": 10}]}), 400)
    assert body["field"] == "disks[0].size_gb" and "20 GB" in body["error"]
    removed = api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={"disks": [{"size_gb": 25}]})
    assert removed.status_code == 200 and removed.json["data"]["disks"] == [{"size_gb": 25}]


@pytest.mark.parametrize(("fields", "where"), [
    ({"cloud_init": {"ssh_keys": ["not a key"]}}, "cloud_init.ssh_keys"),
    ({"cloud_init": {"ip_config": [{"ipv4": "192.0.2.1"}]}}, "cloud_init.ip_config.0.ipv4"),
    ({"cloud_init": {"ip_config": [{"ipv6": "dhcp6"}]}}, "cloud_init.ip_config.0.ipv6"),
    ({"cloud_init": {"ip_config": [{"gateway4": "2001:db8::1"}]}}, "cloud_init.ip_config.0.gateway4"),
    ({"cloud_init": {"nameservers": ["dns.example"]}}, "cloud_init.nameservers"),
    ({"cloud_init": {"colour": "blue"}}, "cloud_init.colour"),
    ({"tags": ["-bad"]}, "tags"), ({"tags": ["a b"]}, "tags"),
    ({"networks": [{"vlan": 4095}]}, "networks.0.vlan"), ({"networks": [{"vlan": 0}]}, "networks.0.vlan"),
    ({"networks": [{"model": "ne2k"}]}, "networks.0.model"), ({"networks": [{"mac": "zz:24:11:12:34:56"}]},
                                                             "networks.0.mac"),
    ({"networks": [{"mac": "01:24:11:12:34:56"}]}, "networks.0.mac"),
    ({"disks": [{"size_gb": 0}]}, "disks.0.size_gb"), ({"disks": [{"size_gb": "10"}]}, "disks.0.size_gb"),
    ({"clone_mode": "thin"}, "clone_mode"), ({"pool": "a b"}, "pool"), ({"agent": "yes"}, "agent"),
    ({"start_on_boot": 1}, "start_on_boot"), ({"template": 5}, "template"),
])
def test_bad_guest_fields_are_400s_naming_the_field(api, user_token, fields, where):
    body = assert_error(create(api, user_token, **fields), 400)
    assert where in json.dumps(body), body


def test_get_templates_reads_the_inventory(api, user_token, store):
    assert api.call("GET", "/api/templates", user_token).json["data"] == []
    inventory(store, (9101, "debian-13", 3), (9100, "ubuntu-24.04", 4))
    data = api.call("GET", "/api/templates", user_token).json["data"]
    assert data == [{"vmid": 9101, "name": "debian-13", "node": "pve1", "disk_gb": 3, "has_cloud_init": True},
                    {"vmid": 9100, "name": "ubuntu-24.04", "node": "pve1", "disk_gb": 4, "has_cloud_init": True}]
    assert api.call("GET", "/api/templates").status_code == 401


def test_the_guest_fields_are_in_the_openapi_document(api):
    document = api.call("GET", "/api/openapi.json").json
    text = json.dumps(document)
    for name in ("cloud_init", "clone_mode", "ssh_keys", "ip_config", "networks", "start_on_boot", "ip_addresses",
                 "password_set", "/api/templates"):
        assert name in text, name


def test_a_manifest_with_guest_fields_exports_and_reapplies_as_no_change(api, user_token):
    manifest = f"""
apiVersion: pvem/v1
kind: VirtualMachine
metadata: {{name: app-1}}
spec:
  node: pve1
  template: ubuntu-24.04
  tags: [Web, app]
  disks: [{{size_gb: 5}}]
  networks: [{{bridge: vmbr0}}, {{bridge: vmbr0, vlan: 30}}]
  cloud_init: {{user: ops, password: {SECRET}, ssh_keys: ["{KEY}"], ip_config: [{{ipv4: dhcp}}]}}
"""
    assert api.call("POST", "/api/manifests", user_token, body=manifest, headers=YAML).status_code == 200
    again = api.call("POST", "/api/manifests", user_token, body=manifest, headers=YAML)
    assert again.json["data"]["changed"] is False
    exported = api.call("GET", "/api/manifests/export", user_token).text
    assert SECRET not in exported and "password" not in exported
    reapplied = api.call("POST", "/api/manifests", user_token, body=exported, headers=YAML)
    assert reapplied.json["data"]["changed"] is False, reapplied.text
    reordered = manifest.replace("[Web, app]", "[app, WEB]")
    assert api.call("POST", "/api/manifests", user_token, body=reordered, headers=YAML).json["data"]["changed"] is False
    changed = manifest.replace("user: ops", "user: admin")
    result = api.call("POST", "/api/manifests", user_token, body=changed, headers=YAML).json["data"]
    fields = [change["field"] for obj in result["objects"] for change in obj["changes"]]
    assert fields == ["spec.cloud_init"]


def test_a_manifest_changing_the_template_is_a_409(api, user_token):
    base = "apiVersion: pvem/v1\nkind: VirtualMachine\nmetadata: {name: app-1}\nspec: {node: pve1, template: a}\n"
    assert api.call("POST", "/api/manifests", user_token, body=base, headers=YAML).status_code == 200
    result = api.call("POST", "/api/manifests", user_token, body=base.replace("template: a", "template: b"),
                      headers=YAML)
    assert "fixed at creation" in assert_error(result, 409)["error"]


def test_a_manifest_naming_an_unknown_template_is_a_400_for_that_document(api, user_token, store):
    inventory(store, (9100, "ubuntu-24.04", 4))
    text = ("apiVersion: pvem/v1\nkind: VirtualMachine\nmetadata: {name: ok-1}\nspec: {node: pve1, template: 9100}\n"
            "---\napiVersion: pvem/v1\nkind: VirtualMachine\nmetadata: {name: bad-1}\n"
            "spec: {node: pve1, template: centos-9}\n")
    body = assert_error(api.call("POST", "/api/manifests", user_token, body=text, headers=YAML), 400)
    assert body["document"] == 1 and body["field"] == "spec.template" and "centos-9" in body["error"]
    assert api.call("GET", "/api/vms", user_token).json["data"] == []  # nothing applied
