"""Taking over VMs pvem did not create: list the cluster's guests, and import one as a managed VM.

Importing reads the VM (config, pending, power state, snapshots, firewall) and turns it into a spec
that matches what is there, so the first reconcile finds nothing to do. The only writes to Proxmox
are pvem's marks: the `pvem:id=` line appended to the VM's description (its text stays) and the
`pvem` tag, the same line on each snapshot's description, and `pvem:<uuid>` at the start of each
firewall rule's comment. No power action, no resize, no other config key.

`spec_from_observed` is the one place that maps an observed Proxmox config to spec fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller import audit, cluster, guest, vms
from controller.actor import Actor
from controller.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from controller.proxmox.client import ProxmoxClient
from controller.proxmox.errors import ProxmoxError
from controller.proxmox.guest_config import spec_fields_from_config
from controller.proxmox.marks import (
    description_with_mark,
    mark_of,
    rule_comment,
    rule_user_comment,
    snapshot_description,
    strip_mark,
    tags_with_mark,
)
from controller.proxmox.normalize import VmConfig, memory_to_mb, pending_changes, to_int
from controller.reconcile.observe import power_status
from controller.specs import check_vm_name
from controller.store import Store
from controller.store.models import FirewallRule, User, VirtualMachine, VmSnapshot, new_id, utcnow

# PVE rule keys pvem's rule model has no field for: a rule using one cannot be managed as it is.
_UNMANAGEABLE_RULE_KEYS = ("macro", "iface", "sport", "log", "icmp-type")


def spec_from_observed(config: VmConfig, pending: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """The spec fields that reproduce an observed VM: its config with pending values (what it becomes at
    the next reboot, so pvem plans no change), and its power state. Extend here for new spec fields."""
    cores = to_int(pending["cores"]) if pending.get("cores") is not None else config.cores
    memory = memory_to_mb(pending["memory"]) if pending.get("memory") is not None else config.memory_mb
    return {
        "name": str(pending.get("name") or config.name or ""),
        "cpu_cores": cores or 1,
        "memory_mb": memory or 512,
        # A VM without a boot disk keeps none: the reconciler never resizes a disk it cannot see.
        "disk_gb": config.disk_gb or 1,
        "power_state": power_status(status),
    }


def guest_spec_from_observed(config: VmConfig, pending: dict[str, Any], pool: str | None) -> dict[str, Any]:
    """The guest fields (issue 7) of an observed VM, as they will be after its next boot: tags without
    `pvem`, the description without pvem's mark, NICs with their MACs, extra disks, cloud-init keys
    (not the password: Proxmox keeps only its hash), onboot, agent, and the pool from the listing."""
    raw = dict(config.raw)
    for key, value in pending.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    fields = spec_fields_from_config(raw)
    fields["description"] = strip_mark(fields.get("description")) or None
    fields["pool"] = pool
    return fields


def rule_from_observed(item: dict[str, Any]) -> dict[str, Any]:
    """A Proxmox firewall rule as RuleSpec fields; Invalid when pvem's rule model cannot hold it."""
    pos = item.get("pos")
    for key in _UNMANAGEABLE_RULE_KEYS:
        if item.get(key) not in (None, "", 0):
            raise Conflict(f"firewall rule {pos} uses {key!r}, which pvem rules cannot express; remove or "
                           "simplify it before importing")
    kind = str(item.get("type") or "")
    if kind not in ("in", "out"):
        raise Conflict(f"firewall rule {pos} is of type {kind!r} (only in and out rules can be imported)")
    dport = item.get("dport")
    port = to_int(dport) if dport not in (None, "") else None
    if dport not in (None, "") and port is None:
        raise Conflict(f"firewall rule {pos} has the port {dport!r}; pvem rules hold one port")
    proto = item.get("proto") or None
    if proto is not None and str(proto).lower() not in ("tcp", "udp", "icmp"):
        raise Conflict(f"firewall rule {pos} has the protocol {proto!r}; pvem rules hold tcp, udp or icmp")
    comment = rule_user_comment(item.get("comment")) or None
    return {"direction": "inbound" if kind == "in" else "outbound", "action": str(item.get("action")).lower(),
            "protocol": proto, "port": port, "source": item.get("source") or None,
            "destination": item.get("dest") or None, "enabled": bool(to_int(item.get("enable"))),
            "comment": comment[:200] if comment else None}


@dataclass
class _Observed:
    node: str
    config: VmConfig
    spec: dict[str, Any]
    snapshots: list[dict[str, Any]]
    rules: list[dict[str, Any]]
    rule_digest: str | None
    firewall_enabled: bool


class Importer:
    """Synchronous cluster reads and imports for the API (`GET /api/cluster/vms`, `POST /api/vms/import`)."""

    def __init__(self, client: ProxmoxClient, store: Store, reboot_policy_default: str = "never") -> None:
        self.client, self.store, self.reboot_policy_default = client, store, reboot_policy_default

    def _pve(self, what: str, call: Any) -> Any:
        try:
            return call()
        except ProxmoxError as exc:
            raise Unavailable(f"Proxmox could not {what}: {exc.message}") from exc

    def cluster_vms(self, actor: Actor) -> list[dict[str, Any]]:
        """Every QEMU guest in the cluster and whether pvem manages it (admins only)."""
        if not actor.is_admin:
            raise Forbidden("only admins may list the cluster's VMs")
        listed = self._pve("list the cluster's VMs", self.client.list_vms)
        self._record_nodes()
        with self.store.read() as session:
            managed = {vmid: vm_id for vmid, vm_id in session.execute(select(VirtualMachine.vmid, VirtualMachine.id))}
        return [{"vmid": vm.vmid, "name": vm.name, "node": vm.node, "status": vm.status, "template": vm.template,
                 "managed": vm.vmid in managed, "vm_id": managed.get(vm.vmid)}
                for vm in sorted(listed, key=lambda item: item.vmid)]

    def _record_nodes(self) -> None:
        try:
            nodes = self.client.list_nodes()
        except ProxmoxError:
            return
        with self.store.write() as session:
            cluster.record_nodes(session, nodes)

    def import_vm(self, actor: Actor, vmid: int, owner_id: str | None = None,
                  management: str = "enforce") -> str:
        """Import vmid as a VM owned by owner_id (default: the admin); returns the new VM's id."""
        if not actor.is_admin:
            raise Forbidden("only admins may import virtual machines")
        listed = {vm.vmid: vm for vm in self._pve("list the cluster's VMs", self.client.list_vms)}
        found = listed.get(vmid)
        if found is None:
            raise NotFound(f"the Proxmox cluster has no VM {vmid}")
        if found.template:
            raise Invalid(f"VM {vmid} is a template; templates are cloned, not managed", field="vmid")
        owner = owner_id or actor.user_id
        with self.store.read() as session:
            self._check_free(session, vmid, owner)
        vm_id = new_id()
        seen = self._read(found.node, vmid, getattr(found, "pool", None))
        if mark_of(seen.config.description) is not None:
            with self.store.read() as session:
                if session.get(VirtualMachine, mark_of(seen.config.description)) is not None:
                    raise Conflict(f"VM {vmid} is already managed by pvem")
        name = seen.spec["name"] or f"vm-{vmid}"
        try:
            check_vm_name(name)
        except ValueError as exc:
            raise Invalid(f"the VM's name {name!r} cannot be a pvem name ({exc}); rename it in Proxmox first",
                          field="vmid") from None
        rules = [rule_from_observed(item) for item in seen.rules]
        assert owner is not None
        with self.store.read() as session:
            vms._check_name_free(session, owner, name)
        self._mark(found.node, vmid, vm_id, seen)
        with self.store.write() as session:
            self._check_free(session, vmid, owner)
            vm = self._insert(session, vm_id, owner, vmid, seen, name, rules, management)
            audit.record(session, actor, "import_vm", vms.RESOURCE, vm.id,
                         {"vm_name": vm.name, "vmid": vmid, "node": vm.node, "spec": vms.spec_of(vm),
                          "snapshots": [snap["name"] for snap in seen.snapshots], "firewall_rules": len(rules)},
                         owner_id=owner)
        return vm_id

    def _check_free(self, session: Session, vmid: int, owner: str | None) -> None:
        if owner is None or session.get(User, owner) is None:
            raise Invalid("no such user", field="owner_id")
        existing = session.scalar(select(VirtualMachine.id).where(VirtualMachine.vmid == vmid))
        if existing is not None:
            raise Conflict(f"VM {vmid} is already managed by pvem (id {existing})")

    def _read(self, node: str, vmid: int, pool: str | None = None) -> _Observed:
        def read() -> _Observed:
            config = self.client.vm_config(node, vmid)
            pending = pending_changes(self.client.vm_pending(node, vmid))
            status = self.client.vm_status(node, vmid)
            rules, digest = self.client.firewall_rules(node, vmid)
            enabled = bool(to_int(self.client.firewall_options(node, vmid).get("enable")))
            spec = {**spec_from_observed(config, pending, status), **guest_spec_from_observed(config, pending, pool)}
            return _Observed(node, config, spec,
                             self.client.snapshots(node, vmid), rules, digest, enabled)

        observed: _Observed = self._pve(f"read VM {vmid}", read)
        if observed.config.raw.get("lock") or observed.config.raw.get("template"):
            raise Conflict(f"VM {vmid} is locked ({observed.config.raw.get('lock')}); import it once the lock goes")
        return observed

    def _mark(self, node: str, vmid: int, vm_id: str, seen: _Observed) -> None:
        """pvem's marks, and nothing else: description line + tag, snapshot descriptions, rule comments."""
        def write() -> None:
            changes = {"description": description_with_mark(vm_id, seen.config.description or ""),
                       "tags": tags_with_mark(seen.config.tags)}
            upid = self.client.update_config(node, vmid, changes, seen.config.digest)
            if upid:
                self.client.wait_task(upid, timeout=60)
            for snap in seen.snapshots:
                snap["id"] = new_id()
                self.client.set_snapshot_description(node, vmid, snap["name"],
                                                     snapshot_description(snap["id"], strip_mark(
                                                         snap.get("description")) or None))
            for item in seen.rules:
                item["id"] = new_id()
                digest = self.client.firewall_rules(node, vmid)[1]
                self.client.update_rule(node, vmid, int(item["pos"]),
                                        {"comment": rule_comment(item["id"], item.get("comment"))}, digest)

        self._pve(f"mark VM {vmid} as pvem's", write)

    def _insert(self, session: Session, vm_id: str, owner: str, vmid: int, seen: _Observed, name: str,
                rules: list[dict[str, Any]], management: str) -> VirtualMachine:
        now = utcnow()
        spec = seen.spec
        vm = VirtualMachine(
            id=vm_id, owner_id=owner, vmid=vmid, name=name, node=seen.node, cpu_cores=spec["cpu_cores"],
            memory_mb=spec["memory_mb"], disk_gb=spec["disk_gb"], power_state=spec["power_state"], labels={},
            management=management, reboot_policy=self.reboot_policy_default, snapshot_schedule=None, drift=[],
            enable_firewall=seen.firewall_enabled or not seen.rules,
            generation=1, observed_generation=0, sync_status="pending", status=spec["power_state"],
            provisioned=True, observed_node=seen.node, created_at=now, updated_at=now,
        )
        for key in guest.GUEST_FIELDS:
            if key in spec and key not in ("template", "clone_mode"):
                setattr(vm, key, guest.stored_form(key, spec[key]))
        # What Proxmox already has counts as applied: the first reconcile regenerates and resizes nothing.
        vm.applied_disks = {f"scsi{index + 1}": int(disk["size_gb"] or 0)
                            for index, disk in enumerate(spec.get("disks") or [])}
        vm.applied_cloud_init = guest.cloud_init_digest(vm)
        session.add(vm)
        session.flush()
        for snap in seen.snapshots:
            taken = datetime.fromtimestamp(snap["snaptime"], UTC) if snap.get("snaptime") else now
            session.add(VmSnapshot(id=snap["id"], vm_id=vm_id, name=str(snap["name"])[:40],
                                   description=strip_mark(snap.get("description")) or None, created_at=taken,
                                   updated_at=now, sync_status="synced", provisioned=True))
        for index, (item, rule) in enumerate(zip(seen.rules, rules, strict=True)):
            session.add(FirewallRule(id=item["id"], vm_id=vm_id, position=index, created_at=now, updated_at=now,
                                     sync_status="synced", **rule))
        session.flush()
        return vm
