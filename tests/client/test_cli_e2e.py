"""The pvem CLI as a subprocess against `pvem serve --demo` (fake Proxmox in-process) over real HTTP.

One server for the module; every test registers its own user, so no test sees another's VMs.
Every wait is bounded: subprocess timeouts, `--timeout` on --wait, the server start-up deadline.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.test_serve_e2e import PVEM, demo_server, free_port, request

WEB = """\
apiVersion: pvem/v1
kind: VirtualMachine
metadata:
  name: web-1
  labels: {tier: web}
spec:
  node: pve1
  cpu_cores: 2
  memory_mb: 1024
  disk_gb: 10
  power_state: running
  snapshots:
    - {name: baseline, description: "after provisioning"}
  firewall:
    - {direction: inbound, action: accept, protocol: tcp, port: 22, source: 10.0.0.0/8}
---
apiVersion: pvem/v1
kind: VirtualMachine
metadata:
  name: db-1
  labels: {tier: db}
spec:
  node: pve2
  memory_mb: 512
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("server")
    with demo_server(home, XDG_CONFIG_HOME=str(home / "config"), PVEM_CONTROLLER__AGENT_REFRESH_SECONDS="1") as base:
        yield base


@dataclass
class Cli:
    """A fresh user and a clean client environment (own config dir, no PVEM_* from outside)."""

    server: str
    email: str
    password: str
    token: str
    env: dict[str, str]
    cwd: Path

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 90,
                 **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PVEM, *args], input=stdin if stdin is not None else "", capture_output=True,
                              text=True, cwd=self.cwd, env={**self.env, **env}, timeout=timeout)

    def authed(self, *args: str, stdin: str | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return self(*args, stdin=stdin, timeout=timeout, PVEM_SERVER=self.server, PVEM_TOKEN=self.token)

    def vms(self) -> dict[str, dict]:
        result = self.authed("get", "vms", "-o", "json")
        assert result.returncode == 0, result.stderr
        return {vm["name"]: vm for vm in json.loads(result.stdout)}


@pytest.fixture
def cli(server: str, tmp_path: Path) -> Cli:
    suffix = uuid.uuid4().hex[:10]
    email, password = f"e2e-{suffix}@example.com", "e2e-password-1"
    status, body = request("POST", f"{server}/api/auth/register",
                           {"username": f"e2e{suffix}", "email": email, "password": password})
    assert status == 201, body
    env = {key: value for key, value in os.environ.items() if not key.startswith("PVEM_") and key != "NO_COLOR"}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    (tmp_path / "web.yaml").write_text(WEB)
    return Cli(server, email, password, body["token"], env, tmp_path)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.stderr.startswith("pvem: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr.strip()


def test_login_stores_credentials_that_later_commands_use_and_logout_forgets_them(cli):
    result = cli("login", "--server", f"{cli.server}/api/", "--email", cli.email, "--password-stdin",
                 stdin=cli.password + "\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Logged in to {cli.server} as {cli.email}\n"
    stored = cli.cwd / "config" / "pvem" / "credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    assert json.loads(stored.read_text())["server"] == cli.server

    assert cli("apply", "-f", "web.yaml").returncode == 0  # no --server, no token: the stored login
    result = cli("get", "vms", "-o", "json")
    assert result.returncode == 0 and sorted(vm["name"] for vm in json.loads(result.stdout)) == ["db-1", "web-1"]

    assert cli("logout").returncode == 0 and not stored.exists()
    result = cli("get", "vms")
    assert result.returncode == 3 and "not logged in" in one_line_error(result)

    result = cli("login", "--server", cli.server, "--token", cli.token)  # a pipeline's token, checked first
    assert result.returncode == 0 and result.stdout == f"Logged in to {cli.server} as {cli.email}\n"
    assert cli("get", "vms").returncode == 0
    result = cli("login", "--server", cli.server, "--token", "not-a-token")
    assert result.returncode == 3 and json.loads(stored.read_text())["token"] == cli.token


def test_a_wrong_password_is_exit_3_and_stores_nothing(cli):
    result = cli("login", "--server", cli.server, "--email", cli.email, "--password-stdin", stdin="wrong\n")
    assert result.returncode == 3 and "login to" in one_line_error(result)
    assert not (cli.cwd / "config" / "pvem" / "credentials.json").exists()


def test_environment_gives_server_and_token_without_any_login(cli):
    result = cli("get", "vms", "-o", "json", PVEM_SERVER=f"{cli.server}/", PVEM_TOKEN=cli.token)
    assert result.returncode == 0 and json.loads(result.stdout) == []
    result = cli("get", "vms", "--token", "not-a-token", PVEM_SERVER=cli.server, PVEM_TOKEN=cli.token)
    assert result.returncode == 3  # the flag wins over the environment


def test_apply_is_idempotent_and_diff_exit_codes_follow_the_changes(cli):
    result = cli.authed("diff", "-f", "web.yaml")
    assert result.returncode == 1 and "+ create web-1" in result.stdout and "+ create db-1" in result.stdout
    assert cli.vms() == {}  # a diff writes nothing

    result = cli.authed("apply", "-f", "web.yaml")
    assert result.returncode == 0, result.stderr
    assert "+ create web-1\n" in result.stdout and "    spec.cpu_cores: 2\n" in result.stdout
    assert result.stdout.endswith("Applied: 2 created, 0 updated, 0 deleted, 0 unchanged\n")

    result = cli.authed("apply", "-f", "web.yaml")
    assert result.returncode == 0 and result.stdout == "No changes: 2 unchanged\n"
    assert cli.authed("diff", "-f", "web.yaml").returncode == 0

    (cli.cwd / "web.yaml").write_text(WEB.replace("memory_mb: 1024", "memory_mb: 2048"))
    result = cli.authed("diff", "-f", str(cli.cwd))
    assert result.returncode == 1
    assert "~ update web-1  (needs reboot)\n    spec.memory_mb: 1024 -> 2048  (needs reboot)\n" in result.stdout
    assert result.stdout.endswith("Plan: 0 to create, 1 to update, 0 to delete, 1 unchanged (1 needs reboot)\n")
    assert "\033[" not in result.stdout  # not a terminal: no colour


def test_get_prints_table_json_and_yaml(cli):
    assert cli.authed("apply", "-f", "web.yaml").returncode == 0
    as_json = json.loads(cli.authed("get", "vms", "-o", "json").stdout)
    as_yaml = yaml.safe_load(cli.authed("get", "vms", "-o", "yaml").stdout)
    assert [vm["name"] for vm in as_yaml] == [vm["name"] for vm in as_json]
    assert {vm["name"]: (vm["cpu_cores"], vm["memory_mb"], vm["node"], vm["labels"]) for vm in as_json} == {
        "web-1": (2, 1024, "pve1", {"tier": "web"}), "db-1": (1, 512, "pve2", {"tier": "db"})}

    lines = cli.authed("get", "vms").stdout.splitlines()
    assert lines[0].split() == ["NAME", "VMID", "NODE", "DESIRED", "STATUS", "SYNC", "CORES", "MEMORY", "DISK",
                                "ADDRESSES"]
    assert [line.split()[0] for line in lines[1:]] == ["db-1", "web-1"]
    web = lines[2].split()
    assert (web[2], web[3], web[6], web[7]) == ("pve1", "running", "2", "1024")

    selected = json.loads(cli.authed("get", "vms", "-l", "tier=web", "-o", "json").stdout)
    assert [vm["name"] for vm in selected] == ["web-1"]
    one = json.loads(cli.authed("get", "vm", "db-1", "-o", "json").stdout)
    assert one["name"] == "db-1" and one["node"] == "pve2"
    result = cli.authed("get", "vm", "nope")
    assert result.returncode == 3 and "vm nope not found" in one_line_error(result)


def test_describe_shows_spec_status_snapshots_firewall_and_audit(cli):
    assert cli.authed("apply", "-f", "web.yaml", "--apply-set", "web").returncode == 0
    result = cli.authed("describe", "vm", "web-1")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for expected in ("Name:      web-1", "Labels:    tier=web", "Apply set: web", "CPU cores:   2",
                     "Memory:      1024 MB", "Power state: running", "Sync:", "Last error:", "baseline",
                     "after provisioning", "inbound", "10.0.0.0/8", "Recent audit:", "create_vm"):
        assert expected in text, expected


def test_export_round_trips_through_apply(cli):
    assert cli.authed("apply", "-f", "web.yaml").returncode == 0
    exported = cli.authed("export")
    assert exported.returncode == 0
    assert [doc["metadata"]["name"] for doc in yaml.safe_load_all(exported.stdout) if doc] == ["db-1", "web-1"]
    result = cli.authed("apply", "-f", "-", stdin=exported.stdout)
    assert result.returncode == 0 and result.stdout == "No changes: 2 unchanged\n", result.stderr

    exported = cli.authed("export", "-o", "json", "-l", "tier=db")
    assert [doc["metadata"]["name"] for doc in json.loads(exported.stdout)] == ["db-1"]
    result = cli.authed("diff", "-f", "-", stdin=exported.stdout)
    assert result.returncode == 0 and result.stdout == "No changes: 1 unchanged\n"


def test_delete_by_manifest_skips_names_not_found(cli):
    assert cli.authed("apply", "-f", "web.yaml").returncode == 0
    extra = WEB + "---\napiVersion: pvem/v1\nkind: VirtualMachine\nmetadata: {name: never-made}\n"
    result = cli.authed("delete", "-f", "-", "--wait", "--timeout", "60", stdin=extra)
    assert result.returncode == 0, result.stderr
    assert "- delete web-1\n" in result.stdout and "never-made: not found (skipped)\n" in result.stdout
    assert "web-1: deleting -> deleted\n" in result.stdout
    assert cli.vms() == {}


def test_apply_wait_follows_the_fake_proxmox_until_synced(cli):
    result = cli.authed("apply", "-f", "web.yaml", "--wait", "--timeout", "60")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "web-1: " in result.stdout and result.stdout.endswith("All 2 objects converged\n")
    vms = cli.vms()
    assert {vm["sync_status"] for vm in vms.values()} == {"synced"}
    assert vms["web-1"]["status"] == "running"
    assert all(vm["observed_generation"] >= vm["generation"] for vm in vms.values())

    (cli.cwd / "web.yaml").write_text(WEB.replace("cpu_cores: 2", "cpu_cores: 3"))
    result = cli.authed("apply", "-f", "web.yaml", "--wait", "--timeout", "60")
    assert result.returncode == 0, result.stdout + result.stderr
    vm = cli.vms()["web-1"]
    assert vm["cpu_cores"] == 3 and vm["sync_status"] == "synced" and vm["observed_generation"] == vm["generation"]


def test_an_unknown_node_is_refused_at_plan_time_naming_the_known_nodes(cli):
    (cli.cwd / "typo.yaml").write_text(WEB.split("---")[0].replace("node: pve1", "node: pve9"))
    result = cli.authed("apply", "-f", "typo.yaml", "--wait", "--timeout", "60")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "node 'pve9' is not in the Proxmox cluster (nodes: pve1, pve2)" in one_line_error(result)
    assert "web-1" not in cli.vms()


def test_wait_timing_out_is_exit_4(cli):
    result = cli.authed("apply", "-f", "web.yaml", "--wait", "--timeout", "0.001")
    assert result.returncode == 4
    assert one_line_error(result).startswith("pvem: timed out after 0.001s waiting for ")


def test_prune_deletes_only_what_the_apply_set_created_and_the_manifest_dropped(cli):
    status, _ = request("POST", f"{cli.server}/api/vms", {"name": "by-hand", "node": "pve1"}, cli.token)
    assert status == 201
    assert cli.authed("apply", "-f", "web.yaml", "--apply-set", "lab").returncode == 0
    only_web = WEB.split("---\n")[0]
    result = cli.authed("apply", "-f", "-", "--apply-set", "lab", "--prune", "--wait", "--timeout", "60",
                        stdin=only_web)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "- delete db-1  (destroys data)\n" in result.stdout and "1 deleted" in result.stdout
    assert "db-1: deleting -> deleted\n" in result.stdout or "db-1: deleted\n" in result.stdout
    assert sorted(cli.vms()) == ["by-hand", "web-1"]

    result = cli.authed("apply", "-f", "-", "--prune", stdin=only_web)
    assert result.returncode == 2 and "--prune needs --apply-set" in one_line_error(result)


def test_an_invalid_manifest_is_exit_2_naming_file_and_field_and_applies_nothing(cli):
    (cli.cwd / "bad.yaml").write_text(WEB.replace("memory_mb: 512", "memory_mb: 512\n  cpu_cores: 1000"))
    result = cli.authed("apply", "-f", "bad.yaml")
    assert result.returncode == 2
    line = one_line_error(result)
    assert line.startswith("pvem: bad.yaml: document 1 (db-1, line ")
    assert "spec.cpu_cores: " in line and "512" in line
    assert cli.vms() == {}  # all or nothing: web-1 was valid but not created

    (cli.cwd / "broken.yaml").write_text("apiVersion: pvem/v1\nmetadata:\n  name: [oops\n")
    result = cli.authed("apply", "-f", "broken.yaml")
    assert result.returncode == 2 and one_line_error(result).startswith("pvem: broken.yaml: document 0, line ")


def test_an_unreachable_server_and_a_rejected_token_are_exit_3(cli):
    port = free_port()
    result = cli("get", "vms", "--server", f"http://127.0.0.1:{port}", "--token", cli.token)
    assert result.returncode == 3
    assert one_line_error(result) == f"pvem: cannot reach http://127.0.0.1:{port}: Connection refused"

    result = cli("apply", "-f", "web.yaml", "--server", cli.server, "--token", "not-a-token")
    assert result.returncode == 3 and "rejected the credentials" in one_line_error(result)


def test_login_with_an_api_token_and_its_scope_holds(cli):
    status, body = request("POST", f"{cli.server}/api/tokens", {"name": "pipeline", "scope": "read"}, token=cli.token)
    assert status == 201, body
    read_token = body["data"]["token"]
    assert read_token.startswith("pvem_")
    result = cli("login", "--server", cli.server, "--token", read_token)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Logged in to {cli.server} as {cli.email}\n"
    result = cli("get", "vms", "-o", "json")  # the stored API token reads
    assert result.returncode == 0 and json.loads(result.stdout) == [], result.stderr
    result = cli("apply", "-f", "web.yaml")  # ... and may not write
    assert result.returncode == 3 and "read" in one_line_error(result)
    status, body = request("POST", f"{cli.server}/api/tokens", {"name": "child"}, token=read_token)
    assert status == 403, body

def test_cloud_vms_example_deploys_clones_whose_addresses_get_vms_shows(cli):
    """Issue 7's 'done when': apply the example with --wait against the demo, see the guests' addresses in
    `pvem get vms`, then re-apply and apply the export: nothing changes."""
    example = Path(__file__).parent.parent.parent / "manifests" / "cloud-vms.yaml"
    templates = cli.authed("get", "templates")
    assert templates.returncode == 0 and "ubuntu-24.04" in templates.stdout and "debian-13" in templates.stdout
    applied = cli.authed("apply", "-f", str(example), "--apply-set", "cloud", "--wait", "--timeout", "60")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    deadline = time.monotonic() + 30
    while True:
        found = cli.vms()
        if all(vm["ip_addresses"] for vm in found.values()):
            break
        assert time.monotonic() < deadline, found
        time.sleep(0.5)
    assert "192.0.2.21" in found["app-1"]["ip_addresses"] and "192.0.2.22" in found["app-2"]["ip_addresses"]
    assert all(vm["template"] == "ubuntu-24.04" and vm["status"] == "running" for vm in found.values())
    assert "192.0.2.21" in cli.authed("get", "vms").stdout
    again = cli.authed("apply", "-f", str(example), "--apply-set", "cloud")
    assert again.returncode == 0 and "No changes: 2 unchanged" in again.stdout
    exported = cli.authed("export", "--apply-set", "cloud")
    assert exported.returncode == 0
    reapplied = cli.authed("apply", "-f", "-", "--apply-set", "cloud", stdin=exported.stdout)
    assert reapplied.returncode == 0 and "No changes: 2 unchanged" in reapplied.stdout, reapplied.stdout
