"""Crash safety with real processes: `pvem controller` killed with SIGKILL at random moments, again and again,
never leaves a duplicate or an orphan VM in Proxmox; the run that is let finish converges every VM.

fakepve runs as a separate process (real HTTPS, tasks that take time), pvem as its console script.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakepve.certs import make_cert
from pydantic import SecretStr

from controller import users, vm_create
from controller.actor import Actor
from controller.config import ProxmoxSettings
from controller.proxmox.client import ProxmoxClient
from controller.proxmox.marks import mark_of
from controller.specs import VmCreate
from controller.store import Store
from controller.store.models import VirtualMachine

PVEM = str(Path(sys.executable).with_name("pvem"))
HOST = "127.0.0.1"
VM_COUNT = 8
KILLS = 5
SEED = 20240611
CONVERGE_DEADLINE = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for_text(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in (path.read_text(errors="replace") if path.exists() else ""):
        if proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) before saying {text!r}: "
                                 f"{path.read_text(errors='replace')[-2000:]}")
        assert time.monotonic() < deadline, f"no {text!r} in {path} after {timeout} s"
        time.sleep(0.02)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every subprocess the test starts; all of them are killed at the end, whatever happened."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in started:
            stop(proc)


@pytest.fixture
def fake_proxmox(tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    certfile, keyfile, _der = make_cert(str(tmp_path), hosts=(HOST,))
    guests = tmp_path / "guests.json"
    guests.write_text(json.dumps({"guests": []}))
    port = free_port()
    out = tmp_path / "fakepve.out"
    with open(out, "wb") as stdout, open(tmp_path / "fakepve.err", "wb") as stderr:
        # time-scale 0.02 and 2.5 PVE seconds of latency per answer: tasks and requests take real time, so a
        # kill can land between a write and the record of its outcome.
        proc = subprocess.Popen([sys.executable, "-m", "fakepve", str(guests), "--host", HOST, "--port", str(port),
                                 "--time-scale", "0.02", "--latency", "2.5", "--cert", certfile, "--key", keyfile],
                                stdout=stdout, stderr=stderr)
    processes.append(proc)
    wait_for_text(out, "fakepve listening", proc)
    return {"host": HOST, "port": port, "cafile": certfile}


def desired_fleet(database_url: str) -> list[str]:
    store = Store(database_url)
    try:
        store.upgrade()
        with store.write() as session:
            admin = users.ensure_admin(session, users.Passwords(1, 64), "ops@example.com", "ops-password")
            actor = Actor(user_id=admin.id, role="admin")
        ids = []
        for n in range(VM_COUNT):
            spec = VmCreate(name=f"crash-{n}", cpu_cores=1, memory_mb=512, disk_gb=4, node="pve1",
                            power_state="running")
            with store.write() as session:
                ids.append(vm_create.create_vm(session, actor, spec, 100, 999_999).id)
        return ids
    finally:
        store.dispose()


def controller_env(database_url: str, pve: dict[str, Any]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PVEM_")}
    env.update({
        "PVEM_DATABASE__URL": database_url,
        "PVEM_PROXMOX__HOST": pve["host"], "PVEM_PROXMOX__PORT": str(pve["port"]),
        "PVEM_PROXMOX__USER": "root@pam", "PVEM_PROXMOX__PASSWORD": "secret",
        "PVEM_PROXMOX__CA_FILE": pve["cafile"],
        "PVEM_CONTROLLER__POLL_INTERVAL_SECONDS": "0.2",
        # Two VMs at a time (the default does all eight at once): the kills must land mid-work.
        "PVEM_CONTROLLER__WORKERS": "2", "PVEM_CONTROLLER__PER_NODE_WORKERS": "2",
        "PVEM_LOGGING__FORMAT": "json",
    })
    return env


def start_controller(tmp_path: Path, run: int, env: dict[str, str],
                     processes: list[subprocess.Popen[bytes]]) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / f"controller-{run}.log"
    with open(log, "wb") as out:
        # cwd: an empty directory, so no config.yaml but the environment's is read
        proc = subprocess.Popen([PVEM, "controller"], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    processes.append(proc)
    return proc, log


def sync_states(database_url: str) -> dict[str, tuple[str, int, bool]]:
    store = Store(database_url)
    try:
        with store.read() as session:
            return {row.id: (row.sync_status, row.vmid, row.observed_generation == row.generation)
                    for row in session.query(VirtualMachine)}
    finally:
        store.dispose()


def test_killing_the_controller_repeatedly_never_duplicates_or_orphans_a_vm(
        tmp_path: Path, fresh_database_url: str, fake_proxmox: dict[str, Any],
        processes: list[subprocess.Popen[bytes]]) -> None:
    database_url = fresh_database_url
    wanted = desired_fleet(database_url)
    env = controller_env(database_url, fake_proxmox)
    rng = random.Random(SEED)

    unfinished_at_kill = []
    for run in range(KILLS):
        proc, log = start_controller(tmp_path, run, env, processes)
        wait_for_text(log, "pvem controller running", proc)
        time.sleep(rng.uniform(0.3, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        states = sync_states(database_url)
        unfinished_at_kill.append(sum(1 for status, _vmid, _seen in states.values() if status != "synced"))
    # The kills really interrupted work (otherwise this test would prove nothing).
    assert unfinished_at_kill[0] > 0, unfinished_at_kill

    proc, log = start_controller(tmp_path, KILLS, env, processes)
    # Up before the SIGTERM below (the fleet may have converged during the last killed run already).
    wait_for_text(log, "pvem controller running", proc)
    deadline = time.monotonic() + CONVERGE_DEADLINE
    while True:
        states = sync_states(database_url)
        if all(status == "synced" and seen for status, _vmid, seen in states.values()):
            break
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, f"not converged after {CONVERGE_DEADLINE} s: {states}"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0

    assert sorted(states) == sorted(wanted)
    client = ProxmoxClient(ProxmoxSettings(host=fake_proxmox["host"], port=fake_proxmox["port"], user="root@pam",
                                           password=SecretStr("secret"), ca_file=fake_proxmox["cafile"],
                                           timeout_seconds=10))
    try:
        listed = client.list_vms()
        vmids = [vm.vmid for vm in listed]
        marks = {vm.vmid: mark_of(client.vm_config(vm.node, vm.vmid).description) for vm in listed}
        power = {vm.vmid: vm.status for vm in listed}
    finally:
        client.close()

    assert len(vmids) == len(set(vmids)), f"a vmid listed twice: {sorted(vmids)}"
    per_mark = Counter(marks.values())
    duplicates = {mark: count for mark, count in per_mark.items() if count > 1}
    assert duplicates == {}, f"VMs created more than once: {duplicates}"
    orphans = {vmid: mark for vmid, mark in marks.items() if mark not in states}
    assert orphans == {}, f"VMs in Proxmox without a row (or without a mark): {orphans}"
    assert sorted(per_mark) == sorted(wanted)  # every desired VM exists exactly once
    for vm_id, (_status, vmid, _seen) in states.items():
        assert marks.get(vmid) == vm_id, f"row {vm_id} points at vmid {vmid}, which is not its VM"
        assert power[vmid] == "running"
