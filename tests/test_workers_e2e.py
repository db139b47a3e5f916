"""`server.workers` (api/workers.py) as real processes: N processes answer on one port, a worker that
dies is started again, and SIGTERM stops them all."""

from __future__ import annotations

import contextlib
import http.client
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.test_serve_e2e import PVEM, SECRET, base_env, free_port, request, serve_process


def _workers(proc: subprocess.Popen[str]) -> list[psutil.Process]:
    """The live API worker processes `proc` started (not yet reaped ones excluded)."""
    try:
        children = psutil.Process(proc.pid).children()
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "api.workers" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_for(condition, seconds: float = 20) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def three_workers(tmp_path: Path, fresh_database_url: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    with serve_process(tmp_path, fresh_database_url, "--workers", "3") as (base, proc):
        try:
            yield base, proc
        finally:  # before worker 0 is killed: orphans stop by themselves, but only a second later
            for child in _workers(proc):
                with contextlib.suppress(psutil.Error):
                    child.kill()


def test_workers_answer_on_one_port_come_back_when_killed_and_stop_with_the_server(three_workers):
    base, proc = three_workers
    assert len(_workers(proc)) == 2  # the port answers only once every worker accepts on it
    status, body = request("POST", f"{base}/api/auth/login", {"email": "ops@example.com",
                                                              "password": "ops-password"})
    assert status == 200
    token = body["token"]
    for n in range(30):  # a new connection each: the kernel hands them to any of the three processes
        status, body = request("POST", f"{base}/api/vms", {"name": f"w-{n}", "cpu_cores": 1, "memory_mb": 512,
                                                           "disk_gb": 8}, token)
        assert status == 201, body
    status, body = request("GET", f"{base}/api/vms", token=token)
    assert status == 200 and len({vm["vmid"] for vm in body["data"]}) == 30

    # keep-alive clients hold their connection: the workers share them out evenly
    clients = [http.client.HTTPConnection("127.0.0.1", int(base.rsplit(":", 1)[1]), timeout=10) for _ in range(12)]
    for client in clients:
        client.request("GET", "/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        response = client.getresponse()
        response.read()
        assert response.status == 200
    port = int(base.rsplit(":", 1)[1])
    held = [sum(1 for conn in process.net_connections(kind="tcp")
                if conn.status == psutil.CONN_ESTABLISHED and conn.laddr.port == port)
            for process in [psutil.Process(proc.pid), *_workers(proc)]]
    assert sum(held) == 12 and max(held) - min(held) <= 1, held
    for client in clients:
        client.close()

    victim = _workers(proc)[0]
    victim.kill()
    assert _wait_for(lambda: len(_workers(proc)) == 2 and victim.pid not in {w.pid for w in _workers(proc)})
    for _n in range(10):
        status, _ = request("GET", f"{base}/api/auth/me", token=token)
        assert status == 200

    children = _workers(proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert _wait_for(lambda: not any(_alive(child) for child in children), 10)


def test_a_bad_worker_count_is_refused_at_start(tmp_path: Path, fresh_database_url: str) -> None:
    env = base_env(fresh_database_url, PVEM_AUTH__JWT_SECRET=SECRET)
    result = subprocess.run([PVEM, "serve", "--port", str(free_port()), "--workers", "0"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "workers" in result.stderr


def test_a_workers_nudges_reach_the_controller_of_worker_zero(settings) -> None:
    import os
    import socket
    import threading

    from api.workers import Workers, pipe_nudge

    got: list[str] = []
    arrived = threading.Event()

    def controller_nudge(vm_id: str) -> None:
        got.append(vm_id)
        if len(got) == 3:
            arrived.set()

    read_end, write_end = os.pipe()
    with socket.socket() as sock:
        relay = threading.Thread(target=Workers(settings, sock, controller_nudge)._relay, args=(read_end,))
        relay.start()
        nudge = pipe_nudge(write_end)
        for vm_id in ("vm-1", "vm-2", "vm-3"):
            nudge(vm_id)
        assert arrived.wait(10)
        os.close(write_end)  # the worker ended: the relay stops
        relay.join(10)
    assert got == ["vm-1", "vm-2", "vm-3"] and not relay.is_alive()


def test_the_least_loaded_live_worker_takes_the_next_connection() -> None:
    from api.workers import ALIVE_SECONDS, Balance

    balance = Balance()
    balance.publish(1, 3, time.monotonic())
    assert balance.may_accept(0, 3) and not balance.may_accept(0, 4)  # ahead of worker 1: let it take one
    assert balance.may_accept(1, 3)
    balance.publish(1, 0, time.monotonic() - ALIVE_SECONDS - 1)  # worker 1 went silent (dead or stopped)
    assert balance.may_accept(0, 10)
