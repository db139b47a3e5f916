"""Firewall rules Proxmox could not apply are refused up front (400 naming the field): a port needs
tcp or udp, and a rule's source and destination are one address family. Updates are checked merged
with the stored rule; manifests get the same checks."""

from __future__ import annotations

import pytest

from tests.api.helpers import assert_envelope, assert_error, assert_names_field, create_rule
from tests.api.manifest_helpers import doc, post_yaml, vms


def rules_url(vm_id: str) -> str:
    return f"/api/vms/{vm_id}/firewall"


def listed(api, token, vm_id):
    return assert_envelope(api.call("GET", rules_url(vm_id), token))


BASE = {"direction": "inbound", "action": "accept"}


@pytest.mark.parametrize(("body", "field"), [
    ({"port": 22}, "port"),
    ({"protocol": "icmp", "port": 22}, "port"),
    ({"protocol": "ICMP", "port": 8}, "port"),
    ({"protocol": "tcp", "source": "2001:db8::/32", "destination": "10.0.0.1"}, "destination"),
    ({"source": "10.0.0.0/8", "destination": "fe80::1"}, "destination"),
])
def test_rules_proxmox_cannot_apply_are_400_and_not_stored(api, user_token, vm, body, field):
    result = api.call("POST", rules_url(vm["id"]), user_token, json={**BASE, **body})
    assert_names_field(result, field)
    assert listed(api, user_token, vm["id"]) == []


@pytest.mark.parametrize("body", [
    {"protocol": "tcp", "port": 22}, {"protocol": "UDP", "port": 53}, {"protocol": "icmp"},
    {"source": "10.0.0.0/8", "destination": "192.168.0.1"}, {"source": "2001:db8::/32", "destination": "::1"},
    {"source": "2001:db8::/32"}, {"destination": "10.0.0.1"},
])
def test_rules_proxmox_can_apply_are_accepted(api, user_token, vm, body):
    rule = create_rule(api, user_token, vm["id"], **{"protocol": None, "port": None, "source": None, **body})
    assert {key: rule[key] for key in body} == body


@pytest.mark.parametrize(("update", "field"), [
    ({"protocol": "icmp"}, "protocol"),
    ({"protocol": None}, "protocol"),
    ({"destination": "2001:db8::1"}, "destination"),
    ({"source": "2001:db8::/32"}, "source"),
])
def test_an_update_is_checked_merged_with_the_stored_rule(api, user_token, vm, update, field):
    rule = create_rule(api, user_token, vm["id"], protocol="tcp", port=22, source="10.0.0.0/8",
                       destination="10.0.0.5")
    result = api.call("PUT", f"/api/firewall/{rule['id']}", user_token, json=update)
    assert_names_field(result, field)
    assert listed(api, user_token, vm["id"])[0] == rule


def test_a_port_added_to_a_rule_without_protocol_is_400(api, user_token, vm):
    rule = create_rule(api, user_token, vm["id"], protocol=None, port=None)
    assert_names_field(api.call("PUT", f"/api/firewall/{rule['id']}", user_token, json={"port": 80}), "port")
    changed = assert_envelope(api.call("PUT", f"/api/firewall/{rule['id']}", user_token,
                                       json={"protocol": "tcp", "port": 80}))
    assert (changed["protocol"], changed["port"]) == ("tcp", 80)


def test_manifest_rules_get_the_same_checks(api, user_token):
    bad = doc("fw-1", node="pve1", firewall=[{"direction": "inbound", "action": "accept", "port": 22}])
    body = assert_error(post_yaml(api, user_token, bad), 400)
    assert "port" in body["error"] and "tcp or udp" in body["error"]
    mixed = doc("fw-1", node="pve1", firewall=[{"direction": "inbound", "action": "accept",
                                                "source": "::1", "destination": "10.0.0.1"}])
    body = assert_error(post_yaml(api, user_token, mixed), 400)
    assert "destination" in body["error"]
    assert vms(api, user_token) == {}
