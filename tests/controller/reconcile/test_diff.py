"""The diff is pure: each row is (desired, observed) -> the actions a careful operator would take."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.reconcile.diff import next_rule_step, plan, pve_rule
from controller.reconcile.model import (
    DesiredRule,
    DesiredSnapshot,
    DesiredVm,
    ObservedRule,
    ObservedSnapshot,
    ObservedVm,
    Policy,
)

VM = DesiredVm(id="vm-uuid", vmid=100, name="web-1", node="pve1", cores=2, memory_mb=2048, disk_gb=20,
               power_state="running", provisioned=True, generation=3, observed_generation=3)
SEEN = ObservedVm(vmid=100, node="pve1", mark="vm-uuid", name="web-1", cores=2, memory_mb=2048,
                  disk_key="scsi0", disk_gb=20, status="running")
POLICY = Policy()


def kinds(actions):
    return [action.kind for action in actions]


@pytest.mark.parametrize(("desired", "observed", "policy", "expected"), [
    pytest.param(VM, SEEN, POLICY, [], id="in sync: nothing to do"),
    pytest.param(replace(VM, provisioned=False), None, POLICY, ["create"], id="creates a new VM"),
    pytest.param(VM, None, POLICY, ["create"], id="recreates a vanished VM by default"),
    pytest.param(VM, None, Policy(on_missing="report"), ["report_missing"], id="reports a vanished VM"),
    pytest.param(replace(VM, provisioned=False), replace(SEEN, mark=None), POLICY, ["reassign_vmid"],
                 id="vmid taken by someone else before creation: pick another"),
    pytest.param(VM, replace(SEEN, mark=None), POLICY, ["conflict"],
                 id="vmid taken by someone else after creation: conflict, hands off"),
    pytest.param(VM, replace(SEEN, mark="other-uuid"), POLICY, ["conflict"], id="another pvem row's VM"),
    pytest.param(replace(VM, provisioned=False), SEEN, POLICY, [], id="adopts its own VM after a crash"),
    pytest.param(VM, replace(SEEN, lock="backup"), POLICY, ["wait_for_lock"], id="waits for a lock"),
    pytest.param(replace(VM, cores=4), SEEN, POLICY, ["update_config"], id="updates cores"),
    pytest.param(VM, replace(SEEN, memory_mb=1024, name="renamed"), POLICY, ["update_config"],
                 id="corrects drift in memory and name"),
    pytest.param(replace(VM, disk_gb=30), SEEN, POLICY, ["resize"], id="grows the disk"),
    pytest.param(replace(VM, disk_gb=30, applied_disk_gb=30), SEEN, POLICY, [],
                 id="does not resize again once Proxmox confirmed it"),
    pytest.param(VM, replace(SEEN, disk_gb=40), POLICY, [], id="never shrinks a disk"),
    pytest.param(replace(VM, node="pve2"), SEEN, POLICY, ["migrate"], id="migrates to the desired node"),
    pytest.param(replace(VM, node="pve2", migrated_generation=3), SEEN, POLICY, [],
                 id="does not migrate again once Proxmox confirmed it"),
    pytest.param(VM, replace(SEEN, status="stopped"), POLICY, ["start"], id="starts"),
    pytest.param(VM, replace(SEEN, status="paused"), POLICY, ["resume"], id="resumes"),
    pytest.param(replace(VM, power_state="stopped"), SEEN, POLICY, ["shutdown"], id="shuts down"),
    pytest.param(replace(VM, power_state="stopped"), replace(SEEN, status="paused"), POLICY, ["stop"],
                 id="stops a paused VM hard"),
    pytest.param(replace(VM, power_state="paused"), SEEN, POLICY, ["suspend"], id="pauses"),
    pytest.param(replace(VM, power_state="paused"), replace(SEEN, status="stopped"), POLICY, ["start"],
                 id="starts before pausing"),
    pytest.param(replace(VM, restart_pending=True), SEEN, POLICY, ["reboot"], id="honours a restart"),
    pytest.param(replace(VM, restart_pending=True), replace(SEEN, status="stopped"), POLICY, ["start"],
                 id="a start satisfies a restart"),
    pytest.param(VM, replace(SEEN, pending_keys=("cores",)), POLICY, [],
                 id="pending changes wait for a reboot under reboot_policy never"),
    pytest.param(VM, replace(SEEN, pending_keys=("cores",)), Policy(reboot_policy="auto"), ["reboot"],
                 id="reboots to apply pending changes under reboot_policy auto"),
    pytest.param(replace(VM, deleting=True), SEEN, POLICY, ["stop", "destroy"], id="deletes a running VM"),
    pytest.param(replace(VM, deleting=True), replace(SEEN, status="stopped"), POLICY, ["destroy"],
                 id="deletes a stopped VM"),
    pytest.param(replace(VM, deleting=True), None, POLICY, ["forget_vm"], id="deleting what is gone is done"),
    pytest.param(replace(VM, deleting=True), replace(SEEN, mark=None), POLICY, ["forget_vm"],
                 id="never deletes a VM without its mark"),
])
def test_plan(desired, observed, policy, expected):
    assert kinds(plan(desired, observed, policy)) == expected


SNAP = DesiredSnapshot(id="snap-uuid", name="baseline", description="before")
MINE = ObservedSnapshot(name="baseline", description="before\n\npvem:id=snap-uuid", mark="snap-uuid")


@pytest.mark.parametrize(("snapshots", "observed", "expected"), [
    pytest.param((SNAP,), (), ["snapshot_create"], id="creates a snapshot"),
    pytest.param((SNAP,), (MINE,), [], id="in sync"),
    pytest.param((replace(SNAP, deleting=True),), (MINE,), ["snapshot_delete"], id="deletes its snapshot"),
    pytest.param((replace(SNAP, deleting=True),), (), ["snapshot_forget"], id="deleting a gone snapshot"),
    pytest.param((replace(SNAP, rollback_pending=True),), (MINE,), ["snapshot_rollback"], id="rolls back"),
    pytest.param((SNAP,), (replace(MINE, mark=None),), ["snapshot_conflict"],
                 id="same name, not pvem's: conflict"),
    pytest.param((), (replace(MINE, mark=None),), [], id="leaves unmarked snapshots alone"),
    pytest.param((), (MINE,), ["snapshot_delete"], id="removes its own orphans"),
    pytest.param((replace(SNAP, description="after"),), (MINE,), ["snapshot_describe"],
                 id="sets a changed description"),
    pytest.param((SNAP,), (replace(MINE, description="edited by hand\npvem:id=snap-uuid"),), ["snapshot_describe"],
                 id="corrects description drift"),
    pytest.param((replace(SNAP, description=None),), (replace(MINE, description="pvem:id=snap-uuid"),), [],
                 id="no description is in sync with the bare mark"),
])
def test_snapshots(snapshots, observed, expected):
    assert kinds(plan(replace(VM, snapshots=snapshots), replace(SEEN, snapshots=observed), POLICY)) == expected


def rule(rule_id, position, port=22):
    return DesiredRule(id=rule_id, position=position, direction="inbound", action="accept", protocol="TCP",
                       port=port)


def seen_rule(desired, pos, mark=True, **changes):
    fields = pve_rule(desired)
    values = {"pos": pos, "type": fields["type"], "action": fields["action"], "proto": fields["proto"],
              "dport": fields["dport"], "source": None, "dest": None, "enable": True,
              "comment": fields["comment"], "mark": desired.id if mark else None}
    values.update(changes)
    return ObservedRule(**values)


A, B = rule("a", 0), rule("b", 1, port=80)
FOREIGN = ObservedRule(pos=0, type="in", action="DROP", proto=None, dport=None, source=None, dest=None,
                       enable=True, comment="hand-made", mark=None)


@pytest.mark.parametrize(("desired", "observed", "expected"), [
    pytest.param((A, B), (), ("rule_add", {"pos": 0}), id="adds the first missing rule at its position"),
    pytest.param((A, B), (seen_rule(A, 0),), ("rule_add", {"pos": 1}), id="then the next"),
    pytest.param((A, B), (seen_rule(A, 0), seen_rule(B, 1)), None, id="in sync"),
    pytest.param((A, B), (seen_rule(B, 0), seen_rule(A, 1)), ("rule_move", {"pos": 1, "moveto": 0}),
                 id="restores the order"),
    pytest.param((A,), (seen_rule(A, 0, dport="2222"),), ("rule_update", {"pos": 0}), id="corrects drift"),
    pytest.param((A,), (seen_rule(A, 0), seen_rule(B, 1)), ("rule_delete", {"pos": 1}),
                 id="deletes its rule that is no longer wanted"),
    pytest.param((), (FOREIGN,), None, id="leaves unmarked rules alone"),
    pytest.param((A,), (FOREIGN, seen_rule(A, 1)), ("rule_move", {"pos": 1, "moveto": 0}),
                 id="keeps its rules above hand-made ones"),
])
def test_rule_steps(desired, observed, expected):
    step = next_rule_step(desired, observed)
    if expected is None:
        assert step is None
    else:
        kind, params = expected
        assert step is not None and step.kind == kind
        assert {key: step.params[key] for key in params} == params


def test_firewall_is_enabled_once_rules_are_in_place():
    actions = plan(replace(VM, rules=(A,)), replace(SEEN, rules=(seen_rule(A, 0),)), POLICY)
    assert kinds(actions) == ["firewall_enable"]


# ----------------------------------------------------------- guest fields (issue 7)

from controller.proxmox.guest_config import guest_from_config  # noqa: E402
from controller.reconcile.model import DesiredGuest  # noqa: E402

GUEST_CONFIG = {"tags": "pvem;web", "description": "notes\n\npvem:id=vm-uuid", "agent": "1",
                "net0": "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1",
                "scsi1": "local-lvm:vm-100-disk-1,size=10G", "ide2": "local-lvm:vm-100-cloudinit,media=cdrom",
                "ciuser": "ops", "ipconfig0": "ip=dhcp"}
GUEST = DesiredGuest(tags=("web",), description="notes", agent=True, disks=({"size_gb": 10},),
                     applied_disks={"scsi1": 10}, networks=({"bridge": None, "model": "virtio", "vlan": None,
                                                             "firewall": True, "mac": None},),
                     cloud_init={"user": "ops", "ip_config": [{"ipv4": "dhcp"}]}, cloud_init_digest="d1",
                     applied_cloud_init="d1")
GVM = replace(VM, guest=GUEST)


def gseen(**config):
    merged = {key: value for key, value in {**GUEST_CONFIG, **config}.items() if value is not None}
    return replace(SEEN, guest=guest_from_config(merged))


def guest_plan(desired_guest, observed):
    return plan(replace(VM, guest=desired_guest), observed, POLICY)


def config_of(actions):
    return next((action.params["changes"] for action in actions if action.kind == "update_config"), {})


@pytest.mark.parametrize(("guest", "observed", "expected_changes", "expected_kinds"), [
    pytest.param(GUEST, gseen(), {}, [], id="guest fields in sync"),
    pytest.param(GUEST, gseen(tags="WEB,PVEM"), {}, [], id="tag order, case and separators are not drift"),
    pytest.param(replace(GUEST, tags=("web", "db")), gseen(), {"tags": "db;pvem;web"}, ["update_config"],
                 id="a new tag is written with pvem's own"),
    pytest.param(GUEST, gseen(tags="web"), {"tags": "pvem;web"}, ["update_config"], id="the pvem tag is kept"),
    pytest.param(GUEST, gseen(net0="virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1"), {}, [],
                 id="a MAC the spec leaves out is observed, not drift"),
    pytest.param(replace(GUEST, networks=({"bridge": "vmbr0", "model": "virtio", "vlan": 30, "firewall": True,
                                           "mac": None},)), gseen(),
                 {"net0": "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,tag=30,firewall=1"}, ["update_config"],
                 id="a VLAN change keeps the observed MAC"),
    pytest.param(replace(GUEST, networks=None), gseen(net1="e1000,bridge=vmbr9"), {}, [],
                 id="without networks, NICs are not managed"),
    pytest.param(GUEST, gseen(net1="virtio=BC:24:11:AA:BB:CD,bridge=vmbr0"), {"net1": None}, ["update_config"],
                 id="a NIC beyond the list is removed"),
    pytest.param(replace(GUEST, disks=({"size_gb": 10}, {"size_gb": 5, "storage": "fast"})), gseen(),
                 {"scsi2": "fast:5"}, ["update_config"], id="a new extra disk is attached"),
    pytest.param(replace(GUEST, disks=({"size_gb": 20},)), gseen(), {}, ["disk_resize"],
                 id="an extra disk grows"),
    pytest.param(replace(GUEST, disks=({"size_gb": 20},), applied_disks={"scsi1": 20}), gseen(), {}, [],
                 id="an extra disk is not grown again once Proxmox confirmed it"),
    pytest.param(replace(GUEST, disks=()), gseen(), {"scsi1": None}, ["update_config"],
                 id="a disk removed from the spec is detached"),
    pytest.param(replace(GUEST, disks=(), applied_disks={}), gseen(), {}, [],
                 id="a disk pvem did not attach is left alone"),
    pytest.param(replace(GUEST, cloud_init={"user": "admin", "ip_config": [{"ipv4": "dhcp"}]}), gseen(),
                 {"ciuser": "admin"}, ["update_config", "cloudinit_regenerate"],
                 id="a cloud-init edit is a config write and a regenerate, never a re-clone"),
    pytest.param(replace(GUEST, cloud_init={"user": "ops", "ip_config": [{"ipv4": "192.0.2.5/24",
                                                                          "gateway4": "192.0.2.1"}]}),
                 gseen(), {"ipconfig0": "ip=192.0.2.5/24,gw=192.0.2.1"}, ["update_config", "cloudinit_regenerate"],
                 id="a static address"),
    pytest.param(replace(GUEST, cloud_init={"user": "ops", "ip_config": [{"ipv4": "dhcp"}],
                                            "ssh_keys": ["ssh-ed25519 AAAAC3Nza k"]}), gseen(),
                 {"sshkeys": "ssh-ed25519%20AAAAC3Nza%20k"}, ["update_config", "cloudinit_regenerate"],
                 id="ssh keys are URL-encoded"),
    pytest.param(replace(GUEST, password="pw", cloud_init_digest="d2"), gseen(), {"cipassword": "pw"},
                 ["update_config", "cloudinit_regenerate"], id="a new password is sent once its digest moved"),
    pytest.param(replace(GUEST, password="pw"), gseen(cipassword="$5$hash"), {}, [],
                 id="a password already applied is not sent again (Proxmox keeps only a hash)"),
    pytest.param(GUEST, gseen(ide2=None), {"ide2": "local-lvm:cloudinit"},
                 ["update_config", "cloudinit_regenerate"], id="a missing cloud-init drive is added"),
    pytest.param(replace(GUEST, cloud_init=None), gseen(ciuser="someone"), {}, [],
                 id="without cloud_init, cloud-init keys are not managed"),
    pytest.param(replace(GUEST, description="new text"), gseen(),
                 {"description": "new text\n\npvem:id=vm-uuid"}, ["update_config"],
                 id="the description keeps pvem's mark beside the text"),
    pytest.param(replace(GUEST, start_on_boot=True, agent=False), gseen(), {"onboot": True, "agent": "0"},
                 ["update_config"], id="onboot and agent"),
    pytest.param(GUEST, gseen(agent="enabled=1,fstrim_cloned_disks=1"), {}, [],
                 id="an agent property string counts as on"),
    pytest.param(replace(GUEST, pool="team-b"), replace(gseen(), pool="team-a"), {}, ["pool_move"],
                 id="the VM moves to its pool"),
    pytest.param(replace(GUEST, pool=None), replace(gseen(), pool="team-a"), {}, [],
                 id="without pool, membership is not managed"),
])
def test_guest_diff(guest, observed, expected_changes, expected_kinds):
    actions = guest_plan(guest, observed)
    assert config_of(actions) == expected_changes
    assert kinds(actions) == expected_kinds
