"""Scale-out with real processes: two `pvem api` and two `pvem controller` on one database (PostgreSQL when
the suite runs there, else SQLite), all started at once against a fakepve subprocess; concurrent clients
write through both APIs (16 clients; `PVEM_SCALE_OUT_SECONDS`, default 8, sets how long), and halfway
through the leading controller is SIGKILLed.

Every acknowledged write is stored once, every VM is created and started exactly once in Proxmox, the
standby takes the lease within the lease time and finishes the work, and every Proxmox write has its
audit record.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import select

from controller.config import ProxmoxSettings
from controller.proxmox.client import ProxmoxClient
from controller.proxmox.marks import mark_of
from controller.store import Store
from controller.store.models import AuditLog, ControllerLease, VirtualMachine
from tests.test_crash_safety import PVEM, fake_proxmox, free_port, processes, wait_for_text  # noqa: F401
from tests.test_serve_e2e import SECRET, request, wait_healthy

# The acceptance run is 16 clients for a minute: PVEM_SCALE_OUT_SECONDS=60 (the suite's default
# is shorter to keep `make test` fast; the checks are the same).
CLIENTS = int(os.environ.get("PVEM_SCALE_OUT_CLIENTS", "16"))
VMS_PER_CLIENT = 2
WRITE_SECONDS = float(os.environ.get("PVEM_SCALE_OUT_SECONDS", "8"))
LEASE_SECONDS = 3.0
CONVERGE_DEADLINE = 90.0
ADMIN = ("ops@example.com", "ops-password")


def pvem_env(database_url: str, pve: dict[str, Any], **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PVEM_")}
    env.update({
        "PVEM_DATABASE__URL": database_url, "PVEM_AUTH__JWT_SECRET": SECRET,
        "PVEM_AUTH__ARGON2_TIME_COST": "1", "PVEM_AUTH__ARGON2_MEMORY_KIB": "64",
        "PVEM_PROXMOX__HOST": pve["host"], "PVEM_PROXMOX__PORT": str(pve["port"]),
        "PVEM_PROXMOX__USER": "root@pam", "PVEM_PROXMOX__PASSWORD": "secret", "PVEM_PROXMOX__CA_FILE": pve["cafile"],
        "PVEM_PROXMOX__DEFAULT_NODE": "pve1",
        "PVEM_CONTROLLER__POLL_INTERVAL_SECONDS": "0.2", "PVEM_CONTROLLER__LEASE_SECONDS": str(LEASE_SECONDS),
        "PVEM_CONTROLLER__LEASE_RENEW_SECONDS": "0.5", "PVEM_LOGGING__FORMAT": "json", **extra,
    })
    return env


class Writers:
    """Clients writing through both APIs; remembers what each acknowledged."""

    def __init__(self, bases: list[str], token: str) -> None:
        self.bases, self.token = bases, token
        self.lock = threading.Lock()
        self.created: dict[str, str] = {}  # vm id -> name
        self.owned: dict[int, list[str]] = defaultdict(list)  # worker -> the VMs it created
        self.spec_writes: Counter[str] = Counter()  # acknowledged generation bumps after the create
        self.restarts: Counter[str] = Counter()
        self.memory: dict[str, int] = {}
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self, worker: int) -> None:
        rng = random.Random(worker)
        serial = 0
        while not self.stop.is_set():
            base = self.bases[(worker + serial) % len(self.bases)]
            with self.lock:
                mine = list(self.owned[worker])
            if not mine or (len(mine) < VMS_PER_CLIENT and rng.random() < 0.3):
                serial += 1
                status, body = request("POST", f"{base}/api/vms", {
                    "name": f"w{worker}-{serial}", "cpu_cores": 1, "memory_mb": 512, "disk_gb": 4,
                    "power_state": "running"}, self.token)
                if status == 201:
                    with self.lock:
                        self.created[body["data"]["id"]] = body["data"]["name"]
                        self.owned[worker].append(body["data"]["id"])
                        self.memory[body["data"]["id"]] = 512
                else:
                    self.errors.append(f"create: {status} {body}")
            elif rng.random() < 0.5:
                vm_id = rng.choice(mine)
                memory = self.memory[vm_id] + 128
                status, body = request("PUT", f"{base}/api/vms/{vm_id}", {"memory_mb": memory}, self.token)
                if status == 200:
                    with self.lock:
                        self.memory[vm_id] = memory
                        self.spec_writes[vm_id] += 1
                else:
                    self.errors.append(f"update: {status} {body}")
            else:
                vm_id = rng.choice(mine)
                status, body = request("POST", f"{base}/api/vms/{vm_id}/action", {"action": "restart"}, self.token)
                if status == 200:
                    with self.lock:
                        self.spec_writes[vm_id] += 1
                        self.restarts[vm_id] += 1
                else:
                    self.errors.append(f"restart: {status} {body}")
            time.sleep(rng.uniform(0.05, 0.15))


def leader_gauge(port: int) -> float:
    """`pvem_controller_leader` from a controller's metrics port."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith("pvem_controller_leader ")))


def leader_pid(store: Store) -> tuple[int | None, int]:
    with store.read() as session:
        row = session.get(ControllerLease, "controller")
        if row is None or row.holder is None:
            return None, 0
        return int(row.holder.split(":")[1]), row.epoch


def test_two_apis_two_controllers_leader_killed_mid_work(tmp_path: Path, fresh_database_url: str,
                                                        fake_proxmox: dict[str, Any],  # noqa: F811
                                                        processes: list[subprocess.Popen[Any]]) -> None:  # noqa: F811
    ports = [free_port() for _ in range(4)]  # two APIs, then each controller's metrics port
    apis: list[subprocess.Popen[Any]] = []
    controllers: list[subprocess.Popen[Any]] = []
    logs: list[Path] = []
    # All four at once on a fresh database: the migrations lock lets every one of them start.
    for index in range(4):
        kind = "api" if index < 2 else "controller"
        # Both API replicas bootstrap the same admin at the same moment.
        extra = {"PVEM_AUTH__ADMIN_EMAIL": ADMIN[0], "PVEM_AUTH__ADMIN_PASSWORD": ADMIN[1]} if index < 2 else {}
        log = tmp_path / f"{kind}-{index}.log"
        logs.append(log)
        args = [PVEM, kind, "--port" if kind == "api" else "--metrics-port", str(ports[index])]
        with open(log, "wb") as out:
            proc = subprocess.Popen(args, cwd=tmp_path, env=pvem_env(fresh_database_url, fake_proxmox, **extra),
                                    stdout=out, stderr=subprocess.STDOUT)
        processes.append(proc)
        (apis if kind == "api" else controllers).append(proc)
    bases = [f"http://127.0.0.1:{port}" for port in ports[:2]]
    for base, proc in zip(bases, apis, strict=True):
        wait_healthy(base, proc, timeout=60)
    for proc, log in zip(controllers, logs[2:], strict=True):
        wait_for_text(log, "pvem controller running", proc, timeout=60)

    store = Store(fresh_database_url)
    try:
        status, body = request("POST", f"{bases[1]}/api/auth/login", {"email": ADMIN[0], "password": ADMIN[1]})
        assert status == 200, body
        writers = Writers(bases, body["token"])
        threads = [threading.Thread(target=writers.run, args=(n,), daemon=True) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(WRITE_SECONDS / 2)
        pid, epoch = leader_pid(store)
        by_pid = {proc.pid: proc for proc in controllers}
        assert pid in by_pid, f"the lease names {pid}, not one of the controllers {sorted(by_pid)}"
        # each controller's /metrics says whether it leads
        gauges = {proc.pid: leader_gauge(port) for proc, port in zip(controllers, ports[2:], strict=True)}
        assert gauges == {proc.pid: 1.0 if proc.pid == pid else 0.0 for proc in controllers}
        by_pid[pid].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        by_pid[pid].wait(10)
        survivor = next(proc for proc in controllers if proc.pid != pid)
        time.sleep(WRITE_SECONDS / 2)
        writers.stop.set()
        for thread in threads:
            thread.join(15)

        # The standby takes the lease within the lease time (plus the renew period it may be sleeping).
        while leader_pid(store)[0] != survivor.pid:
            assert time.monotonic() - killed_at < 2 * LEASE_SECONDS + 5, "the standby never took the lease"
            time.sleep(0.05)
        assert leader_pid(store)[1] > epoch  # a new epoch: the old leader's writes are fenced off
        while leader_gauge(ports[2 + controllers.index(survivor)]) != 1.0:  # set just after its commit
            assert time.monotonic() - killed_at < 4 * LEASE_SECONDS + 10, "the survivor's gauge never said leader"
            time.sleep(0.05)
        # an API replica says who leads (readiness details are for admins)
        # (asked until it does, within a lease period: a renewal may be late on a loaded machine)
        while True:
            status, ready = request("GET", f"{bases[0]}/api/health/ready", token=writers.token)
            assert status == 200, ready
            if f":{survivor.pid}:" in str(ready["checks"]["leader"]["leader"]):
                break
            assert time.monotonic() - killed_at < 4 * LEASE_SECONDS + 10, ready
            time.sleep(0.1)

        assert writers.errors == [], writers.errors[:5]
        assert len(writers.created) >= 10
        deadline = time.monotonic() + CONVERGE_DEADLINE
        while True:
            with store.read() as session:
                rows = {row.id: row for row in session.scalars(select(VirtualMachine))}
            pending = [row.name for row in rows.values()
                       if row.sync_status != "synced" or row.observed_generation != row.generation
                       or row.restarts_done != row.restart_requests]
            if not pending:
                break
            assert survivor.poll() is None, logs[2 + controllers.index(survivor)].read_text()[-3000:]
            assert time.monotonic() < deadline, f"not converged: {pending[:10]}"
            time.sleep(0.2)

        # Every acknowledged write stored exactly once.
        assert sorted(rows) == sorted(writers.created)
        for vm_id, row in rows.items():
            assert row.name == writers.created[vm_id]
            assert row.generation == 1 + writers.spec_writes[vm_id], row.name
            assert row.restart_requests == writers.restarts[vm_id], row.name
            assert row.memory_mb == writers.memory[vm_id], row.name

        with store.read() as session:
            intents: dict[tuple[str, int], int] = defaultdict(int)
            for entry in session.scalars(select(AuditLog).where(AuditLog.action.like("pve_%"))):
                if entry.details.get("outcome") == "started":
                    intents[(entry.action, entry.details["vmid"])] += 1
    finally:
        store.dispose()

    client = ProxmoxClient(ProxmoxSettings(host=fake_proxmox["host"], port=fake_proxmox["port"], user="root@pam",
                                           password=SecretStr("secret"), ca_file=fake_proxmox["cafile"],
                                           timeout_seconds=10))
    try:
        listed = client.list_vms()
        marks = Counter(mark_of(client.vm_config(vm.node, vm.vmid).description) for vm in listed)
        tasks = client._call(lambda api: api.nodes("pve1").tasks.get(limit=100_000))
    finally:
        client.close()
    assert marks == Counter(dict.fromkeys(rows, 1)), "every VM exists exactly once in Proxmox, and nothing else"
    per_type: dict[str, Counter[int]] = defaultdict(Counter)
    for task in tasks:
        per_type[task["type"]][int(task["id"])] += 1
    vmids = sorted(row.vmid for row in rows.values())
    assert sorted(per_type["qmcreate"]) == vmids and set(per_type["qmcreate"].values()) == {1}
    assert sorted(per_type["qmstart"]) == vmids and set(per_type["qmstart"].values()) == {1}
    # Every Proxmox write that made a task was audited (its intent recorded before it was sent).
    operations = {"qmcreate": "pve_create", "qmstart": "pve_start", "qmreboot": "pve_reboot",
                  "qmconfig": "pve_update_config"}
    for task_type, counts in per_type.items():
        if task_type in operations:
            for vmid, count in counts.items():
                assert intents[(operations[task_type], vmid)] >= count, (task_type, vmid)
