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

    def stop(self) -> None:
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
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="fakepve", daemon=True).start()
    asyncio.run_coroutine_threadsafe(pve.start(certfile, keyfile), loop).result(30)
    return FakeCluster(host=host, port=pve.port, user=DEMO_USER, password=DEMO_PASSWORD, ca_file=certfile,
                       pve=pve, _loop=loop)
