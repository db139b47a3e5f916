"""Reconciler scenarios for the guest fields (issue 7) against fakepve, named for what they prove."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest

from controller.agent import AgentRefresher
from controller.proxmox.marks import mark_of
from controller.reconcile.model import Policy
from controller.store.models import AuditLog, ClusterTemplate

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHb0F9mDQmWZsY5Y1vQ9J2dFJ0M4tqM2sLr9n3w2X4a1 ops@example"
KEY2 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDe+8 second@example"
SECRET = "s3cret-Pa55word!"
UBUNTU = 9100


def add_templates(fake: Any) -> None:
    fake.add_vm(UBUNTU, "ubuntu-24.04", config={
        "cores": 1, "memory": "1024", "scsihw": "virtio-scsi-single", "agent": "1",
        "scsi0": "local-lvm:base-9100-disk-0,size=4G", "ide2": "local-lvm:vm-9100-cloudinit,media=cdrom",
        "net0": "virtio=BC:24:11:91:00:00,bridge=vmbr0,firewall=1"}, template=True)
    fake.add_vm(9101, "bare-template", config={
        "cores": 1, "memory": "1024", "scsi0": "local-lvm:base-9101-disk-0,size=2G",
        "net0": "virtio=BC:24:11:91:01:00,bridge=vmbr0"}, template=True)


@pytest.fixture
def cloned(harness):
    add_templates(harness.fake)
    return harness


CLOUD = {"user": "ops", "password": SECRET, "ssh_keys": [KEY],
         "ip_config": [{"ipv4": "192.0.2.21/24", "gateway4": "192.0.2.1"}, {"ipv4": "dhcp", "ipv6": "auto"}],
         "nameservers": ["192.0.2.53"], "search_domain": "lab.example"}


def test_clones_the_template_then_writes_cloud_init_disks_nics_and_tags_in_one_config_write(cloned):
    vm_id = cloned.create_vm(template="ubuntu-24.04", disk_gb=8, power_state="running", cloud_init=CLOUD,
                             disks=[{"size_gb": 5}], tags=["Web", "prod"], start_on_boot=True,
                             description="web server", networks=[{"bridge": "vmbr0"}, {"bridge": "vmbr1", "vlan": 20,
                                                                                     "firewall": False}])
    mark = cloned.mark_requests()
    row = cloned.reconcile(vm_id)
    assert row.sync_status == "synced" and row.last_error is None, row.last_error
    writes = cloned.writes_since(mark)
    vmid = row.vmid
    assert ("POST", f"/api2/json/nodes/pve1/qemu/{UBUNTU}/clone") in writes
    assert [w for w in writes if w[1].endswith("/config")] == [("POST", f"/api2/json/nodes/pve1/qemu/{vmid}/config")]
    assert ("PUT", f"/api2/json/nodes/pve1/qemu/{vmid}/cloudinit") in writes
    assert ("PUT", f"/api2/json/nodes/pve1/qemu/{vmid}/resize") in writes
    order = [path.rsplit("/", 1)[1] for _method, path in writes]
    assert order.index("config") < order.index("cloudinit") < order.index("start")
    config = cloned.fake.vm(vmid).config
    assert mark_of(config["description"]) == vm_id and config["description"].startswith("web server")
    assert config["ciuser"] == "ops" and config["cipassword"] == SECRET
    assert urllib.parse.unquote(config["sshkeys"]) == KEY
    assert config["ipconfig0"] == "ip=192.0.2.21/24,gw=192.0.2.1"
    assert config["ipconfig1"] == "ip=dhcp,ip6=auto"
    assert (config["nameserver"], config["searchdomain"]) == ("192.0.2.53", "lab.example")
    assert config["scsi1"] == "local-lvm:5"
    assert set(config["tags"].split(";")) == {"pvem", "prod", "web"}
    assert str(config["onboot"]) == "1"
    assert "bridge=vmbr1" in config["net1"] and "tag=20" in config["net1"] and "firewall=0" in config["net1"]
    assert config["net0"].upper().startswith("VIRTIO=") and "BC:24:11:91:00:00" not in config["net0"].upper()
    assert cloned.fake.vm(vmid).status == "running"
    mark = cloned.mark_requests()
    cloned.reconcile(vm_id)
    assert cloned.writes_since(mark) == []  # converged: nothing more to do


def test_a_linked_clone_joins_its_pool_and_a_missing_pool_is_an_error_naming_it(cloned):
    cloned.fake.pools["team-a"] = set()
    vm_id = cloned.create_vm(template=UBUNTU, disk_gb=4, clone_mode="linked", pool="team-a")
    row = cloned.reconcile(vm_id)
    assert row.sync_status == "synced", row.last_error
    assert row.vmid in cloned.fake.pools["team-a"]
    clone = [urllib.parse.parse_qs(body.decode()) for _method, path, body in cloned.fake.requests
             if path.endswith("/clone")]
    assert clone[0]["full"] == ["0"] and "storage" not in clone[0]  # linked: no storage parameter
    other = cloned.create_vm(name="web-2", template=UBUNTU, disk_gb=4, pool="no-such-pool")
    row = cloned.reconcile(other)
    assert row.sync_status == "error" and "no-such-pool" in row.last_error
    assert cloned.fake.vm(row.vmid) is None  # nothing cloned


def test_the_vm_moves_when_its_pool_changes(cloned):
    cloned.fake.pools.update({"team-a": set(), "team-b": set()})
    vm_id = cloned.create_vm(template=UBUNTU, disk_gb=4, pool="team-a")
    vmid = cloned.reconcile(vm_id).vmid
    cloned.update_vm(vm_id, pool="team-b")
    row = cloned.reconcile(vm_id)
    assert row.sync_status == "synced", row.last_error
    assert vmid in cloned.fake.pools["team-b"] and vmid not in cloned.fake.pools["team-a"]


def test_an_unknown_template_is_an_error_naming_it(cloned):
    vm_id = cloned.create_vm(template="centos-9")
    row = cloned.reconcile(vm_id)
    assert row.sync_status == "error" and "centos-9" in row.last_error and "ubuntu-24.04" in row.last_error


def test_a_cloud_init_edit_is_applied_in_place_and_waits_for_a_reboot(cloned):
    vm_id = cloned.create_vm(template=UBUNTU, disk_gb=4, power_state="running", cloud_init=CLOUD)
    vmid = cloned.reconcile(vm_id).vmid
    cloned.update_vm(vm_id, cloud_init={"ssh_keys": [KEY, KEY2], "search_domain": None})
    mark = cloned.mark_requests()
    row = cloned.reconcile(vm_id)
    writes = cloned.writes_since(mark)
    assert not any(path.endswith(("/clone", f"/qemu/{vmid}")) for _method, path in writes)  # no re-clone, no destroy
    assert ("PUT", f"/api2/json/nodes/pve1/qemu/{vmid}/cloudinit") in writes
    fake = cloned.fake.vm(vmid)
    keys = {**fake.config, **fake.pending}["sshkeys"]
    assert urllib.parse.unquote(keys).splitlines() == [KEY, KEY2]
    assert row.sync_status == "synced" and row.reboot_required
    assert row.cloud_init == {**{k: v for k, v in CLOUD.items() if k != "search_domain"}, "ssh_keys": [KEY, KEY2]}
    cloned.action(vm_id, "restart")
    row = cloned.reconcile(vm_id)
    assert not row.reboot_required


def test_a_password_change_is_sent_once_and_never_audited_or_logged(cloned, capfd, caplog):
    caplog.set_level("DEBUG")
    vm_id = cloned.create_vm(template=UBUNTU, disk_gb=4, cloud_init=CLOUD)
    vmid = cloned.reconcile(vm_id).vmid
    cloned.update_vm(vm_id, cloud_init={"password": "another-Secret-9"})
    cloned.reconcile(vm_id)
    assert cloned.fake.vm(vmid).config["cipassword"] == "another-Secret-9"
    mark = cloned.mark_requests()
    cloned.reconcile(vm_id)
    assert cloned.writes_since(mark) == []
    with cloned.store.read() as session:
        text = " ".join(repr(record.details) for record in session.query(AuditLog))
    out, err = capfd.readouterr()
    for found in (text, out, err, caplog.text, repr(cloned.row(vm_id).observed)):
        assert SECRET not in found and "another-Secret-9" not in found


def test_tag_order_and_case_are_never_drift(cloned):
    vm_id = cloned.create_vm(template=UBUNTU, disk_gb=4, tags=["web", "Prod"])
    vmid = cloned.reconcile(vm_id).vmid
    cloned.fake.vm(vmid).config["tags"] = "Prod,PVEM web"  # re-sorted, re-cased, other separators
    mark = cloned.mark_requests()
    row = cloned.reconcile(vm_id)
    assert cloned.writes_since(mark) == [] and row.sync_status == "synced"


def test_a_generated_mac_is_observed_not_drift(cloned):
    vm_id = cloned.create_vm(template=UBUNTU, disk_gb=4, networks=[{"bridge": "vmbr0", "vlan": 10}])
    vmid = cloned.reconcile(vm_id).vmid
    net0 = cloned.fake.vm(vmid).config["net0"]
    assert "tag=10" in net0
    mark = cloned.mark_requests()
    cloned.reconcile(vm_id)
    assert cloned.writes_since(mark) == [] and cloned.fake.vm(vmid).config["net0"] == net0


def test_extra_disks_grow_and_a_removed_disk_is_detached_and_audited(cloned):
    vm_id = cloned.create_vm(template=UBUNTU, disk_gb=4, disks=[{"size_gb": 5}, {"size_gb": 6, "storage": "local-lvm"}])
    vmid = cloned.reconcile(vm_id).vmid
    cloned.update_vm(vm_id, disks=[{"size_gb": 7}])
    mark = cloned.mark_requests()
    row = cloned.reconcile(vm_id)
    writes = cloned.writes_since(mark)
    assert ("PUT", f"/api2/json/nodes/pve1/qemu/{vmid}/resize") in writes
    config = cloned.fake.vm(vmid).config
    assert "scsi2" not in config and "scsi1" in config
    assert row.applied_disks == {"scsi1": 7}
    assert "disk_detached" in cloned.audit_actions(vm_id)
    mark = cloned.mark_requests()
    cloned.reconcile(vm_id)
    assert cloned.writes_since(mark) == []


def test_a_template_without_a_cloud_init_drive_gets_one(cloned):
    vm_id = cloned.create_vm(template="bare-template", disk_gb=2, cloud_init={"user": "ops"})
    row = cloned.reconcile(vm_id)
    assert row.sync_status == "synced", row.last_error
    assert cloned.fake.vm(row.vmid).config["ide2"].startswith("local-lvm:")


def test_the_full_pass_keeps_the_template_inventory(cloned):
    cloned.reconciler.full_pass()
    with cloned.store.read() as session:
        rows = {row.vmid: row for row in session.query(ClusterTemplate)}
    assert rows[UBUNTU].name == "ubuntu-24.04" and rows[UBUNTU].disk_gb == 4 and rows[UBUNTU].has_cloud_init
    assert rows[9101].has_cloud_init is False
    mark = cloned.mark_requests()
    cloned.reconciler.full_pass()
    assert not any("/config" in path for _m, path in cloned.requests_since(mark))  # unchanged: no config reads
    cloned.fake.vms.remove(cloned.fake.vm(9101))
    cloned.reconciler.full_pass()
    with cloned.store.read() as session:
        assert {row.vmid for row in session.query(ClusterTemplate)} == {UBUNTU}


def test_guest_addresses_come_from_the_agent_without_loopback_or_link_local(cloned):
    vm_id = cloned.create_vm(template=UBUNTU, disk_gb=4, power_state="running")
    vmid = cloned.reconcile(vm_id).vmid
    refresher = AgentRefresher(cloned.store, cloned.reconciler.client, 30, cloned.reconciler.stopping)
    refresher.run_once(spread=False)
    assert cloned.row(vm_id).ip_addresses == []  # no agent answer yet: an empty list, not an error
    assert cloned.row(vm_id).sync_status == "synced"
    cloned.fake.vm(vmid).agent = {"interfaces": [
        {"name": "lo", "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
                                        {"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128}]},
        {"name": "eth0", "ip-addresses": [{"ip-address": "192.0.2.21", "ip-address-type": "ipv4", "prefix": 24},
                                          {"ip-address": "fe80::1%eth0", "ip-address-type": "ipv6", "prefix": 64},
                                          {"ip-address": "2001:db8::21", "ip-address-type": "ipv6", "prefix": 64}]}]}
    refresher.run_once(spread=False)
    assert cloned.row(vm_id).ip_addresses == ["192.0.2.21", "2001:db8::21"]
    cloned.action(vm_id, "stop")
    cloned.reconcile(vm_id)
    refresher.run_once(spread=False)
    assert cloned.row(vm_id).ip_addresses == []


def test_a_clone_interrupted_before_its_config_write_is_adopted_not_cloned_again(cloned, monkeypatch):
    vm_id = cloned.create_vm(template=UBUNTU, disk_gb=4, cloud_init={"user": "ops"})
    worker = cloned.reconciler.worker
    real = worker._after_config_write

    def crash(*_args: Any, **_kwargs: Any) -> None:
        raise KeyboardInterrupt  # stands for the controller dying: nothing after the clone ran

    monkeypatch.setattr(worker, "_do_update_config", crash)
    with pytest.raises(KeyboardInterrupt):
        cloned.reconcile(vm_id)
    monkeypatch.undo()
    assert worker._after_config_write == real
    mark = cloned.mark_requests()
    row = cloned.reconcile(vm_id)
    assert row.sync_status == "synced", row.last_error
    assert not any(path.endswith("/clone") for _m, path in cloned.writes_since(mark))
    assert cloned.fake.vm(row.vmid).config["ciuser"] == "ops"
    assert sum(1 for vm in cloned.fake.vms if mark_of(vm.config.get("description")) == vm_id) == 1


def test_auto_reboot_policy_reboots_for_a_cloud_init_change(harness_factory):
    harness = harness_factory(policy=Policy(reboot_policy="auto", shutdown_timeout=5))
    add_templates(harness.fake)
    # the VM's own reboot_policy (issue 9) is what counts; a new VM gets controller.reboot_policy by default
    vm_id = harness.create_vm(template=UBUNTU, disk_gb=4, power_state="running", cloud_init={"user": "ops"},
                              reboot_policy="auto")
    vmid = harness.reconcile(vm_id).vmid
    harness.update_vm(vm_id, cloud_init={"user": "admin"})
    mark = harness.mark_requests()
    row = harness.reconcile(vm_id)
    assert ("POST", f"/api2/json/nodes/pve1/qemu/{vmid}/status/reboot") in harness.writes_since(mark)
    assert harness.fake.vm(vmid).config["ciuser"] == "admin" and row.sync_status == "synced"


def test_a_long_clone_is_waited_for_with_the_clone_timeout_while_the_vm_shows_syncing(cloned, monkeypatch):
    vm_id = cloned.create_vm(template=UBUNTU, disk_gb=4)
    worker = cloned.reconciler.worker
    worker.task_timeout, worker.clone_timeout = 5, 3600
    client = worker.client
    real_wait = client.wait_task
    seen: list[tuple[float, str, str | None]] = []

    def watching(upid: str, timeout: float = 600, **kwargs: Any) -> None:
        if ":qmclone:" in upid:
            row = cloned.row(vm_id)
            seen.append((timeout, row.sync_status, row.last_upid))
        real_wait(upid, timeout=timeout, **kwargs)

    monkeypatch.setattr(client, "wait_task", watching)
    row = cloned.reconcile(vm_id)
    assert row.sync_status == "synced"
    assert len(seen) == 1
    timeout, status, upid = seen[0]
    assert timeout == 3600 and status == "syncing" and upid is not None and ":qmclone:" in upid


def test_a_linked_clone_of_a_template_without_base_volumes_is_an_error_not_a_retry_loop(cloned):
    cloned.fake.add_vm(9102, "no-base", config={"cores": 1, "memory": "512",
                                                "scsi0": "local-lvm:vm-9102-disk-0,size=2G"}, template=True)
    vm_id = cloned.create_vm(template="no-base", disk_gb=2, clone_mode="linked")
    row = cloned.reconcile(vm_id)
    assert row.sync_status == "error" and "Linked clone feature is not supported" in row.last_error


def test_a_regenerated_drive_on_a_running_vm_needs_a_reboot_even_without_pending_keys(cloned):
    """Real Proxmox applies cloud-init keys at once; the guest reads the drive at its next boot."""
    vm_id = cloned.create_vm(template=UBUNTU, disk_gb=4, power_state="running", cloud_init={"user": "ops"})
    vmid = cloned.reconcile(vm_id).vmid
    cloned.update_vm(vm_id, cloud_init={"user": "admin"})
    cloned.reconcile(vm_id)
    fake = cloned.fake.vm(vmid)
    fake.config.update(fake.pending)  # as real Proxmox: no pending cloud-init keys
    fake.pending.clear()
    row = cloned.reconcile(vm_id)
    assert row.reboot_required and row.observed["pending"] == ["cloud-init"]
    cloned.action(vm_id, "restart")
    assert not cloned.reconcile(vm_id).reboot_required
