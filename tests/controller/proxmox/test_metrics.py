"""Every Proxmox request is counted in pvem_proxmox_requests_total by method and status (real fakepve)."""

from __future__ import annotations

import contextlib
import re

from controller import metrics
from controller.proxmox.errors import ProxmoxError


def _count(method: str, status: str) -> float:
    text = metrics.render().decode()
    match = re.search(re.escape(f'pvem_proxmox_requests_total{{method="{method}",status="{status}"}}') + r" (\S+)",
                      text)
    return float(match.group(1)) if match else 0.0


def test_requests_are_counted_by_method_and_status(client, fakepve):
    before_get, before_missing = _count("GET", "200"), _count("GET", "500") + _count("GET", "404")
    client.list_vms()
    client.list_nodes()
    assert _count("GET", "200") >= before_get + 2
    with contextlib.suppress(ProxmoxError):
        client.vm_status("pve1", 999_999)
    assert _count("GET", "500") + _count("GET", "404") > before_missing
    assert 'pvem_proxmox_request_duration_seconds_count{method="GET",status="200"}' in metrics.render().decode()
    before_post = _count("POST", "200")
    fakepve.add_vm(100, "web1")
    client.start("pve1", 100)  # a write on the fast path is counted too
    assert _count("POST", "200") == before_post + 1
