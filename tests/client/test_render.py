"""The plan, the VM table, describe and the colour rule, without a server."""

from __future__ import annotations

import io
import json

import yaml

from api.client import render

PLAN = {
    "dry_run": False, "apply_set": "web", "prune": True, "changed": True,
    "summary": {"create": 1, "update": 1, "delete": 1, "unchanged": 1},
    "objects": [
        {"kind": "VirtualMachine", "name": "web-1", "action": "create", "document": 0, "id": "a", "vmid": 101,
         "changes": [{"field": "spec.cpu_cores", "old": None, "new": 2}]},
        {"kind": "VirtualMachine", "name": "web-2", "action": "update", "document": 1, "id": "b", "vmid": 102,
         "changes": [{"field": "spec.memory_mb", "old": 1024, "new": 2048},
                     {"field": "spec.firewall[1]", "old": {"direction": "inbound", "action": "drop"}, "new": None},
                     {"field": "spec.snapshots[baseline]", "old": None,
                      "new": {"name": "baseline", "description": "after provisioning"}},
                     {"field": "metadata.labels", "old": {}, "new": {"tier": "web"}}]},
        {"kind": "VirtualMachine", "name": "web-3", "action": "unchanged", "document": 2, "id": "c", "vmid": 103,
         "changes": []},
        {"kind": "VirtualMachine", "name": "old-1", "action": "delete", "document": None, "id": "d", "vmid": 99,
         "changes": []},
    ],
}


def test_plan_reads_like_a_review_without_colour():
    assert render.plan(PLAN).splitlines() == [
        "+ create web-1",
        "    spec.cpu_cores: 2",
        "~ update web-2",
        "    spec.memory_mb: 1024 -> 2048",
        "    spec.firewall[1]: {direction: inbound, action: drop} -> (none)",
        '    spec.snapshots[baseline]: (none) -> {name: baseline, description: "after provisioning"}',
        "    metadata.labels: {} -> {tier: web}",
        "- delete old-1",
        "Applied: 1 created, 1 updated, 1 deleted, 1 unchanged",
    ]


def test_unchanged_objects_are_listed_only_when_verbose():
    assert "= unchanged web-3" in render.plan(PLAN, verbose=True).splitlines()
    assert "web-3" not in render.plan(PLAN)


def test_colour_marks_the_action_lines_only():
    lines = render.plan(PLAN, colour=True).splitlines()
    assert lines[0] == "\033[32m+ create web-1\033[0m"
    assert lines[2] == "\033[33m~ update web-2\033[0m"
    assert "\033[31m- delete old-1\033[0m" in lines
    assert lines[1] == "    spec.cpu_cores: 2"
    assert "\033" not in render.plan(PLAN, colour=False)


def test_summary_line_for_a_dry_run_and_for_no_changes():
    assert render.summary_line({**PLAN, "dry_run": True}) == \
        "Plan: 1 to create, 1 to update, 1 to delete, 1 unchanged"
    quiet = {"dry_run": False, "summary": {"create": 0, "update": 0, "delete": 0, "unchanged": 3}, "objects": []}
    assert render.plan(quiet) == "No changes: 3 unchanged"
    assert not render.has_changes(quiet) and render.has_changes(PLAN)


def test_summary_is_counted_from_objects_when_the_server_sends_none():
    plan = {"objects": [{"name": "a", "action": "create"}, {"name": "b", "action": "unchanged"}]}
    assert render.summary_line(plan) == "Applied: 1 created, 0 updated, 0 deleted, 1 unchanged"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color():
    assert render.colour_enabled(_Tty(), {}) is True
    assert render.colour_enabled(_Tty(), {"NO_COLOR": "1"}) is False
    assert render.colour_enabled(io.StringIO(), {}) is False


def test_values_are_compact_and_unambiguous():
    assert render.value("running") == "running"
    assert render.value("two words") == '"two words"'
    assert render.value("true") == '"true"' and render.value(True) == "true"
    assert render.value(None) == "null" and render.value("") == '""'
    assert render.value([1, {"a": "b"}]) == "[1, {a: b}]"


VMS = [
    {"name": "web-2", "vmid": 102, "node": "pve2", "power_state": "stopped", "status": "stopped",
     "sync_status": "pending", "cpu_cores": 1, "memory_mb": 512, "disk_gb": 10},
    {"name": "db", "vmid": None, "node": "pve1", "power_state": "running", "status": "unknown",
     "sync_status": "syncing", "cpu_cores": 16, "memory_mb": 65536, "disk_gb": 200},
]


def test_vm_table_has_the_columns_sorted_rows_and_aligned_cells():
    lines = render.vm_table(VMS).splitlines()
    assert lines[0].split() == ["NAME", "VMID", "NODE", "DESIRED", "STATUS", "SYNC", "CORES", "MEMORY", "DISK",
                                "ADDRESSES"]
    assert lines[1].split() == ["db", "-", "pve1", "running", "unknown", "syncing", "16", "65536", "MB", "200", "GB",
                                "-"]
    assert lines[2].startswith("web-2")
    for header in ("VMID", "SYNC", "MEMORY"):
        column = lines[0].index(header)
        assert all(line[column - 1] == " " and line[column] != " " for line in lines[1:])


def test_json_and_yaml_output_parse_back():
    assert json.loads(render.as_json(VMS)) == VMS
    assert yaml.safe_load(render.as_yaml(VMS)) == VMS


def test_describe_shows_spec_status_error_snapshots_rules_and_audit():
    vm = {**VMS[0], "id": "x", "labels": {"tier": "web"}, "apply_set": "web", "generation": 3,
          "observed_generation": 2, "last_error": "storage full", "reboot_required": True}
    text = render.describe(vm, [{"name": "baseline", "description": "d", "sync_status": "synced"}],
                           [{"position": 0, "direction": "inbound", "action": "accept", "protocol": "tcp", "port": 22,
                             "enabled": True, "sync_status": "synced"}],
                           [{"created_at": "2024-01-01T00:00:00Z", "actor": "user", "action": "create_vm",
                             "details": {"vm_name": "web-2", "via": "manifest"}}])
    assert "Labels:    tier=web" in text and "Apply set: web" in text
    assert "Generation:       3 (observed 2)" in text and "Last error:       storage full" in text
    assert "Reboot required:  yes" in text
    assert "baseline" in text and "inbound" in text
    assert "create_vm" in text and "{via: manifest}" in text


def test_template_table_and_vm_addresses():
    from api.client.render import template_table, vm_table

    text = template_table([{"vmid": 9101, "name": "debian-13", "node": "pve2", "disk_gb": 3, "has_cloud_init": False},
                           {"vmid": 9100, "name": "ubuntu-24.04", "node": "pve1", "disk_gb": 4,
                            "has_cloud_init": True}])
    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "VMID", "NODE", "DISK", "CLOUD-INIT"]
    assert lines[1].split() == ["debian-13", "9101", "pve2", "3", "GB", "no"]
    assert lines[2].split() == ["ubuntu-24.04", "9100", "pve1", "4", "GB", "yes"]
    table = vm_table([{"name": "app-1", "ip_addresses": ["192.0.2.21", "10.0.0.5"]}, {"name": "app-2"}])
    assert "ADDRESSES" in table and "192.0.2.21,10.0.0.5" in table
