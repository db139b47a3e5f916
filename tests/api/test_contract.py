"""Every endpoint of the contract in one table: status code, envelope, and the shape of its data."""

from __future__ import annotations

import pytest

from tests.api.helpers import (
    AUDIT_FIELDS,
    RULE_ADDED_FIELDS,
    RULE_BODY,
    RULE_SEED_FIELDS,
    SNAPSHOT_FIELDS,
    VM_ADDED_FIELDS,
    VM_BODY,
    VM_SEED_FIELDS,
    assert_envelope,
    assert_error,
    create_rule,
    create_snapshot,
)

VM = VM_SEED_FIELDS | VM_ADDED_FIELDS
RULE = RULE_SEED_FIELDS | RULE_ADDED_FIELDS
DELETED = {"deleted"}

# (method, path, body, status, data kind: "list" of fields / "object" with fields)
ENDPOINTS = [
    ("GET", "/api/vms", None, 200, ("list", VM)),
    ("POST", "/api/vms", {**VM_BODY, "name": "new-vm"}, 201, ("object", VM)),
    ("GET", "/api/vms/{vm}", None, 200, ("object", VM)),
    ("PUT", "/api/vms/{vm}", {"cpu_cores": 4}, 200, ("object", VM)),
    ("POST", "/api/vms/{vm}/action", {"action": "start"}, 200, ("object", VM)),
    ("GET", "/api/vms/{vm}/snapshots", None, 200, ("list", SNAPSHOT_FIELDS)),
    ("POST", "/api/vms/{vm}/snapshots", {"name": "backup-2024-01-15", "description": "Weekly backup"}, 201,
     ("object", SNAPSHOT_FIELDS)),
    ("POST", "/api/vms/{vm}/snapshots/{snapshot}/rollback", None, 200, ("object", SNAPSHOT_FIELDS)),
    ("DELETE", "/api/vms/{vm}/snapshots/{snapshot}", None, 200, ("object", DELETED)),
    ("GET", "/api/vms/{vm}/firewall", None, 200, ("list", RULE)),
    ("POST", "/api/vms/{vm}/firewall", {**RULE_BODY, "protocol": "TCP", "port": 80}, 201, ("object", RULE)),
    ("PUT", "/api/firewall/{rule}", {"port": 443}, 200, ("object", RULE)),
    ("DELETE", "/api/firewall/{rule}", None, 200, ("object", DELETED)),
    ("DELETE", "/api/vms/{vm}", None, 200, ("object", DELETED)),
    ("GET", "/api/audit-logs", None, 200, ("list", AUDIT_FIELDS)),
    ("GET", "/api/audit-logs?limit=50&offset=0", None, 200, ("list", AUDIT_FIELDS)),
]


@pytest.fixture
def world(api, user_token):
    vm = api.create_vm(user_token, name="vm-ubuntu")
    snapshot = create_snapshot(api, user_token, vm["id"], "snap")
    rule = create_rule(api, user_token, vm["id"])
    return {"vm": vm["id"], "snapshot": snapshot["id"], "rule": rule["id"]}


@pytest.mark.parametrize(("method", "path", "body", "status", "shape"), ENDPOINTS,
                         ids=[f"{endpoint[0]} {endpoint[1]}" for endpoint in ENDPOINTS])
def test_endpoint_answers_its_status_in_the_envelope(api, user_token, world, method, path, body, status, shape):
    path, _, query = path.format(**world).partition("?")
    result = api.call(method, path, user_token, json=body, query_string=query or None)
    data = assert_envelope(result, status)
    kind, fields = shape
    if kind == "list":
        assert isinstance(data, list) and data, data
        for item in data:
            assert fields <= set(item), item
    else:
        assert isinstance(data, dict) and fields <= set(data), data
        if fields == DELETED:
            assert data == {"deleted": True}


@pytest.mark.parametrize(("method", "path", "message"), [
    ("POST", "/api/vms", "Virtual machine created successfully"),
    ("DELETE", "/api/vms/{vm}", "Virtual machine deleted successfully"),
])
def test_contract_messages(api, user_token, world, method, path, message):
    body = {**VM_BODY, "name": "msg-vm"} if method == "POST" else None
    result = api.call(method, path.format(**world), user_token, json=body)
    assert result.json["message"] == message


def test_list_envelope_message_is_null(api, user_token, world):
    assert api.call("GET", "/api/vms", user_token).json["message"] is None


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("GET", "/api/vms", None, 401),
    ("POST", "/api/vms", {"name": "bad_name"}, 400),
    ("POST", "/api/vms", {**VM_BODY, "name": "vm-ubuntu"}, 409),
    ("GET", "/api/vms/00000000-0000-0000-0000-000000000000", None, 404),
    ("POST", "/api/vms/{vm}/action", {"action": "pause"}, 409),
    ("POST", "/api/vms/{vm}/action", {"action": "fly"}, 400),
    ("POST", "/api/vms/{vm}/snapshots", {"name": "snap"}, 409),
    ("POST", "/api/vms/{vm}/firewall", {**RULE_BODY, "port": 0}, 400),
    ("GET", "/api/audit-logs?limit=x", None, 400),
    ("GET", "/api/nowhere", None, 404),
    ("PATCH", "/api/vms", None, 405),
])
def test_every_error_is_exactly_error_and_code(api, user_token, world, method, path, body, status):
    path, _, query = path.format(**world).partition("?")
    token = None if status == 401 else user_token
    result = api.call(method, path, token, json=body, query_string=query or None)
    error = assert_error(result, status)
    assert not {"success", "data", "message"} & set(error), error
