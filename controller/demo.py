"""Demo mode's fake Proxmox: fakepve served over real HTTPS on loopback, in this process.

fakepve is AGPL and a demo/test dependency only: it is imported here, lazily, and nowhere in the
product's normal code paths. pvem talks to it over HTTPS exactly as to a real cluster.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

INSTALL_HINT = "demo mode needs the demo extra: pip install -e '.[demo]' (or run `make run`)"
DEMO_USER = "root@pam"
DEMO_PASSWORD = "demo-secret"
# Hand-made VMs that exist before pvem starts; pvem must leave them alone (they carry no pvem mark).
HAND_MADE_VMS = (
    {"vmid": 9001, "name": "legacy-db", "node": "pve1", "status": "running",
     "config": {"cores": 2, "memory": "4096", "tags": "legacy"}},
    {"vmid": 9002, "name": "router", "node": "pve2", "status": "running",
     "config": {"cores": 1, "memory": "1024"}},
)

# Templates to clone (issue 7): base- volumes (linked clones need them), a cloud-init drive as the cdrom
# volume real Proxmox stores, and the guest agent on.
TEMPLATES = (
    {"vmid": 9100, "name": "ubuntu-24.04", "node": "pve1",
     "config": {"cores": 2, "memory": "2048", "scsihw": "virtio-scsi-single", "ostype": "l26", "agent": "1",
                "scsi0": "local-lvm:base-9100-disk-0,size=4G", "ide2": "local-lvm:vm-9100-cloudinit,media=cdrom",
                "net0": "virtio=BC:24:11:91:00:00,bridge=vmbr0,firewall=1", "boot": "order=scsi0",
                "serial0": "socket", "vga": "serial0"}},
    {"vmid": 9101, "name": "debian-13", "node": "pve2",
     "config": {"cores": 1, "memory": "1024", "scsihw": "virtio-scsi-single", "ostype": "l26", "agent": "1",
                "scsi0": "local-lvm:base-9101-disk-0,size=3G", "ide2": "local-lvm:vm-9101-cloudinit,media=cdrom",
                "net0": "virtio=BC:24:11:91:01:00,bridge=vmbr0,firewall=1", "boot": "order=scsi0"}},
)
AGENT_POLL_SECONDS = 0.5


class DemoUnavailable(RuntimeError):
    pass


@dataclass
class FakeCluster:
    host: str
    port: int
    user: str
    password: str
    ca_file: str
    pve: Any
    _loop: asyncio.AbstractEventLoop
    _stopping: threading.Event | None = None

    def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        asyncio.run_coroutine_threadsafe(self.pve.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


def start_fake_cluster(host: str = "127.0.0.1", port: int = 0, time_scale: float = 0.05) -> FakeCluster:
    """Start fakepve with nodes pve1 and pve2 and a couple of hand-made VMs; tasks take short real time."""
    try:
        from fakepve import FakePve
        from fakepve.certs import make_cert
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DemoUnavailable(INSTALL_HINT) from exc

    # fakepve's aiohttp access log is the fake cluster's business, not a line in pvem's output.
    access = logging.getLogger("aiohttp.access")
    access.setLevel(logging.WARNING)
    access.propagate = False
    certfile, keyfile, _ = make_cert(tempfile.mkdtemp(prefix="pvem-demo-"), hosts=(host,))
    pve = FakePve(user=DEMO_USER, password=DEMO_PASSWORD, host=host, port=port)
    pve.time_scale = time_scale
    pve.add_node("pve2")
    for spec in HAND_MADE_VMS:
        pve.add_vm(spec["vmid"], spec["name"], node=spec["node"], status=spec["status"], config=spec["config"])
    for spec in TEMPLATES:
        pve.add_vm(spec["vmid"], spec["name"], node=spec["node"], config=spec["config"], template=True)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="fakepve", daemon=True).start()
    asyncio.run_coroutine_threadsafe(pve.start(certfile, keyfile), loop).result(30)
    stopping = threading.Event()
    threading.Thread(target=_guest_agents, args=(pve, loop, stopping), name="fakepve-agents", daemon=True).start()
    return FakeCluster(host=host, port=pve.port, user=DEMO_USER, password=DEMO_PASSWORD, ca_file=certfile,
                       pve=pve, _loop=loop, _stopping=stopping)


def guest_interfaces(vmid: int, config: dict[str, Any]) -> list[dict[str, Any]]:
    """What a demo guest's agent reports: loopback, then each NIC with its cloud-init address (a static one
    as configured, a made-up DHCP lease otherwise) and a link-local IPv6 address."""
    found: list[dict[str, Any]] = [{"name": "lo", "hardware-address": "00:00:00:00:00:00", "ip-addresses": [
        {"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8}]}]
    index = 0
    while f"net{index}" in config:
        mac = next((part.split("=", 1)[1] for part in str(config[f"net{index}"]).split(",")
                    if "=" in part and ":" in part), "BC:24:11:00:00:00")
        ipconfig = dict(part.split("=", 1) for part in str(config.get(f"ipconfig{index}", "")).split(",")
                        if "=" in part)
        ip = ipconfig.get("ip", "dhcp")
        address, prefix = (ip.split("/", 1)[0], int(ip.split("/", 1)[1])) if "/" in ip else (
            f"10.{20 + index}.{(vmid // 250) % 256}.{vmid % 250 + 2}", 24)
        found.append({"name": f"eth{index}", "hardware-address": mac.lower(), "ip-addresses": [
            {"ip-address": address, "ip-address-type": "ipv4", "prefix": prefix},
            {"ip-address": f"fe80::be24:11ff:fe00:{vmid % 65536:x}", "ip-address-type": "ipv6", "prefix": 64}]})
        index += 1
    return found


def _guest_agents(pve: Any, loop: asyncio.AbstractEventLoop, stopping: threading.Event) -> None:
    """Demo only: fakepve's clones start without a guest agent answer; give running guests with `agent` on one."""
    hand_made = {spec["vmid"] for spec in HAND_MADE_VMS}

    def update() -> None:
        for vm in list(pve.vms):
            agent_on = str(vm.config.get("agent", "0")).split(",")[0].split("=")[-1] == "1"
            if vm.vmid in hand_made or vm.template or vm.status != "running" or not agent_on:
                continue
            vm.agent = {"interfaces": guest_interfaces(vm.vmid, vm.config)}

    while not stopping.wait(AGENT_POLL_SECONDS):
        try:
            loop.call_soon_threadsafe(update)
        except RuntimeError:  # the loop has closed
            return
