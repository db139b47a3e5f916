"""Every scenario module, in the order the table shows them. Add yours here (one module per concern)."""

from __future__ import annotations

import importlib

MODULES = [
    "bench.scenarios.api_reads",  # GET /api/vms (100, 10,000), /api/vms/{id}, /api/auth/me vs references
    "bench.scenarios.api_writes",  # POST /api/vms p99 at 16 clients
    "bench.scenarios.manifests",  # 1,000 VMs in one apply, no-op re-apply
    "bench.scenarios.capacity",  # RSS with 10,000 VMs in the store
    "bench.scenarios.robustness",  # register/login flood beside writes; 150 idle sockets
    "bench.scenarios.reconcile",  # bulk vs a sequential proxmoxer loop, change latency at 1,000, idle at 10,000
    "bench.scenarios.replicas",  # two API replicas against one on PostgreSQL
]


def load_all() -> None:
    for module in MODULES:
        importlib.import_module(module)
