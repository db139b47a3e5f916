"""Fixtures for the Proxmox adapter's tests: settings and a client for the plugin's per-test fakepve."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from controller.config import ProxmoxSettings
from controller.proxmox.client import ProxmoxClient
from controller.proxmox.marks import description_with_mark

VM_UUID = "0b6f3f7e-7d35-4a53-9c1e-1d2e3f4a5b6c"


@pytest.fixture
def pve_settings(fakepve: Any, fakepve_cafile: str) -> ProxmoxSettings:
    return ProxmoxSettings(host=fakepve.host, port=fakepve.port, user="root@pam", password=SecretStr("secret"),
                           ca_file=fakepve_cafile, timeout_seconds=5)


@pytest.fixture
def client(pve_settings: ProxmoxSettings) -> Iterator[ProxmoxClient]:
    made = ProxmoxClient(pve_settings)
    yield made
    made.close()


def create_vm(client: ProxmoxClient, vmid: int = 100, **overrides: Any) -> str:
    """Create a VM the way the reconciler does and wait for it; returns the create task's UPID."""
    params: dict[str, Any] = {
        "name": "web1", "cores": 2, "memory_mb": 2048, "disk_gb": 32, "storage": "local-lvm", "bridge": "vmbr0",
        "description": description_with_mark(VM_UUID, "made by pvem"), "tags": ["web", "pvem"],
    }
    params.update(overrides)
    upid = client.create_vm("pve1", vmid, **params)
    finish(client, upid)
    return upid


def finish(client: ProxmoxClient, upid: str | None) -> None:
    """Wait for a task the test expects Proxmox to have started."""
    assert upid is not None, "expected a task id"
    client.wait_task(upid, timeout=10, poll=0.01)


def requests_to(fakepve: Any, method: str, suffix: str) -> int:
    """How many requests fakepve saw for this method and path ending."""
    return sum(1 for m, path, _ in fakepve.requests if m == method and path.split("?")[0].endswith(suffix))
