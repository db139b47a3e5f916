"""VM request validation: every bad field is a 400 naming it; bad bodies are 400, wrong media types 415."""

from __future__ import annotations

import pytest

from tests.api.helpers import VM_BODY, assert_envelope, assert_error, assert_names_field

LABEL_63 = "a" * 63
LABEL_64 = "a" * 64

BAD_FIELDS = [
    # name: a DNS name, letters, digits, '-' and '.', labels of 1..63
    ("name", ""),
    ("name", "   "),
    ("name", "my_vm"),
    ("name", "-leading"),
    ("name", "trailing-"),
    ("name", "has space"),
    ("name", "a..b"),
    ("name", ".leading-dot"),
    ("name", "trailing-dot."),
    ("name", LABEL_64),
    ("name", f"ok.{LABEL_64}"),
    ("name", "vm/1"),
    ("name", "vm\u00e9"),
    ("name", 5),
    ("name", None),
    # cpu_cores 1..512, integers only
    ("cpu_cores", 0),
    ("cpu_cores", -1),
    ("cpu_cores", 513),
    ("cpu_cores", "2"),
    ("cpu_cores", 2.5),
    ("cpu_cores", True),
    ("cpu_cores", None),
    # memory_mb 16..4194304
    ("memory_mb", 15),
    ("memory_mb", 0),
    ("memory_mb", 4194305),
    ("memory_mb", "2048"),
    ("memory_mb", 1024.5),
    # disk_gb 1..65536
    ("disk_gb", 0),
    ("disk_gb", 65537),
    ("disk_gb", "20"),
    ("disk_gb", False),
    # node: a non-empty Proxmox node name
    ("node", ""),
    ("node", "node_1"),
    ("node", "node 1"),
    ("node", "-pve"),
    ("node", 1),
    # power_state: running|stopped|paused
    ("power_state", "on"),
    ("power_state", "RUNNING!"),
]

GOOD_FIELDS = [
    ("name", "a"),
    ("name", "vm-ubuntu"),
    ("name", "Web01"),
    ("name", "web.example.com"),
    ("name", "0vm"),
    ("name", LABEL_63),
    ("name", f"{LABEL_63}.{LABEL_63}"),
    ("cpu_cores", 1),
    ("cpu_cores", 512),
    ("memory_mb", 16),
    ("memory_mb", 4194304),
    ("disk_gb", 1),
    ("disk_gb", 65536),
    ("node", "pve-2"),
    ("node", "node1"),
    ("power_state", "running"),
    ("power_state", "stopped"),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
def test_create_with_bad_field_is_400_naming_it(api, user_token, field, value):
    result = api.call("POST", "/api/vms", user_token, json={**VM_BODY, field: value})
    assert_names_field(result, field)
    assert assert_envelope(api.call("GET", "/api/vms", user_token)) == []


@pytest.mark.parametrize(("field", "value"), GOOD_FIELDS)
def test_create_with_boundary_value_is_accepted(api, user_token, field, value):
    result = api.call("POST", "/api/vms", user_token, json={**VM_BODY, field: value})
    assert assert_envelope(result, 201)[field] == value


BAD_UPDATES = [
    ("name", ""), ("name", "my_vm"), ("name", "-leading"), ("name", LABEL_64), ("cpu_cores", 0),
    ("cpu_cores", 513), ("cpu_cores", "2"), ("cpu_cores", 2.5), ("cpu_cores", True), ("memory_mb", 15),
    ("memory_mb", 4194305), ("disk_gb", 65537), ("disk_gb", "20"), ("node", ""), ("node", "node_1"),
    ("power_state", "on"), ("color", "red"), ("vmid", 100),
]


@pytest.mark.parametrize(("field", "value"), BAD_UPDATES)
def test_update_with_bad_field_is_400_naming_it(api, user_token, field, value):
    vm = api.create_vm(user_token, disk_gb=1)
    result = api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={field: value})
    assert_names_field(result, field)


def test_update_with_disk_gb_zero_is_400_naming_disk_gb(api, user_token):
    vm = api.create_vm(user_token, disk_gb=1)
    assert_names_field(api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={"disk_gb": 0}), "disk_gb")


@pytest.mark.parametrize("field", ["name", "cpu_cores", "memory_mb", "disk_gb", "node"])
def test_update_with_null_is_400_naming_it(api, user_token, field):
    vm = api.create_vm(user_token)
    assert_names_field(api.call("PUT", f"/api/vms/{vm['id']}", user_token, json={field: None}), field)


@pytest.mark.parametrize("field", ["color", "vmid", "status", "id", "Name", "generation", "sync_status"])
def test_create_with_unknown_field_is_400_naming_it(api, user_token, field):
    result = api.call("POST", "/api/vms", user_token, json={**VM_BODY, field: "x"})
    assert_names_field(result, field)


def test_create_without_name_is_400_naming_name(api, user_token):
    body = {key: value for key, value in VM_BODY.items() if key != "name"}
    assert_names_field(api.call("POST", "/api/vms", user_token, json=body), "name")


def test_create_with_empty_object_is_400_naming_name(api, user_token):
    assert_names_field(api.call("POST", "/api/vms", user_token, json={}), "name")


@pytest.mark.parametrize("body", [[], [VM_BODY], "x", 5, 1.5, True])
def test_non_object_body_is_400(api, user_token, body):
    assert_error(api.call("POST", "/api/vms", user_token, json=body), 400)


@pytest.mark.parametrize("raw", ["null", "{bad json", "{\"name\": \"x\",}", "[", "{'name': 'x'}", "nul"])
def test_malformed_or_null_json_is_400(api, user_token, raw):
    result = api.call("POST", "/api/vms", user_token, body=raw, headers={"Content-Type": "application/json"})
    assert_error(result, 400)


@pytest.mark.parametrize("raw", [
    "[" * 50_000 + "]" * 50_000,
    '{"name": ' + "[" * 50_000 + "]" * 50_000 + "}",
    '{"name": ' + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "}",
])
def test_deeply_nested_json_is_400(api, user_token, raw):
    """Valid but absurdly nested JSON (well under the body limit) is a bad request, not a server error."""
    assert len(raw) < 1024 * 1024
    result = api.call("POST", "/api/vms", user_token, body=raw, headers={"Content-Type": "application/json"})
    assert_error(result, 400)


def test_empty_body_is_400(api, user_token):
    result = api.call("POST", "/api/vms", user_token, headers={"Content-Type": "application/json"})
    assert_error(result, 400)


def test_empty_body_on_update_is_400(api, user_token):
    vm = api.create_vm(user_token)
    result = api.call("PUT", f"/api/vms/{vm['id']}", user_token, body=b"",
                      headers={"Content-Type": "application/json"})
    assert_error(result, 400)


def test_invalid_utf8_body_is_400(api, user_token):
    result = api.call("POST", "/api/vms", user_token, body=b'{"name": "\xff\xfe"}',
                      headers={"Content-Type": "application/json"})
    assert_error(result, 400)


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_wrong_content_type_is_415(api, user_token, content_type):
    import json

    result = api.call("POST", "/api/vms", user_token, body=json.dumps(VM_BODY),
                      headers={"Content-Type": content_type})
    assert_error(result, 415)
    assert assert_envelope(api.call("GET", "/api/vms", user_token)) == []


def test_json_content_type_with_charset_is_accepted(api, user_token):
    import json

    result = api.call("POST", "/api/vms", user_token, body=json.dumps(VM_BODY),
                      headers={"Content-Type": "application/json; charset=utf-8"})
    assert_envelope(result, 201)


@pytest.mark.parametrize("content_type", ["APPLICATION/JSON", "Application/Json; charset=utf-8",
                                          "application/JSON"])
def test_json_content_type_is_case_insensitive(api, user_token, content_type):
    """Media type names are case-insensitive (RFC 9110 8.3.1): these are application/json, not a 415."""
    import json

    result = api.call("POST", "/api/vms", user_token, body=json.dumps(VM_BODY),
                      headers={"Content-Type": content_type})
    assert_envelope(result, 201)


def test_validation_error_reports_every_problem_but_names_one_field(api, user_token):
    result = api.call("POST", "/api/vms", user_token, json={**VM_BODY, "cpu_cores": 0, "memory_mb": 1})
    body = assert_error(result, 400)
    assert body.get("field") in ("cpu_cores", "memory_mb")
    assert body["field"] in body["error"]
