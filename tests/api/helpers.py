"""Assertions and small request helpers shared by the API contract tests."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import falcon.testing

from tests.conftest import Api

ISO_UTC_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")

VM_SEED_FIELDS = {"id", "vmid", "name", "status", "cpu_cores", "memory_mb", "disk_gb", "node", "owner_id",
                  "created_at", "updated_at"}
VM_ADDED_FIELDS = {"power_state", "generation", "observed_generation", "sync_status", "last_error",
                   "last_synced_at"}
SNAPSHOT_FIELDS = {"id", "vm_id", "name", "description", "created_at", "sync_status", "last_error"}
RULE_SEED_FIELDS = {"id", "vm_id", "direction", "action", "protocol", "port", "source", "destination", "enabled",
                    "created_at"}
RULE_ADDED_FIELDS = {"position", "comment"}
AUDIT_FIELDS = {"id", "user_id", "action", "resource_type", "resource_id", "details", "ip_address", "created_at"}
USER_FIELDS = {"id", "username", "email", "role"}
SYNC_STATUSES = {"pending", "syncing", "synced", "error", "deleting"}

VM_BODY = {"name": "vm-1", "cpu_cores": 2, "memory_mb": 2048, "disk_gb": 20, "node": "pve1"}
RULE_BODY = {"direction": "inbound", "action": "accept", "protocol": "TCP", "port": 22, "source": "0.0.0.0/0"}


def assert_error(result: falcon.testing.Result, status: int) -> dict[str, Any]:
    """The contract's error shape: {"error": str, "code": int, ...extras}, code equal to the HTTP status."""
    assert result.status_code == status, f"expected {status}, got {result.status_code}: {result.text}"
    assert result.headers.get("content-type", "").startswith("application/json"), result.headers
    body = result.json
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str) and body["error"], body
    assert type(body.get("code")) is int, body
    assert body["code"] == status, body
    assert "success" not in body or body["success"] is False, body
    return body


def assert_envelope(result: falcon.testing.Result, status: int = 200) -> Any:
    """The contract's success envelope {success: true, data, message}; returns data."""
    assert result.status_code == status, f"expected {status}, got {result.status_code}: {result.text}"
    body = result.json
    assert isinstance(body, dict), body
    assert {"success", "data", "message"} <= set(body), body
    assert body["success"] is True, body
    assert body["message"] is None or isinstance(body["message"], str), body
    return body["data"]


def assert_names_field(result: falcon.testing.Result, field: str, status: int = 400) -> dict[str, Any]:
    """A validation error naming the field in its message and in "field"."""
    body = assert_error(result, status)
    assert field in body["error"], f"message does not name {field!r}: {body}"
    assert body.get("field") == field, body
    return body


def assert_timestamp(value: Any) -> datetime:
    assert isinstance(value, str) and ISO_UTC_Z.match(value), value
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def assert_uuid(value: Any) -> None:
    assert isinstance(value, str), value
    uuid.UUID(value)


def create_snapshot(api: Api, token: str, vm_id: str, name: str = "snap-1", **fields: Any) -> dict[str, Any]:
    result = api.call("POST", f"/api/vms/{vm_id}/snapshots", token, json={"name": name, **fields})
    return dict(assert_envelope(result, 201))


def create_rule(api: Api, token: str, vm_id: str, **fields: Any) -> dict[str, Any]:
    result = api.call("POST", f"/api/vms/{vm_id}/firewall", token, json={**RULE_BODY, **fields})
    return dict(assert_envelope(result, 201))


def get_vm(api: Api, token: str, vm_id: str) -> dict[str, Any]:
    return dict(assert_envelope(api.call("GET", f"/api/vms/{vm_id}", token)))


def user_id_of(api: Api, token: str) -> str:
    return str(assert_envelope(api.call("GET", "/api/auth/me", token))["id"])
