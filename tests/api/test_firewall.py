"""Firewall rules: fields, validation, protocol case, ordering by position, updates and deletion."""

from __future__ import annotations

import pytest

from tests.api.helpers import (
    RULE_ADDED_FIELDS,
    RULE_BODY,
    RULE_SEED_FIELDS,
    assert_envelope,
    assert_error,
    assert_names_field,
    assert_timestamp,
    assert_uuid,
    create_rule,
    get_vm,
)

BAD_VALUES = [
    ("direction", "in"),
    ("direction", "both"),
    ("direction", ""),
    ("direction", None),
    ("direction", 1),
    ("action", "allow"),
    ("action", "deny"),
    ("action", ""),
    ("action", None),
    ("protocol", "http"),
    ("protocol", "tcp6"),
    ("protocol", ""),
    ("protocol", 6),
    ("port", 0),
    ("port", 65536),
    ("port", -1),
    ("port", "80"),
    ("port", 80.5),
    ("port", True),
    ("source", "10.0.0.300"),
    ("source", "abc"),
    ("source", "10.0.0.0/33"),
    ("source", "2001:db8::/129"),
    ("source", "10.0.0"),
    ("source", ""),
    ("source", 10),
    ("destination", "10.0.0.300"),
    ("destination", "abc"),
    ("destination", "example.com"),
    ("destination", "::g"),
    ("enabled", "yes"),
    ("enabled", 1),
    ("enabled", None),
    ("comment", 5),
    ("position", -1),
    ("position", "0"),
    ("color", "red"),
]

GOOD_VALUES = [
    ("direction", "inbound"),
    ("direction", "outbound"),
    ("action", "accept"),
    ("action", "drop"),
    ("action", "reject"),
    ("protocol", "tcp"),
    ("protocol", "TCP"),
    ("protocol", "Udp"),
    ("protocol", "udp"),
    ("protocol", "ICMP"),
    ("protocol", None),
    ("port", 1),
    ("port", 65535),
    ("port", None),
    ("source", "0.0.0.0/0"),
    ("source", "10.0.0.1"),
    ("source", "192.168.1.0/24"),
    ("source", "::1"),
    ("source", "2001:db8::/32"),
    ("source", "fe80::1"),
    ("source", None),
    ("destination", "10.1.2.3"),
    ("destination", "2001:db8::1"),
    ("destination", "172.16.0.0/12"),
    ("destination", None),
    ("enabled", False),
    ("enabled", True),
    ("comment", "ssh from anywhere"),
    ("comment", None),
]


def rules_url(vm_id):
    return f"/api/vms/{vm_id}/firewall"


def list_rules(api, token, vm_id):
    return assert_envelope(api.call("GET", rules_url(vm_id), token))


def order(api, token, vm_id):
    return [(rule["id"], rule["position"]) for rule in list_rules(api, token, vm_id)]


def test_create_answers_201_with_the_rule(api, user_token, vm):
    result = api.call("POST", rules_url(vm["id"]), user_token, json=RULE_BODY)
    rule = assert_envelope(result, 201)
    assert set(rule) >= RULE_SEED_FIELDS | RULE_ADDED_FIELDS, rule
    assert_uuid(rule["id"])
    assert rule["vm_id"] == vm["id"]
    assert (rule["direction"], rule["action"], rule["protocol"], rule["port"], rule["source"]) == (
        "inbound", "accept", "TCP", 22, "0.0.0.0/0")
    assert rule["destination"] is None
    assert rule["enabled"] is True
    assert rule["comment"] is None
    assert rule["position"] == 0
    assert_timestamp(rule["created_at"])


def test_minimal_rule_defaults(api, user_token, vm):
    rule = assert_envelope(api.call("POST", rules_url(vm["id"]), user_token,
                                    json={"direction": "outbound", "action": "drop"}), 201)
    assert rule["enabled"] is True
    assert rule["protocol"] is None and rule["port"] is None
    assert rule["source"] is None and rule["destination"] is None


@pytest.mark.parametrize("missing", ["direction", "action"])
def test_rule_without_direction_or_action_is_400(api, user_token, vm, missing):
    body = {key: value for key, value in RULE_BODY.items() if key != missing}
    assert_names_field(api.call("POST", rules_url(vm["id"]), user_token, json=body), missing)


@pytest.mark.parametrize(("field", "value"), BAD_VALUES)
def test_create_with_invalid_value_is_400_naming_it(api, user_token, vm, field, value):
    result = api.call("POST", rules_url(vm["id"]), user_token, json={**RULE_BODY, field: value})
    assert_names_field(result, field)
    assert list_rules(api, user_token, vm["id"]) == []


@pytest.mark.parametrize(("field", "value"), GOOD_VALUES)
def test_create_with_valid_value_stores_it_as_given(api, user_token, vm, field, value):
    # Keep the rest of the rule one Proxmox can apply: no port without tcp/udp, one address family.
    companions = {"protocol": {"port": None}, "destination": {"source": None}, "source": {"destination": None}}
    extra = companions.get(field, {}) if (field, value) not in (("protocol", "TCP"), ("protocol", "udp")) else {}
    rule = create_rule(api, user_token, vm["id"], **{**extra, field: value})
    assert rule[field] == value
    assert list_rules(api, user_token, vm["id"])[0][field] == value


BAD_UPDATES = [
    ("direction", "in"), ("direction", None), ("action", "allow"), ("action", None), ("protocol", "http"),
    ("port", 0), ("port", 65536), ("port", "80"), ("source", "10.0.0.300"), ("source", "abc"),
    ("destination", "abc"), ("destination", "10.0.0.0/33"), ("enabled", "yes"), ("enabled", None),
    ("position", -1), ("color", "red"),
]


@pytest.mark.parametrize(("field", "value"), BAD_UPDATES)
def test_update_with_invalid_value_is_400_naming_it(api, user_token, vm, field, value):
    rule = create_rule(api, user_token, vm["id"])
    result = api.call("PUT", f"/api/firewall/{rule['id']}", user_token, json={field: value})
    assert_names_field(result, field)
    assert list_rules(api, user_token, vm["id"])[0] == rule


def test_list_answers_rules_in_order(api, user_token, vm):
    rules = [create_rule(api, user_token, vm["id"], port=port) for port in (22, 80, 443)]
    listed = list_rules(api, user_token, vm["id"])
    assert [rule["id"] for rule in listed] == [rule["id"] for rule in rules]
    assert all(set(rule) >= RULE_SEED_FIELDS | RULE_ADDED_FIELDS for rule in listed)


def test_creates_append_positions_0_1_2(api, user_token, vm):
    rules = [create_rule(api, user_token, vm["id"], port=port) for port in (22, 80, 443)]
    assert [rule["position"] for rule in rules] == [0, 1, 2]
    assert order(api, user_token, vm["id"]) == [(rule["id"], index) for index, rule in enumerate(rules)]


def test_update_answers_200_with_the_updated_rule(api, user_token, vm):
    rule = create_rule(api, user_token, vm["id"])
    result = api.call("PUT", f"/api/firewall/{rule['id']}", user_token,
                      json={"port": 2222, "enabled": False, "comment": "moved ssh", "protocol": "udp"})
    data = assert_envelope(result)
    assert (data["port"], data["enabled"], data["comment"], data["protocol"]) == (2222, False, "moved ssh", "udp")
    assert (data["direction"], data["action"], data["source"]) == ("inbound", "accept", "0.0.0.0/0")
    assert list_rules(api, user_token, vm["id"])[0] == data


def test_update_may_clear_nullable_fields(api, user_token, vm):
    rule = create_rule(api, user_token, vm["id"], destination="10.0.0.1")
    data = assert_envelope(api.call("PUT", f"/api/firewall/{rule['id']}", user_token,
                                    json={"port": None, "source": None, "destination": None, "protocol": None}))
    assert (data["port"], data["source"], data["destination"], data["protocol"]) == (None, None, None, None)


@pytest.mark.parametrize(("move_from", "move_to", "expected"), [
    (2, 0, [2, 0, 1, 3]),
    (0, 3, [1, 2, 3, 0]),
    (1, 2, [0, 2, 1, 3]),
    (3, 1, [0, 3, 1, 2]),
    (1, 1, [0, 1, 2, 3]),
])
def test_update_with_position_reorders_the_others(api, user_token, vm, move_from, move_to, expected):
    rules = [create_rule(api, user_token, vm["id"], port=port) for port in (1, 2, 3, 4)]
    data = assert_envelope(api.call("PUT", f"/api/firewall/{rules[move_from]['id']}", user_token,
                                    json={"position": move_to}))
    assert data["position"] == move_to
    assert order(api, user_token, vm["id"]) == [(rules[index]["id"], pos) for pos, index in enumerate(expected)]


def test_delete_removes_the_rule_and_renumbers(api, user_token, vm):
    rules = [create_rule(api, user_token, vm["id"], port=port) for port in (1, 2, 3)]
    result = api.call("DELETE", f"/api/firewall/{rules[1]['id']}", user_token)
    assert assert_envelope(result) == {"deleted": True}
    assert order(api, user_token, vm["id"]) == [(rules[0]["id"], 0), (rules[2]["id"], 1)]
    assert_error(api.call("PUT", f"/api/firewall/{rules[1]['id']}", user_token, json={"port": 5}), 404)
    assert_error(api.call("DELETE", f"/api/firewall/{rules[1]['id']}", user_token), 404)


def test_create_after_delete_appends_at_the_end(api, user_token, vm):
    rules = [create_rule(api, user_token, vm["id"], port=port) for port in (1, 2, 3)]
    api.call("DELETE", f"/api/firewall/{rules[0]['id']}", user_token)
    fresh = create_rule(api, user_token, vm["id"], port=4)
    assert fresh["position"] == 2
    assert [position for _id, position in order(api, user_token, vm["id"])] == [0, 1, 2]


def test_rules_of_two_vms_are_numbered_separately(api, user_token, vm):
    other = api.create_vm(user_token, name="other")
    create_rule(api, user_token, vm["id"])
    assert create_rule(api, user_token, other["id"])["position"] == 0


def test_unknown_rule_is_404(api, user_token):
    rule_id = "00000000-0000-0000-0000-000000000000"
    assert_error(api.call("PUT", f"/api/firewall/{rule_id}", user_token, json={"port": 1}), 404)
    assert_error(api.call("DELETE", f"/api/firewall/{rule_id}", user_token), 404)


def test_rules_of_unknown_vm_are_404(api, user_token):
    vm_id = "00000000-0000-0000-0000-000000000000"
    assert_error(api.call("GET", rules_url(vm_id), user_token), 404)
    assert_error(api.call("POST", rules_url(vm_id), user_token, json=RULE_BODY), 404)


def test_rule_changes_bump_the_vms_generation(api, user_token, vm):
    generation = vm["generation"]
    rule = create_rule(api, user_token, vm["id"])
    assert get_vm(api, user_token, vm["id"])["generation"] == generation + 1
    api.call("PUT", f"/api/firewall/{rule['id']}", user_token, json={"port": 80})
    assert get_vm(api, user_token, vm["id"])["generation"] == generation + 2
    api.call("DELETE", f"/api/firewall/{rule['id']}", user_token)
    after = get_vm(api, user_token, vm["id"])
    assert after["generation"] == generation + 3 and after["sync_status"] == "pending"


def test_rule_changes_on_a_vm_being_deleted_are_409(api, user_token, vm):
    rule = create_rule(api, user_token, vm["id"])
    api.call("DELETE", f"/api/vms/{vm['id']}", user_token)
    assert_error(api.call("POST", rules_url(vm["id"]), user_token, json=RULE_BODY), 409)
    assert_error(api.call("PUT", f"/api/firewall/{rule['id']}", user_token, json={"port": 80}), 409)
    assert_error(api.call("DELETE", f"/api/firewall/{rule['id']}", user_token), 409)


@pytest.mark.parametrize("body", [[], "rule", 1])
def test_non_object_rule_body_is_400(api, user_token, vm, body):
    assert_error(api.call("POST", rules_url(vm["id"]), user_token, json=body), 400)
