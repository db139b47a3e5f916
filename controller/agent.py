"""Guest addresses: every `controller.agent_refresh_seconds`, one GET .../agent/network-get-interfaces per running
VM with its agent on, spread over the period; the answer's addresses (no loopback, no link-local) go to the
VM's `ip_addresses`. No agent, an error or a timeout is an empty list: never an error state, never a retry.
"""

from __future__ import annotations

import ipaddress
import threading
from typing import Any

from sqlalchemy import select, update

from controller.log import get_logger
from controller.proxmox.client import ProxmoxClient
from controller.proxmox.errors import ProxmoxError
from controller.store import Store
from controller.store.models import VirtualMachine, utcnow

log = get_logger("pvem.agent")
MAX_ADDRESSES = 64


def addresses(interfaces: list[dict[str, Any]]) -> list[str]:
    """The guest's addresses from qemu-guest-agent's answer: loopback and link-local left out, in order, once."""
    found: list[str] = []
    for interface in interfaces:
        for item in interface.get("ip-addresses") or ():
            text = str(item.get("ip-address") or "").split("%", 1)[0]
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                continue
            if address.is_loopback or address.is_link_local or address.is_unspecified:
                continue
            if text not in found:
                found.append(text)
    return found[:MAX_ADDRESSES]


class AgentRefresher:
    def __init__(self, store: Store, client: ProxmoxClient, period: float, stopping: threading.Event) -> None:
        self.store, self.client, self.period, self.stopping = store, client, period, stopping

    def due(self) -> list[tuple[str, str, int, list[str]]]:
        """(id, node, vmid, current addresses) of the VMs to ask: running, agent on, provisioned."""
        with self.store.read() as session:
            rows = session.execute(select(VirtualMachine.id, VirtualMachine.observed_node, VirtualMachine.node,
                                          VirtualMachine.vmid, VirtualMachine.status, VirtualMachine.agent,
                                          VirtualMachine.provisioned, VirtualMachine.ip_addresses)
                                   .where(VirtualMachine.deletion_requested.is_(False))).all()
        due, cleared = [], []
        for vm_id, observed_node, node, vmid, status, agent, provisioned, current in rows:
            if status == "running" and agent and provisioned:
                due.append((vm_id, observed_node or node, vmid, list(current or [])))
            elif current:
                cleared.append(vm_id)
        if cleared:
            self._store(cleared, [])
        return due

    def _store(self, vm_ids: list[str], found: list[str]) -> None:
        with self.store.write() as session:
            session.execute(update(VirtualMachine).where(VirtualMachine.id.in_(vm_ids))
                            .values(ip_addresses=found, ip_addresses_at=utcnow()))

    def refresh_one(self, node: str, vmid: int) -> list[str]:
        try:
            return addresses(self.client.agent_interfaces(node, vmid))
        except ProxmoxError as exc:
            log.debug("agent_unavailable", vmid=vmid, error=exc.message)
            return []

    def run_once(self, spread: bool = True) -> None:
        """Ask each due VM once; with `spread`, the requests are paced over half the period."""
        due = self.due()
        gap = min(1.0, self.period / 2 / len(due)) if spread and due else 0.0
        for index, (vm_id, node, vmid, current) in enumerate(due):
            if self.stopping.is_set():
                return
            if index and gap:
                self.stopping.wait(gap)
            found = self.refresh_one(node, vmid)
            if found != current:
                self._store([vm_id], found)
