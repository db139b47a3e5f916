"""ProxmoxClient when things go wrong: authentication, TLS, Proxmox's error texts, faults and task waits."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from controller.config import ProxmoxSettings
from controller.proxmox.client import ProxmoxClient
from controller.proxmox.errors import ProxmoxError, TaskFailed

from .conftest import create_vm, finish, requests_to

GIB = 1024**3


def settings_with(base: ProxmoxSettings, **changes: Any) -> ProxmoxSettings:
    return base.model_copy(update=changes)


def test_api_token_auth(fakepve: Any, pve_settings: ProxmoxSettings) -> None:
    fakepve.apitokens["root@pam!ci"] = "token-secret"
    client = ProxmoxClient(settings_with(pve_settings, password=None, token_name="ci",
                                         token_value=SecretStr("token-secret")))
    fakepve.add_vm(100, "web1")
    fakepve.revoke_tickets()  # tokens do not depend on tickets
    upid = client.start("pve1", 100)
    assert upid is not None and upid.endswith(":root@pam!ci:")
    finish(client, upid)
    assert client.task_status(upid)["tokenid"] == "ci"
    assert requests_to(fakepve, "POST", "/access/ticket") == 0

    wrong = ProxmoxClient(settings_with(pve_settings, token_name="ci", token_value=SecretStr("nope")))
    with pytest.raises(ProxmoxError, match="authentication failure") as caught:
        wrong.version()
    assert (caught.value.transient, caught.value.status) == (False, 401)


def test_ticket_is_renewed_after_a_401(fakepve: Any, client: ProxmoxClient) -> None:
    fakepve.add_vm(100, "web1")
    assert client.version() == "9.0.10"
    fakepve.revoke_tickets()
    assert [vm.vmid for vm in client.list_vms()] == [100]
    fakepve.revoke_tickets()
    finish(client, client.start("pve1", 100))  # a write (with its CSRF token) too
    assert requests_to(fakepve, "POST", "/access/ticket") == 3


def test_old_tickets_are_replaced_by_a_fresh_login(fakepve: Any, client: ProxmoxClient,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    client.version()
    # proxmoxer's own renewal (the old ticket posted as the password) is refused by fakepve: log in afresh.
    client._conn._backend.auth.renew_age = 0
    assert client.version() == "9.0.10"
    assert requests_to(fakepve, "POST", "/access/ticket") == 3  # login, refused renewal, login
    # Before proxmoxer's renewal age comes, the client logs in again by itself.
    monkeypatch.setattr("controller.proxmox.connection.RELOGIN_AFTER_SECONDS", 0.0)
    assert client.version() == "9.0.10"
    assert requests_to(fakepve, "POST", "/access/ticket") == 4


def test_a_wrong_password_is_permanent_and_tried_once(fakepve: Any, pve_settings: ProxmoxSettings) -> None:
    client = ProxmoxClient(settings_with(pve_settings, password=SecretStr("wrong")))
    with pytest.raises(ProxmoxError, match="Proxmox login failed") as caught:
        client.version()
    assert caught.value.transient is False
    assert requests_to(fakepve, "POST", "/access/ticket") == 1


@pytest.mark.parametrize(("changes", "message"), [
    ({"host": None}, "proxmox.host is not set"),
    ({"password": None}, "no Proxmox credentials"),
])
def test_unusable_settings(pve_settings: ProxmoxSettings, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ProxmoxError, match=message) as caught:
        ProxmoxClient(settings_with(pve_settings, **changes)).version()
    assert caught.value.transient is False


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verification(pve_settings: ProxmoxSettings) -> None:
    unverified = settings_with(pve_settings, ca_file=None)
    with pytest.raises(ProxmoxError, match="TLS error") as caught:
        ProxmoxClient(unverified).version()
    assert caught.value.transient is False
    with structlog.testing.capture_logs() as logs:
        assert ProxmoxClient(settings_with(unverified, verify_ssl=False)).version() == "9.0.10"
    assert any(entry["log_level"] == "warning" and "verification is off" in entry["event"] for entry in logs)


def test_http_errors_are_classified(fakepve: Any, client: ProxmoxClient) -> None:
    create_vm(client)

    def failure(call: Any) -> tuple[str, bool, int | None]:
        with pytest.raises(ProxmoxError) as caught:
            call()
        return caught.value.message, caught.value.transient, caught.value.status

    fakepve.fail("POST", "/nodes/{node}/qemu/{vmid}/status/start", 500, "VM is locked (backup)", times=1)
    assert failure(lambda: client.start("pve1", 100)) == ("VM is locked (backup)", True, 500)
    assert failure(lambda: client.update_config("pve1", 100, {"cores": 0}, None)) == (
        "Parameter verification failed: cores: value must have a minimum value of 1", False, 400)

    fakepve.lose_quorum()
    assert client.vm_status("pve1", 100)["status"] == "stopped"  # reads still work
    assert failure(lambda: client.start("pve1", 100)) == ("cluster not ready - no quorum?", True, 500)
    fakepve.regain_quorum()

    fakepve.set_node_offline("pve1")
    assert failure(lambda: client.vm_status("pve1", 100)) == ("No route to host", True, 595)
    assert client.list_vms()[0].status == "unknown"
    fakepve.set_node_offline("pve1", offline=False)

    fakepve.snapshot_lock(100, "backup")
    assert client.list_vms()[0].lock == "backup"
    assert client.vm_status("pve1", 100)["lock"] == "backup"
    assert failure(lambda: client.stop("pve1", 100)) == ("VM is locked (backup)", True, 500)
    with pytest.raises(TaskFailed, match=r"VM is locked \(backup\)") as caught:
        finish(client, client.start("pve1", 100))
    assert caught.value.transient is True
    fakepve.unlock(100)

    fakepve.users["alice@pve"] = "pw"
    fakepve.grant("alice@pve", "/vms/100", "VM.Audit")
    alice = ProxmoxClient(settings_with(client.settings, user="alice@pve", password=SecretStr("pw")))
    assert failure(lambda: alice.start("pve1", 100)) == ("Permission check failed (/vms/100, VM.PowerMgmt)", False,
                                                         403)


def test_task_errors(fakepve: Any, client: ProxmoxClient) -> None:
    create_vm(client)
    fakepve.fail("POST", "/nodes/{node}/qemu/{vmid}/status/start", error="qemu_exited_code", times=1)
    upid = client.start("pve1", 100)
    with pytest.raises(TaskFailed) as caught:
        finish(client, upid)
    assert (caught.value.message, caught.value.transient, caught.value.upid) == ("QEMU exited with code 1", False, upid)

    # Another task holds the VM's config lock: PVE gives up after its lock wait, inside our task.
    asyncio.run(fakepve.hold_config_lock(100, None))
    with pytest.raises(TaskFailed, match=r"can't lock file .* got timeout") as caught:
        finish(client, client.update_config("pve1", 100, {"cores": 4}, None))
    assert caught.value.transient is True
    fakepve.release_config_lock(100)


def test_full_storage_fails_the_create_task(fakepve: Any, client: ProxmoxClient) -> None:
    fakepve.storages["local-lvm"]["avail"] = 8 * GIB
    with pytest.raises(TaskFailed, match="No space left on device") as caught:
        create_vm(client, disk_gb=32)
    assert caught.value.transient is False  # an operator must free space or shrink the disk
    assert client.list_vms() == []  # Proxmox removes the half-made VM again
    create_vm(client, disk_gb=4)


def test_network_faults_are_transient(fakepve: Any, pve_settings: ProxmoxSettings) -> None:
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)  # every dropped connection logs a traceback
    client = ProxmoxClient(settings_with(pve_settings, timeout_seconds=0.3))
    client.version()  # logged in before the faults start
    fakepve.flaky_network(drop_rate=1.0)
    with pytest.raises(ProxmoxError, match="cannot reach Proxmox") as caught:
        client.list_vms()
    assert (caught.value.transient, caught.value.status) == (True, None)
    with pytest.raises(ProxmoxError, match="cannot reach Proxmox") as caught:
        client.start("pve1", 100)  # a write (sent on the fast path) fails the same way
    assert (caught.value.transient, caught.value.status) == (True, None)
    fakepve.flaky_network(hang_rate=1.0, hang_secs=0.6)  # real seconds at time_scale 0
    with pytest.raises(ProxmoxError, match="did not answer in time") as caught:
        client.version()
    assert caught.value.transient is True
    with pytest.raises(ProxmoxError, match="did not answer in time") as caught:
        client.start("pve1", 100)
    assert caught.value.transient is True
    fakepve.flaky_network()
    assert client.version() == "9.0.10"


def test_wait_task_rides_out_failed_polls(fakepve: Any, client: ProxmoxClient) -> None:
    fakepve.add_vm(100, "web1")
    upid = client.start("pve1", 100) or ""
    fakepve.fail("GET", "/nodes/{node}/tasks/{upid}/status", 503, "maintenance", times=2)
    finish(client, upid)
    fakepve.fail("GET", "/nodes/{node}/tasks/{upid}/status", 403, "Permission check failed (/nodes/pve1, Sys.Audit)")
    with pytest.raises(ProxmoxError, match="Permission check failed") as caught:
        finish(client, upid)
    assert caught.value.transient is False
    with pytest.raises(ProxmoxError, match="not a Proxmox task id") as caught:
        client.task_status("not-a-upid")
    assert caught.value.transient is False


@pytest.mark.fakepve(time_scale=0.01)
def test_wait_task_is_bounded_in_time(fakepve: Any, client: ProxmoxClient) -> None:
    fakepve.add_vm(100, "web1").start_secs = 30  # 0.3 s of real time
    upid = client.start("pve1", 100) or ""
    assert client.task_status(upid)["status"] == "running"
    with pytest.raises(ProxmoxError, match=r"still running after 0\.05 s") as caught:
        client.wait_task(upid, timeout=0.05, poll=0.01)
    assert caught.value.transient is True
    with pytest.raises(ProxmoxError, match="stopped waiting") as caught:
        client.wait_task(upid, poll=0.01, should_stop=lambda: True)
    assert caught.value.transient is True
    client.wait_task(upid, timeout=10, poll=0.01)
    assert client.vm_status("pve1", 100)["status"] == "running"


def test_one_login_shared_by_threads(fakepve: Any, client: ProxmoxClient) -> None:
    fakepve.add_vm(100, "web1")
    results: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(10):
                results.append(len(client.list_vms()))
        except BaseException as exc:  # collected, so the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == [] and results == [1] * 40
    assert requests_to(fakepve, "POST", "/access/ticket") == 1
