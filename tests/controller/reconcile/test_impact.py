"""The impact rules are pure: (change, the VM as observed) -> none | live | reboot | stop | destructive."""

from __future__ import annotations

import pytest

from controller.reconcile.diff import plan
from controller.reconcile.impact import change_impact, hotplug_features, pending_needs_reboot, worst
from controller.reconcile.model import DesiredVm, ObservedVm, Policy

RUNNING = {"status": "running"}
STOPPED = {"status": "stopped"}


@pytest.mark.parametrize(("field", "old", "new", "observed", "action", "expected"), [
    ("metadata.labels", {}, {"a": "b"}, RUNNING, "update", "none"),
    ("spec.management", "enforce", "observe", RUNNING, "update", "none"),
    ("spec.snapshot_schedule", None, {"every": "1h", "keep": 2}, RUNNING, "update", "none"),
    ("spec.name", "a", "b", RUNNING, "update", "live"),
    ("spec.disk_gb", 10, 20, RUNNING, "update", "live"),
    ("spec.node", "pve1", "pve2", RUNNING, "update", "live"),
    ("spec.firewall[0].port", 22, 2222, RUNNING, "update", "live"),
    ("spec.cpu_cores", 2, 4, RUNNING, "update", "reboot"),
    ("spec.memory_mb", 1024, 2048, RUNNING, "update", "reboot"),
    ("spec.cpu_cores", 2, 4, {"status": "running", "hotplug": "network,disk,cpu"}, "update", "live"),
    ("spec.memory_mb", 1024, 2048, {"status": "running", "hotplug": "cpu,memory"}, "update", "live"),
    ("spec.cpu_cores", 2, 4, STOPPED, "update", "live"),
    ("spec.cpu_cores", 2, 4, {}, "update", "reboot"),  # never observed: assume it runs
    ("spec.power_state", "running", "stopped", RUNNING, "update", "stop"),
    ("spec.power_state", "running", "paused", RUNNING, "update", "stop"),
    ("spec.power_state", "stopped", "running", STOPPED, "update", "live"),
    ("spec.snapshots[base]", {"name": "base"}, None, RUNNING, "update", "destructive"),
    ("spec.snapshots[base]", None, {"name": "base"}, RUNNING, "update", "live"),
    ("spec.cpu_cores", None, 4, None, "create", "none"),
    ("spec.cpu_cores", 2, 4, RUNNING, "delete", "destructive"),
])
def test_change_impact(field, old, new, observed, action, expected):
    assert change_impact(field, old, new, observed, action) == expected


def test_worst_and_hotplug():
    assert worst(["live", "none", "reboot"]) == "reboot" and worst([]) == "none"
    assert worst(["stop", "destructive"]) == "destructive"
    assert hotplug_features(None) == {"network", "disk", "usb"} == hotplug_features("1")
    assert hotplug_features("0") == set()


VM = DesiredVm(id="u", vmid=100, name="web-1", node="pve1", cores=4, memory_mb=2048, disk_gb=20,
               power_state="running", provisioned=True, reboot_policy="auto")
SEEN = ObservedVm(vmid=100, node="pve1", mark="u", name="web-1", cores=4, memory_mb=2048, disk_key="scsi0",
                  disk_gb=20, status="running", pending_keys=("cores",))


def test_the_reconciler_reboots_exactly_when_the_plan_says_reboot():
    assert pending_needs_reboot(("cores",), None) == ["cores"]
    assert [action.kind for action in plan(VM, SEEN, Policy())] == ["reboot"]
    hotplugged = ObservedVm(**{**SEEN.__dict__, "hotplug": "cpu,memory"})
    assert pending_needs_reboot(("cores",), "cpu,memory") == []
    assert plan(VM, hotplugged, Policy()) == []
    never = DesiredVm(**{**VM.__dict__, "reboot_policy": "never"})
    assert plan(never, SEEN, Policy(reboot_policy="auto")) == []  # the VM's own policy wins
    default = DesiredVm(**{**VM.__dict__, "reboot_policy": None})
    assert [action.kind for action in plan(default, SEEN, Policy(reboot_policy="auto"))] == ["reboot"]
