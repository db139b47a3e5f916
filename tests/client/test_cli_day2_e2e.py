"""Day-2 work from the CLI against `pvem serve --demo`: take over the demo's hand-made VMs, diff with
impacts, apply under the reboot policy, observe-only management, scheduled snapshots, daily commands."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml

# The demo server (one for this module) and the per-test user are test_cli_e2e's fixtures.
from tests.client.test_cli_e2e import Cli, cli, one_line_error, server  # noqa: F401
from tests.test_serve_e2e import request


@pytest.fixture
def admin(server: str, cli: Cli) -> Cli:  # noqa: F811
    status, body = request("POST", f"{server}/api/auth/login", {"email": "admin@pve.local", "password": "admin123"})
    assert status == 200, body
    cli.token = body["token"]
    return cli


def ok(result: Any) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return str(result.stdout)


def until(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_import_diff_with_impacts_and_apply_under_the_reboot_policy(admin, tmp_path):
    listed = json.loads(ok(admin.authed("get", "cluster", "-o", "json")))
    assert {vm["vmid"]: vm["managed"] for vm in listed if vm["vmid"] in (9001, 9002)} == {9001: False, 9002: False}
    assert "legacy-db" in ok(admin.authed("get", "cluster"))

    out = ok(admin.authed("import", "9001", "--wait", "--timeout", "60"))
    assert "Imported VM 9001 as legacy-db" in out
    vm = admin.vms()["legacy-db"]
    assert (vm["cpu_cores"], vm["memory_mb"], vm["power_state"], vm["sync_status"]) == (2, 4096, "running", "synced")
    assert "already managed" in one_line_error(admin.authed("import", "9001"))

    exported = ok(admin.authed("export"))
    (tmp_path / "legacy.yaml").write_text(exported)
    assert admin.authed("diff", "-f", "legacy.yaml").returncode == 0  # the export is what is there
    (tmp_path / "legacy.yaml").write_text(exported.replace("cpu_cores: 2", "cpu_cores: 3"))
    result = admin.authed("diff", "-f", "legacy.yaml")
    assert result.returncode == 1
    assert "~ update legacy-db  (needs reboot)\n    spec.cpu_cores: 2 -> 3  (needs reboot)\n" in result.stdout

    out = ok(admin.authed("apply", "-f", "legacy.yaml", "--wait", "--timeout", "60"))
    assert "converged" not in out
    assert "still needs a reboot" in out and "legacy-db: pvem restart vm legacy-db" in out
    assert admin.vms()["legacy-db"]["reboot_required"] is True
    ok(admin.authed("restart", "vm", "legacy-db", "--wait", "--timeout", "60"))
    until(lambda: not admin.vms()["legacy-db"]["reboot_required"], "the reboot")

    # reboot_policy auto: pvem reboots by itself
    (tmp_path / "legacy.yaml").write_text(exported.replace("cpu_cores: 2", "cpu_cores: 4")
                                          .replace("reboot_policy: never", "reboot_policy: auto"))
    out = ok(admin.authed("apply", "-f", "legacy.yaml", "--wait", "--timeout", "90"))
    assert out.endswith("All 1 object converged\n"), out
    vm = admin.vms()["legacy-db"]
    assert vm["cpu_cores"] == 4 and vm["reboot_required"] is False
    audit = json.loads(ok(admin.authed("get", "audit", "--limit", "100", "-o", "json")))
    actions = [record["action"] for record in audit]
    assert "import_vm" in actions and "pve_reboot" in actions


def test_observe_reports_drift_and_enforce_corrects_it(admin, tmp_path):
    ok(admin.authed("import", "9002", "--observe", "--wait", "--timeout", "60"))
    doc = next(d for d in yaml.safe_load_all(ok(admin.authed("export"))) if d["metadata"]["name"] == "router")
    assert doc["spec"]["management"] == "observe"
    doc["spec"]["power_state"] = "stopped"
    (tmp_path / "router.yaml").write_text(yaml.safe_dump(doc))
    result = admin.authed("diff", "-f", "router.yaml")
    # observe: pvem will not act, so the plan promises nothing
    assert "spec.power_state: running -> stopped  (no guest impact)" in result.stdout
    ok(admin.authed("apply", "-f", "router.yaml", "--wait", "--timeout", "60"))
    vm = admin.vms()["router"]
    assert vm["status"] == "running"  # observe: pvem never writes
    assert vm["drift"] == [{"field": "power_state", "desired": "stopped", "observed": "running"}]
    assert "Drift (observe mode):" in ok(admin.authed("describe", "vm", "router"))

    doc["spec"]["management"] = "enforce"
    (tmp_path / "router.yaml").write_text(yaml.safe_dump(doc))
    # back to enforce: correcting the reported drift stops the guest, and the plan says so
    result = admin.authed("diff", "-f", "router.yaml")
    assert "~ update router  (stops the guest)\n    spec.management: observe -> enforce  (stops the guest)" \
        in result.stdout
    ok(admin.authed("apply", "-f", "router.yaml", "--wait", "--timeout", "90"))
    vm = admin.vms()["router"]
    assert vm["status"] == "stopped" and vm["drift"] == []


SCHEDULED = """\
apiVersion: pvem/v1
kind: VirtualMachine
metadata: {name: sched-1, labels: {tier: ops}}
spec:
  node: pve1
  power_state: running
  snapshot_schedule: {every: 1m, keep: 2}
"""


def test_scheduled_snapshots_and_the_daily_commands(cli):  # noqa: F811
    (cli.cwd / "sched.yaml").write_text(SCHEDULED)
    ok(cli.authed("apply", "-f", "sched.yaml", "--wait", "--timeout", "60"))
    until(lambda: "auto-" in ok(cli.authed("get", "snapshots", "vm", "sched-1")), "the first scheduled snapshot")
    snapshots = json.loads(ok(cli.authed("get", "snapshots", "vm", "sched-1", "-o", "json")))
    assert all(snap["scheduled"] and snap["name"].startswith("auto-") for snap in snapshots)
    assert cli.authed("diff", "-f", "sched.yaml").returncode == 0  # scheduled snapshots are never drift

    ok(cli.authed("snapshot", "create", "vm", "sched-1", "mine", "--wait", "--timeout", "60"))
    assert "mine" in ok(cli.authed("get", "snapshots", "vm", "sched-1"))
    ok(cli.authed("snapshot", "delete", "vm", "sched-1", "mine", "--wait", "--timeout", "60"))
    assert ok(cli.authed("get", "vms", "-o", "name")) == "sched-1\n"
    wide = ok(cli.authed("get", "vms", "-o", "wide"))
    assert "REBOOT" in wide and "tier=ops" in wide
    assert "No firewall rules" in cli.authed("get", "rules", "vm", "sched-1").stderr
    ok(cli.authed("pause", "vm", "sched-1", "--wait", "--timeout", "60"))
    assert cli.vms()["sched-1"]["status"] == "paused"
    ok(cli.authed("resume", "vm", "sched-1", "--wait", "--timeout", "60"))
    ok(cli.authed("stop", "vm", "sched-1", "--wait", "--timeout", "60"))
    assert cli.vms()["sched-1"]["status"] == "stopped"
    ok(cli.authed("delete", "vm", "sched-1", "--wait", "--timeout", "60"))
    assert cli.vms() == {}
    assert "pvem get cluster" not in one_line_error(cli.authed("get", "cluster"))  # 403 for users, one line


def test_version_and_completion(cli):  # noqa: F811
    out = ok(cli.authed("version"))
    assert out.startswith("Client: pvem ") and "Server: pvem " in out
    assert "complete -F _pvem pvem" in ok(cli("completion", "bash"))
    assert "#compdef pvem" in ok(cli("completion", "zsh"))
