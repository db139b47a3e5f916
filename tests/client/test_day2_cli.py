"""Day-2 client pieces without a server: plan rendering with impacts and warnings, the wide table,
`get vms --watch`, completion scripts."""

from __future__ import annotations

import argparse
import io

from api.client import day2, render
from api.client.commands import Console

PLAN = {
    "dry_run": True, "warnings": ["web-1 exists outside apply set web-tier: --adopt makes it a member"],
    "summary": {"create": 0, "update": 1, "delete": 1, "unchanged": 0, "none": 0, "live": 0, "reboot": 1,
                "stop": 0, "destructive": 1},
    "objects": [
        {"name": "web-1", "action": "update", "impact": "reboot", "changes": [
            {"field": "spec.cpu_cores", "old": 2, "new": 4, "impact": "reboot"},
            {"field": "metadata.labels", "old": {}, "new": {"a": "b"}, "impact": "none"}]},
        {"name": "old-1", "action": "delete", "impact": "destructive", "changes": []},
    ],
}


def test_the_plan_shows_each_changes_impact_the_objects_worst_and_the_warnings():
    assert render.plan(PLAN).splitlines() == [
        "~ update web-1  (needs reboot)",
        "    spec.cpu_cores: 2 -> 4  (needs reboot)",
        "    metadata.labels: {} -> {a: b}  (no guest impact)",
        "- delete old-1  (destroys data)",
        "Warning: web-1 exists outside apply set web-tier: --adopt makes it a member",
        "Plan: 0 to create, 1 to update, 1 to delete, 0 unchanged (1 needs reboot, 1 destroys data)",
    ]


VM = {"id": "1", "name": "web-1", "vmid": 101, "node": "pve1", "power_state": "running", "status": "running",
      "sync_status": "synced", "cpu_cores": 2, "memory_mb": 1024, "disk_gb": 10, "reboot_required": True,
      "management": "enforce", "labels": {"tier": "web"}, "ip_addresses": ["10.0.0.5"]}


def test_the_wide_table_adds_ips_reboot_required_management_and_labels():
    header, row = render.vm_table([VM], wide=True).splitlines()
    assert header.split()[-4:] == ["ADDRESSES", "REBOOT", "MODE", "LABELS"]
    assert row.split()[-4:] == ["10.0.0.5", "yes", "enforce", "tier=web"]


def console() -> Console:
    return Console(io.StringIO(), io.StringIO(), io.StringIO(), {})


def test_watch_prints_the_table_then_only_what_changed():
    answers = [[VM], [VM], [{**VM, "status": "stopped"}], []]
    out = console()
    args = argparse.Namespace(output="table")
    day2.watch_vms(args, out, lambda: answers.pop(0), sleep=lambda _s: None, rounds=4)
    lines = out.stdout.getvalue().splitlines()
    assert lines[0].startswith("NAME") and lines[1].startswith("web-1")
    assert len(lines) == 4 and "stopped" in lines[2] and lines[3].endswith("(deleted)")


def test_completion_scripts_name_the_commands():
    for shell, marker in (("bash", "complete -F _pvem pvem"), ("zsh", "#compdef pvem")):
        out = console()
        day2.completion(argparse.Namespace(shell=shell), out)
        text = out.stdout.getvalue()
        assert marker in text and "snapshot" in text and "import" in text
