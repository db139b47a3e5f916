"""Crash safety of clones with real processes: `pvem controller` killed with SIGKILL while it clones VMs from a
template (fakepve in its own process, tasks and answers that take real time). A clone interrupted at any point
is found by the mark its clone request carried and adopted: never cloned twice, never left unconfigured."""

from __future__ import annotations

import json
import random
import signal
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
from tests.test_crash_safety import HOST, controller_env, free_port, start_controller, stop, sync_states, wait_for_text

VM_COUNT = 4
KILLS = 4
SEED = 20261201
CONVERGE_DEADLINE = 90.0
TEMPLATE = {"vmid": 9100, "name": "ubuntu-24.04", "node": "pve1", "template": True, "config": {
    "cores": 1, "memory": "1024", "agent": "1", "scsi0": "local-lvm:base-9100-disk-0,size=4G",
    "ide2": "local-lvm:vm-9100-cloudinit,media=cdrom", "net0": "virtio=BC:24:11:91:00:00,bridge=vmbr0,firewall=1"}}


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            stop(proc)


@pytest.fixture
def fake_with_template(tmp_path: Path, started: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    certfile, keyfile, _der = make_cert(str(tmp_path), hosts=(HOST,))
    guests = tmp_path / "guests.json"
    guests.write_text(json.dumps({"guests": [TEMPLATE]}))
    port = free_port()
    out = tmp_path / "fakepve.out"
    with open(out, "wb") as stdout, open(tmp_path / "fakepve.err", "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "fakepve", str(guests), "--host", HOST, "--port", str(port),
                                 "--time-scale", "0.02", "--latency", "2.5", "--cert", certfile, "--key", keyfile],
                                stdout=stdout, stderr=stderr)
    started.append(proc)
    wait_for_text(out, "fakepve listening", proc)
    return {"host": HOST, "port": port, "cafile": certfile}


def cloned_fleet(database_url: str) -> list[str]:
    store = Store(database_url)
    try:
        store.upgrade()
        with store.write() as session:
            admin = users.ensure_admin(session, users.Passwords(1, 64), "ops@example.com", "ops-password")
            actor = Actor(user_id=admin.id, role="admin")
        ids = []
        for n in range(VM_COUNT):
            spec = VmCreate(name=f"clone-{n}", template="ubuntu-24.04", disk_gb=8, node="pve1",
                            power_state="running", cloud_init={"user": "ops", "password": "pw-secret"},
                            disks=[{"size_gb": 5}])
            with store.write() as session:
                ids.append(vm_create.create_vm(session, actor, spec, 100, 999_999).id)
        return ids
    finally:
        store.dispose()


def test_killing_the_controller_while_it_clones_never_clones_twice(
        tmp_path: Path, database_url: str, fake_with_template: dict[str, Any],
        started: list[subprocess.Popen[bytes]]) -> None:
    wanted = cloned_fleet(database_url)
    env = controller_env(database_url, fake_with_template)
    rng = random.Random(SEED)
    unfinished = []
    for run in range(KILLS):
        proc, log = start_controller(tmp_path, run, env, started)
        wait_for_text(log, "pvem controller running", proc)
        time.sleep(rng.uniform(0.3, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        unfinished.append(sum(1 for status, _vmid, _seen in sync_states(database_url).values() if status != "synced"))
    assert unfinished[0] > 0, unfinished  # the kills really interrupted work

    proc, log = start_controller(tmp_path, KILLS, env, started)
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

    client = ProxmoxClient(ProxmoxSettings(host=fake_with_template["host"], port=fake_with_template["port"],
                                           user="root@pam", password=SecretStr("secret"),
                                           ca_file=fake_with_template["cafile"], timeout_seconds=10))
    try:
        configs = {vm.vmid: client.vm_config(vm.node, vm.vmid) for vm in client.list_vms() if not vm.template}
    finally:
        client.close()
    per_mark = Counter(mark_of(config.description) for config in configs.values())
    assert {mark: n for mark, n in per_mark.items() if n > 1} == {}, "a VM was cloned twice"
    assert sorted(mark for mark in per_mark if mark) == sorted(wanted) and None not in per_mark
    for vm_id, (_status, vmid, _seen) in states.items():
        config = configs[vmid]
        assert mark_of(config.description) == vm_id
        assert config.raw.get("ciuser") == "ops" and config.raw.get("scsi1"), config.raw
    assert "pw-secret" not in "".join(path.read_text(errors="replace") for path in tmp_path.glob("controller-*.log"))
