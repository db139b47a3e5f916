"""`/api/events` from a real `pvem api` process: changes written by another process reach its stream,
and SIGTERM still stops the server promptly while a stream is open."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from controller import vm_create
from controller.actor import Actor
from controller.specs import VmCreate
from controller.store import Store
from tests.events.helpers import SseClient
from tests.test_serve_e2e import PVEM, SECRET, base_env, free_port, request, wait_healthy


def test_a_pvem_api_process_streams_changes_made_elsewhere_and_stops_on_sigterm(tmp_path: Path,
                                                                                database_url: str) -> None:
    port = free_port()
    env = base_env(tmp_path, PVEM_AUTH__JWT_SECRET=SECRET, PVEM_AUTH__ADMIN_EMAIL="ops@example.com",
                   PVEM_AUTH__ADMIN_PASSWORD="ops-password", PVEM_DATABASE__URL=database_url,
                   PVEM_EVENTS__HEARTBEAT_SECONDS="0.5", PVEM_EVENTS__POLL_SECONDS="0.1")
    log = tmp_path / "pvem.log"
    with log.open("w") as output:
        proc = subprocess.Popen([PVEM, "api", "--port", str(port)], cwd=tmp_path, env=env, stdout=output,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    store = Store(database_url)
    try:
        wait_healthy(base, proc)
        status, body = request("POST", f"{base}/api/auth/login", {"email": "ops@example.com",
                                                                  "password": "ops-password"})
        assert status == 200
        client = SseClient(base, body["token"])
        assert client.status == 200 and client.next().event == "ready"
        admin = Actor(user_id=body["user"]["id"], role="admin")
        with store.write() as session:  # this test process is "the other process"
            vm = vm_create.create_vm(session, admin, VmCreate(name="from-elsewhere", cpu_cores=1, memory_mb=512,
                                                        disk_gb=8, node="pve1"), 100, 999_999)
            vm_id = vm.id
        event = client.until(lambda e: e.event == "vm" and e.data["id"] == vm_id)
        assert event.data["name"] == "from-elsewhere"
        assert "heartbeat" in client.next(comments=True).comments

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        client.close()
        # The open stream ended with the server: waitress did not have to abandon a busy thread.
        assert "still running" not in log.read_text()
    finally:
        store.dispose()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
