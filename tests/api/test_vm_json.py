"""The hot reads' database-rendered answers (api.vm_json) equal the Python-rendered ones (api.schemas.vm_dict)
for VMs holding every kind of value: nulls, empty and JSON null columns, booleans both ways, clones by
vmid and by name, cloud-init with and without a password, odd strings. On SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, update

from api.schemas import VM_FIELDS, vm_dict
from api.vm_json import DOCUMENT_FIELDS
from controller.store.models import VirtualMachine

VARIANTS: list[dict[str, Any]] = [
    {},  # as the API creates it
    {"observed": None, "labels": None, "disks": None, "tags": None, "ip_addresses": None, "drift": None,
     "networks": None, "snapshot_schedule": None, "cloud_init_spec": None, "last_synced_at": None},
    {"reboot_required": True, "start_on_boot": True, "agent": False, "restart_requests": 3, "restarts_done": 1,
     "template_vmid": 9100, "clone_mode": "linked", "pool": "prod", "description": "line one\nline \"two\" é",
     "last_upid": "UPID:pve1:0001:task:", "last_error": "boom <&>", "management": "observe",
     "reboot_policy": "auto", "apply_set": "web"},
    {"template_vmid": None, "template_name": "ubuntu-24.04", "clone_mode": "full",
     "cloud_init_spec": {"user": "ops", "ssh_keys": ["ssh-ed25519 AAAA x"], "ipconfig0": "ip=dhcp"},
     "cloud_init_password": "s3cret", "tags": ["a", "web"], "ip_addresses": ["10.0.0.5"],
     "disks": [{"size_gb": 10, "storage": "local-lvm"}],
     "networks": [{"bridge": "vmbr0", "model": "virtio", "vlan": 20, "firewall": True, "mac": None}],
     "snapshot_schedule": {"every": "1d", "keep": 7, "prefix": "auto"},
     "drift": [{"field": "memory_mb", "desired": 2048, "observed": 1024}],
     "observed": {"node": "pve1", "cores": 2, "pending": ["memory"]}, "labels": {"tier": "web", "ü": "1"}},
    {"cloud_init_spec": {}, "cloud_init_password": "", "management": "", "reboot_policy": "",
     "last_synced_at": datetime(2026, 1, 2, 3, 4, 5, 999_999, tzinfo=UTC)},
]


def test_the_database_renders_the_same_fields_in_the_same_order():
    assert tuple(field for field, _columns, _convert in VM_FIELDS) == DOCUMENT_FIELDS


@pytest.mark.parametrize("variant", range(len(VARIANTS)))
def test_list_and_get_answer_what_the_python_rendering_answers(api, user_token, store, variant):
    vm = api.create_vm(user_token, name=f"json-{uuid.uuid4().hex[:6]}")
    if VARIANTS[variant]:
        with store.write() as session:
            session.execute(update(VirtualMachine).where(VirtualMachine.id == vm["id"]).values(**VARIANTS[variant]))
    with store.read() as session:
        expected = json.loads(json.dumps(vm_dict(session.scalars(select(VirtualMachine).where(
            VirtualMachine.id == vm["id"])).one())))
    got = api.call("GET", f"/api/vms/{vm['id']}", user_token)
    assert got.status_code == 200, got.text
    assert got.json["data"] == expected
    listed = api.call("GET", "/api/vms", user_token).json["data"]
    assert [item for item in listed if item["id"] == vm["id"]] == [expected]
    paged = api.call("GET", "/api/vms?limit=5&label_selector=", user_token).json["data"]
    assert [item for item in paged if item["id"] == vm["id"]] == [expected]
