"""Request helpers and manifest builders for the manifest API tests (test_manifests*.py)."""

from __future__ import annotations

import json
from typing import Any

import falcon.testing
import yaml

from tests.api.helpers import assert_envelope
from tests.conftest import Api

HEADER = "apiVersion: pvem/v1\nkind: VirtualMachine\n"

# The issue's own example, verbatim.
WEB_1_YAML = """\
apiVersion: pvem/v1
kind: VirtualMachine
metadata:
  name: web-1              # the key: unique per owner
  labels: {tier: web}      # free-form, filterable
spec:
  node: pve1
  cpu_cores: 2
  memory_mb: 2048
  disk_gb: 40
  power_state: running
  snapshots:
    - {name: baseline, description: "after provisioning"}
  firewall:
    - {direction: inbound, action: accept, protocol: tcp, port: 22, source: 10.0.0.0/8}
    - {direction: inbound, action: drop, protocol: tcp}
"""

Rule = dict[str, Any]
SSH: Rule = {"direction": "inbound", "action": "accept", "protocol": "tcp", "port": 22, "source": "10.0.0.0/8"}
HTTP: Rule = {"direction": "inbound", "action": "accept", "protocol": "tcp", "port": 80}
DROP: Rule = {"direction": "inbound", "action": "drop", "protocol": "tcp"}


def doc(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    """A VirtualMachine document; `labels` None leaves metadata.labels out, no spec kwargs leaves spec out."""
    metadata: dict[str, Any] = {"name": name}
    if labels is not None:
        metadata["labels"] = labels
    document: dict[str, Any] = {"apiVersion": "pvem/v1", "kind": "VirtualMachine", "metadata": metadata}
    if spec:
        document["spec"] = spec
    return document


def as_yaml(*documents: Any) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True)


def post(api: Api, token: str | None, body: str | bytes, content_type: str | None = "application/yaml",
         query: str = "") -> falcon.testing.Result:
    headers = {"Content-Type": content_type} if content_type else {}
    raw = body.encode("utf-8") if isinstance(body, str) else body
    return api.call("POST", "/api/manifests", token, body=raw, headers=headers, query_string=query)


def post_yaml(api: Api, token: str, *documents: Any, query: str = "") -> falcon.testing.Result:
    return post(api, token, as_yaml(*documents), query=query)


def post_json(api: Api, token: str, payload: Any, query: str = "") -> falcon.testing.Result:
    return post(api, token, json.dumps(payload), "application/json", query)


def apply(api: Api, token: str, *documents: Any, query: str = "") -> dict[str, Any]:
    """Apply `documents` as YAML; the 200 answer's data."""
    return dict(assert_envelope(post_yaml(api, token, *documents, query=query)))


def by_name(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in plan["objects"]}


def changes_of(item: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {change["field"]: (change["old"], change["new"]) for change in item["changes"]}


def vms(api: Api, token: str, query: str = "") -> dict[str, dict[str, Any]]:
    """The caller's VMs by name."""
    return {vm["name"]: vm for vm in assert_envelope(api.call("GET", "/api/vms", token, query_string=query))}


def snapshots(api: Api, token: str, vm_id: str) -> list[dict[str, Any]]:
    return list(assert_envelope(api.call("GET", f"/api/vms/{vm_id}/snapshots", token)))


def rules(api: Api, token: str, vm_id: str) -> list[dict[str, Any]]:
    return list(assert_envelope(api.call("GET", f"/api/vms/{vm_id}/firewall", token)))


def rule_specs(api: Api, token: str, vm_id: str) -> list[dict[str, Any]]:
    """The VM's rules in order, as a manifest writes them (unset fields left out)."""
    keys = ("direction", "action", "protocol", "port", "source", "destination", "comment")
    found = rules(api, token, vm_id)
    assert [rule["position"] for rule in found] == list(range(len(found))), found
    return [{key: rule[key] for key in keys if rule[key] is not None} for rule in found]


def audit_ids(api: Api, admin_token: str) -> list[str]:
    """Every audit record's id (admins see all), newest first."""
    records = assert_envelope(api.call("GET", "/api/audit-logs", admin_token, query_string="limit=500"))
    return [record["id"] for record in records]


def state(api: Api, token: str, admin_token: str) -> tuple[Any, ...]:
    """Everything a manifest could write, as the API shows it: VMs with their snapshots and rules, and the audit."""
    found = vms(api, token)
    return (found, {name: snapshots(api, token, vm["id"]) for name, vm in found.items()},
            {name: rules(api, token, vm["id"]) for name, vm in found.items()}, audit_ids(api, admin_token))


ACTIONS = ("create", "update", "delete", "unchanged")


def action_counts(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary's counts per action (it also counts objects per impact)."""
    return {key: summary[key] for key in ACTIONS}


def plain_changes(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Changes without their impact label (tests of what changes, not of what it does to the guest)."""
    return [{key: value for key, value in change.items() if key != "impact"} for change in changes]
