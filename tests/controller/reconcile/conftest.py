"""A reconciler wired to a per-test fakepve over real HTTPS, with a store and an admin to own VMs.

Tests drive it synchronously (`harness.reconcile(vm_id)` runs one VM to convergence or failure, as a
worker would) unless they start the threaded loop themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from controller import firewall, snapshots, users, vm_create, vms
from controller.actor import Actor
from controller.config import Settings
from controller.firewall_specs import RuleCreate
from controller.proxmox.client import ProxmoxClient
from controller.reconcile.loop import LoopSettings, Reconciler
from controller.reconcile.model import Policy
from controller.specs import SnapshotCreate, VmCreate, VmUpdate
from controller.store import Store
from controller.store.models import AuditLog, VirtualMachine


class Harness:
    def __init__(self, fake: Any, settings: Settings, store: Store, reconciler: Reconciler, actor: Actor) -> None:
        self.fake, self.settings, self.store, self.reconciler, self.actor = fake, settings, store, reconciler, actor

    # desired state, through the same domain calls the API makes
    def create_vm(self, **fields: Any) -> str:
        spec = VmCreate(**{"name": "web-1", "cpu_cores": 2, "memory_mb": 2048, "disk_gb": 20, "node": "pve1",
                           **fields})
        with self.store.write() as session:
            return vm_create.create_vm(session, self.actor, spec, self.settings.proxmox.vmid_min,
                                 self.settings.proxmox.vmid_max).id

    def update_vm(self, vm_id: str, **fields: Any) -> None:
        with self.store.write() as session:
            vms.update_vm(session, self.actor, vm_id, VmUpdate(**fields))

    def action(self, vm_id: str, action: str) -> None:
        with self.store.write() as session:
            vms.request_action(session, self.actor, vm_id, action)

    def delete_vm(self, vm_id: str) -> None:
        with self.store.write() as session:
            vms.request_deletion(session, self.actor, vm_id)

    def add_snapshot(self, vm_id: str, name: str, description: str | None = None) -> str:
        with self.store.write() as session:
            return snapshots.create_snapshot(session, self.actor, vm_id,
                                             SnapshotCreate(name=name, description=description)).id

    def add_rule(self, vm_id: str, **fields: Any) -> str:
        with self.store.write() as session:
            return firewall.create_rule(session, self.actor, vm_id, RuleCreate(**fields)).id

    # running the reconciler
    def reconcile(self, vm_id: str) -> VirtualMachine | None:
        self.reconciler._reconcile_one(vm_id)
        return self.row(vm_id)

    def row(self, vm_id: str) -> VirtualMachine | None:
        with self.store.read() as session:
            return session.get(VirtualMachine, vm_id)

    def audit_actions(self, vm_id: str | None = None) -> list[str]:
        with self.store.read() as session:
            records = session.query(AuditLog).order_by(AuditLog.seq)
            if vm_id:
                records = records.filter(AuditLog.resource_id == vm_id)
            return [record.action for record in records]

    # what pvem asked of Proxmox
    def mark_requests(self) -> int:
        return len(self.fake.requests)

    def requests_since(self, mark: int) -> list[tuple[str, str]]:
        return [(method, path) for method, path, _body in self.fake.requests[mark:]]

    def writes_since(self, mark: int) -> list[tuple[str, str]]:
        return [(method, path) for method, path in self.requests_since(mark) if method != "GET"]


@pytest.fixture
def harness_factory(fakepve: Any, fakepve_cafile: str, settings_factory: Callable[..., Settings], store: Store,
                    passwords: users.Passwords) -> Iterator[Callable[..., Harness]]:
    made: list[Reconciler] = []

    def build(policy: Policy | None = None, **proxmox: Any) -> Harness:
        settings = settings_factory(proxmox={
            "host": fakepve.host, "port": fakepve.port, "user": "root@pam", "password": "secret",
            "ca_file": fakepve_cafile, "timeout_seconds": 5, "default_node": "pve1", **proxmox})
        with store.write() as session:
            admin = users.find_by_email(session, "owner@example.com") or users.ensure_admin(
                session, passwords, "owner@example.com", "password123")
            actor = Actor(user_id=admin.id, role="admin")
        client = ProxmoxClient(settings.proxmox)
        reconciler = Reconciler(store, client, policy or Policy(shutdown_timeout=5), LoopSettings(
            workers=2, backoff_base=0.01, backoff_max=0.2, error_retry_seconds=0.5, pass_interval=30,
            resync_seconds=3600), settings.proxmox.storage, settings.proxmox.bridge,
            (settings.proxmox.vmid_min, settings.proxmox.vmid_max))
        made.append(reconciler)
        return Harness(fakepve, settings, store, reconciler, actor)

    yield build
    for reconciler in made:
        reconciler.stop(timeout=5)
        reconciler.client.close()


@pytest.fixture
def harness(harness_factory: Callable[..., Harness]) -> Harness:
    return harness_factory()
