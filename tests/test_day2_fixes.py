"""Fixes from trying pvem as a new user: a busy port, `db upgrade --config`, one-line configuration and
usage errors, `diff --help`, the 429 wording."""

from __future__ import annotations

import socket
import subprocess

import pytest

from api import cli
from controller.errors import Throttled
from tests.test_serve_e2e import PVEM, SECRET, base_env


def test_a_busy_port_is_one_line_and_exit_2_before_the_database_is_touched(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        proc = subprocess.run([PVEM, "serve", "--port", str(port)], cwd=tmp_path, capture_output=True, text=True,
                              env=base_env(tmp_path, PVEM_AUTH__JWT_SECRET=SECRET), timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"pvem: cannot listen on 127.0.0.1:{port}: the port is already in use")
    assert proc.stderr.count("\n") == 1 and proc.stdout == ""
    assert not (tmp_path / "pvem.db").exists()


def test_db_upgrade_takes_config_after_the_action(tmp_path):
    config = tmp_path / "pvem.yaml"
    config.write_text(f"database:\n  url: sqlite:///{tmp_path}/via-config.db\n")
    env = base_env(tmp_path)
    env.pop("PVEM_DATABASE__URL")
    proc = subprocess.run([PVEM, "db", "upgrade", "--config", str(config)], cwd=tmp_path, capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "via-config.db").exists()


def test_configuration_errors_are_one_line_without_pydantic_class_names_or_urls(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("controller:\n  workers: zero\n  bogus: 1\n")
    proc = subprocess.run([PVEM, "db", "upgrade", "--config", str(config)], cwd=tmp_path, capture_output=True,
                          text=True, env=base_env(tmp_path), timeout=30)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"pvem: invalid configuration in {config}: controller.workers: ")
    assert "controller.bogus: unknown key" in proc.stderr
    assert "http" not in proc.stderr and "_FileSettings" not in proc.stderr and "validation error" not in proc.stderr


@pytest.mark.parametrize(("argv", "start"), [
    (["serve", "--bogus"], "pvem: serve: unrecognized arguments: --bogus"),
    (["frob"], "pvem: argument COMMAND: invalid choice: 'frob'"),
    (["start", "vms"], "pvem: start: argument resource: invalid choice: 'vms'"),
    (["snapshot", "take", "vm", "a", "b"], "pvem: snapshot: argument action: invalid choice: 'take'"),
    (["get", "snapshots", "web-1"], "pvem: expected `pvem get snapshots vm NAME`"),
    (["delete", "vm"], "pvem: expected `pvem delete vm NAME [--wait]`"),
    (["apply", "-f", "x.yaml", "--adopt"], "pvem: --adopt needs --apply-set NAME"),
    (["completion", "fish"], "pvem: completion: argument shell: invalid choice: 'fish'"),
])
def test_usage_errors_are_one_line(capsys, tmp_path, monkeypatch, argv, start):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("PVEM_TOKEN", "t")
    monkeypatch.setenv("PVEM_SERVER", "http://127.0.0.1:9")
    (tmp_path / "x.yaml").write_text("apiVersion: pvem/v1\nkind: VirtualMachine\nmetadata: {name: a}\n")
    monkeypatch.chdir(tmp_path)
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(start) and err.count("\n") == 1, err


def test_diff_help_says_it_is_read_only(capsys):
    with pytest.raises(SystemExit):
        cli.main(["diff", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "read-only" in text and "changes nothing" in text and "record the VMs created" not in text


def test_the_429_message_says_when_to_retry(api):
    from api.errors import handle_domain_error

    with pytest.raises(Exception) as caught:
        handle_domain_error(None, None, Throttled("too many failed logins; try again later", 42), {})  # type: ignore[arg-type]
    assert caught.value.description == "too many failed logins; try again in 42 seconds"  # type: ignore[attr-defined]
