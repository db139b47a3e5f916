"""ProxmoxClient against fakepve over HTTPS: VM lifecycle, config with digests, power, snapshots, firewall."""

from __future__ import annotations

from typing import Any

import pytest

from controller.proxmox.client import ProxmoxClient
from controller.proxmox.errors import ProxmoxError, TaskFailed
from controller.proxmox.marks import mark_of, rule_comment, rule_mark, snapshot_description, snapshot_mark
from controller.proxmox.normalize import ObservedVm, pending_changes

from .conftest import VM_UUID, create_vm, finish, requests_to


def test_connects_lazily_and_reads_the_version(fakepve: Any, client: ProxmoxClient) -> None:
    assert requests_to(fakepve, "POST", "/access/ticket") == 0
    assert client.version() == "9.0.10"
    assert client.version() == "9.0.10"
    assert requests_to(fakepve, "POST", "/access/ticket") == 1


def test_create_reads_back_normalised(fakepve: Any, client: ProxmoxClient) -> None:
    upid = create_vm(client)
    assert upid.startswith("UPID:pve1:") and ":qmcreate:100:" in upid

    config = client.vm_config("pve1", 100)
    assert (config.name, config.cores, config.memory_mb, config.disk_key, config.disk_gb) == ("web1", 2, 2048,
                                                                                                "scsi0", 32)
    assert config.tags == "pvem;web"
    assert mark_of(config.description) == VM_UUID
    assert config.net0 is not None and config.net0.startswith("virtio=") and "bridge=vmbr0,firewall=1" in config.net0
    assert config.onboot is None and config.digest
    assert config.raw["scsi0"] == "local-lvm:vm-100-disk-0,size=32G"
    assert (config.raw["scsihw"], config.raw["ostype"], config.raw["memory"]) == ("virtio-scsi-single", "l26", "2048")

    before = requests_to(fakepve, "GET", "/cluster/resources")
    assert client.list_vms() == [ObservedVm(vmid=100, node="pve1", name="web1", status="stopped", cores=2,
                                            memory_mb=2048, disk_gb=32, tags="pvem;web", lock=None, netin=0,
                                            netout=0, template=False, maxdisk_bytes=32 * 1024**3, uptime=0)]
    assert requests_to(fakepve, "GET", "/cluster/resources") == before + 1

    nodes = client.list_nodes()
    assert [(n["node"], n["status"]) for n in nodes] == [("pve1", "online")]
    assert set(nodes[0]) == {"node", "status", "cpu", "maxcpu", "mem", "maxmem", "disk", "maxdisk"}
    assert client.vm_status("pve1", 100)["status"] == "stopped"


def test_list_vms_leaves_containers_out(fakepve: Any, client: ProxmoxClient) -> None:
    fakepve.add_vm(100, "web1")
    fakepve.add_ct(200, "ct1")
    assert [vm.vmid for vm in client.list_vms()] == [100]


def test_create_of_a_taken_vmid_is_permanent(client: ProxmoxClient) -> None:
    create_vm(client)
    with pytest.raises(ProxmoxError, match="already exists") as caught:
        create_vm(client)
    assert caught.value.transient is False


def test_update_config_with_digest(client: ProxmoxClient) -> None:
    create_vm(client)
    digest = client.vm_config("pve1", 100).digest
    upid = client.update_config("pve1", 100, {"cores": 4, "onboot": True, "tags": "pvem,Web,db"}, digest)
    assert upid is not None and ":qmconfig:" in upid
    finish(client, upid)
    config = client.vm_config("pve1", 100)
    assert (config.cores, config.onboot, config.tags) == (4, True, "db;pvem;web")
    assert config.raw["cores"] == "4"  # Proxmox answers strings after an update

    # The stale digest is checked inside the asynchronous task, so it fails the task, not the request.
    stale = client.update_config("pve1", 100, {"cores": 8}, digest)
    assert stale is not None
    with pytest.raises(TaskFailed, match="checksum mismatch") as caught:
        finish(client, stale)
    assert caught.value.transient is True
    assert client.vm_config("pve1", 100).cores == 4

    finish(client, client.update_config("pve1", 100, {"onboot": None}, None))
    assert client.vm_config("pve1", 100).onboot is None


def test_changes_to_a_running_vm_wait_in_pending(client: ProxmoxClient) -> None:
    create_vm(client)
    finish(client, client.start("pve1", 100))
    finish(client, client.update_config("pve1", 100, {"cores": 4, "memory": 4096, "name": "web2"}, None))
    config = client.vm_config("pve1", 100)
    assert (config.cores, config.memory_mb, config.name) == (2, 2048, "web2")
    assert pending_changes(client.vm_pending("pve1", 100)) == {"cores": "4", "memory": "4096"}
    finish(client, client.reboot("pve1", 100))
    config = client.vm_config("pve1", 100)
    assert (config.cores, config.memory_mb) == (4, 4096)
    assert pending_changes(client.vm_pending("pve1", 100)) == {}


def test_power_actions(client: ProxmoxClient) -> None:
    create_vm(client)

    def state() -> tuple[str, str, str]:
        status = client.vm_status("pve1", 100)
        return status["status"], status["qmpstatus"], client.list_vms()[0].status

    finish(client, client.start("pve1", 100))
    assert state() == ("running", "running", "running")
    finish(client, client.suspend("pve1", 100))
    assert state() == ("running", "paused", "running")  # paused shows only in status/current
    finish(client, client.resume("pve1", 100))
    assert state() == ("running", "running", "running")
    finish(client, client.shutdown("pve1", 100, timeout=30, force_stop=False))
    assert state() == ("stopped", "stopped", "stopped")
    with pytest.raises(ProxmoxError, match="VM 100 not running"):
        client.shutdown("pve1", 100, timeout=30, force_stop=True)
    finish(client, client.start("pve1", 100))
    finish(client, client.stop("pve1", 100))
    assert state() == ("stopped", "stopped", "stopped")
    assert client.vm_status("pve1", 100)["lock"] is None


def test_shutdown_that_times_out_is_transient(fakepve: Any, client: ProxmoxClient) -> None:
    create_vm(client)
    finish(client, client.start("pve1", 100))
    fakepve.vm(100).shutdown_secs = 90
    with pytest.raises(TaskFailed, match="got timeout") as caught:
        finish(client, client.shutdown("pve1", 100, timeout=30, force_stop=False))
    assert caught.value.transient is True
    finish(client, client.shutdown("pve1", 100, timeout=30, force_stop=True))
    assert client.vm_status("pve1", 100)["status"] == "stopped"


def test_resize_migrate_destroy(fakepve: Any, client: ProxmoxClient) -> None:
    create_vm(client)
    resize = client.resize_disk("pve1", 100, "scsi0", 40)
    assert resize is not None
    finish(client, resize)
    assert ("PUT", "/api2/json/nodes/pve1/qemu/100/resize") in [(m, p) for m, p, _ in fakepve.requests]
    migrate = client.migrate("pve1", 100, "pve2", online=False)
    assert migrate is not None and ":migrate:" in migrate
    finish(client, migrate)

    destroy = client.destroy("pve1", 100)
    assert destroy is not None and ":qmdestroy:" in destroy
    finish(client, destroy)
    assert client.list_vms() == []
    with pytest.raises(ProxmoxError, match="does not exist"):
        client.vm_config("pve1", 100)


def test_snapshots(client: ProxmoxClient) -> None:
    create_vm(client)
    assert client.snapshots("pve1", 100) == []
    upid = client.create_snapshot("pve1", 100, "pre_upgrade", snapshot_description("snap-1", "before"))
    finish(client, upid)
    [snap] = client.snapshots("pve1", 100)
    assert (snap["name"], snapshot_mark(snap["description"]), snap["parent"]) == ("pre_upgrade", "snap-1", None)
    assert isinstance(snap["snaptime"], int)

    finish(client, client.update_config("pve1", 100, {"cores": 8}, None))
    finish(client, client.rollback_snapshot("pve1", 100, "pre_upgrade"))
    assert client.vm_config("pve1", 100).cores == 2

    with pytest.raises(TaskFailed, match="already used") as caught:
        finish(client, client.create_snapshot("pve1", 100, "pre_upgrade", None))
    assert caught.value.transient is False
    finish(client, client.delete_snapshot("pve1", 100, "pre_upgrade"))
    assert client.snapshots("pve1", 100) == []


def test_firewall_rules_and_options(fakepve: Any, client: ProxmoxClient) -> None:
    fakepve.add_vm(100, "web1")
    assert client.firewall_rules("pve1", 100) == ([], None)
    client.set_firewall_options("pve1", 100, True)
    assert client.firewall_options("pve1", 100)["enable"] == 1

    ssh = {"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "22", "source": "10.0.0.0/8", "enable": True,
           "comment": rule_comment("rule-ssh", "ssh")}
    web = {"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "443", "comment": rule_comment("rule-web", None)}
    client.add_rule("pve1", 100, ssh, None)
    _, digest = client.firewall_rules("pve1", 100)
    client.add_rule("pve1", 100, web, digest)  # each new rule lands at position 0
    rules, digest = client.firewall_rules("pve1", 100)
    assert [(r["pos"], rule_mark(r["comment"]), r["enable"]) for r in rules] == [(0, "rule-web", 0),
                                                                                 (1, "rule-ssh", 1)]
    assert {k: rules[1][k] for k in ("type", "action", "proto", "dport", "source", "dest")} == {
        "type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "22", "source": "10.0.0.0/8", "dest": None}
    assert "digest" not in rules[0] and digest

    client.update_rule("pve1", 100, 0, {**web, "enable": True, "pos": 0, "digest": "ignored"}, digest)
    with pytest.raises(ProxmoxError, match="file changed by other user") as caught:
        client.update_rule("pve1", 100, 0, {"enable": False}, digest)
    assert caught.value.transient is True

    rules, digest = client.firewall_rules("pve1", 100)
    client.move_rule("pve1", 100, 1, 0, digest)
    rules, digest = client.firewall_rules("pve1", 100)
    assert [(r["pos"], rule_mark(r["comment"]), r["enable"]) for r in rules] == [(0, "rule-ssh", 1),
                                                                                 (1, "rule-web", 1)]
    client.update_rule("pve1", 100, 0, {"source": None}, digest)
    rules, digest = client.firewall_rules("pve1", 100)
    assert rules[0]["source"] is None and rules[0]["dport"] == "22"

    client.delete_rule("pve1", 100, 1, digest)
    rules, _ = client.firewall_rules("pve1", 100)
    assert [rule_mark(r["comment"]) for r in rules] == ["rule-ssh"]
    client.set_firewall_options("pve1", 100, False)
    assert client.firewall_options("pve1", 100)["enable"] == 0

    with pytest.raises(ProxmoxError, match="action: unknown action 'ALLOW'") as caught:
        client.add_rule("pve1", 100, {"type": "in", "action": "ALLOW"}, None)
    assert (caught.value.transient, caught.value.status) == (False, 400)
