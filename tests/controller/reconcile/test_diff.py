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
