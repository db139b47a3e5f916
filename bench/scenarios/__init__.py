"""Every scenario module, in the order the table shows them. Add yours here (one module per concern)."""

from __future__ import annotations

import importlib

MODULES = [
    "bench.scenarios.api_reads",  # GET /api/vms (100, 10,000), /api/vms/{id}, /api/auth/me vs references
    "bench.scenarios.api_writes",  # POST /api/vms p99 at 16 clients
    "bench.scenarios.manifests",  # 1,000 VMs in one apply, no-op re-apply
    "bench.scenarios.capacity",  # RSS with 10,000 VMs in the store
    "bench.scenarios.robustness",  # register/login flood beside writes; 150 idle sockets
    # reconciler scenarios (issue-8r): bulk vs sequential proxmoxer loop, change latency, idle at 10,000
    # replicas (issue-11): two API replicas vs one on PostgreSQL
]


def load_all() -> None:
    for module in MODULES:
        importlib.import_module(module)
