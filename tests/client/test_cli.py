"""The `pvem` entry point for client commands: one-line usage errors, the error boundary, import weight."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys

import pytest

from api import cli
from api.client import commands
from api.client.commands import Console
from api.client.errors import CliError


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("PVEM_SERVER", "PVEM_TOKEN", "PVEM_DEBUG"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(("argv", "message"), [
    (["apply"], "pvem: apply: the following arguments are required: -f/--filename (see `pvem apply --help`)"),
    (["get", "pods"], "pvem: get: argument resource: invalid choice: 'pods'"),
    (["apply", "-f", "x.yaml", "--timeout", "soon"], "pvem: apply: argument --timeout: not a number of seconds"),
    (["get", "vms", "--bogus"], "pvem: get: unrecognized arguments: --bogus"),
    (["apply", "-f", "x.yaml", "--dry-run", "--wait"], "pvem: --wait cannot be used with --dry-run"),
])
def test_usage_errors_are_one_line_and_exit_2(capsys, argv, message):
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_prune_without_an_apply_set_is_a_usage_error_before_any_request(capsys, tmp_path):
    (tmp_path / "vm.yaml").write_text("kind: VirtualMachine\nmetadata: {name: a}\n")
    assert cli.main(["apply", "-f", str(tmp_path / "vm.yaml"), "--prune", "--server", "http://127.0.0.1:9"]) == 2
    assert capsys.readouterr().err == "pvem: --prune needs --apply-set NAME\n"


def test_without_a_token_the_command_says_how_to_log_in(capsys):
    assert cli.main(["get", "vms", "--server", "http://127.0.0.1:9/api"]) == 3
    assert capsys.readouterr().err == ("pvem: not logged in to http://127.0.0.1:9: run `pvem login --server "
                                       "http://127.0.0.1:9` or set PVEM_TOKEN\n")


def test_login_without_a_terminal_or_password_stdin_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert cli.main(["login", "--server", "http://127.0.0.1:9", "--email", "a@b.c"]) == 2
    assert "pass --password-stdin" in capsys.readouterr().err


def test_logout_when_not_logged_in(capsys):
    assert cli.main(["logout"]) == 0
    assert capsys.readouterr().out == "Not logged in\n"


def console() -> Console:
    return Console(io.StringIO(), io.StringIO(), io.StringIO(), {})


@pytest.mark.parametrize(("failure", "code", "line"), [
    (KeyboardInterrupt(), 130, "pvem: interrupted\n"),
    (CliError("timed out\nafter 3s", 4), 4, "pvem: timed out after 3s\n"),
    (RuntimeError("boom"), 3, "pvem: unexpected error: RuntimeError: boom (PVEM_DEBUG=1 shows more)\n"),
])
def test_every_failure_becomes_one_line_and_an_exit_code(monkeypatch, failure, code, line):
    def fail(args, console):
        raise failure

    monkeypatch.setitem(commands.COMMANDS, "get", fail)
    out = console()
    assert commands.run(argparse.Namespace(command="get"), out) == code
    assert out.stderr.getvalue() == line


def test_server_commands_parse_as_before():
    args = cli._parser().parse_args(["serve", "--demo", "--port", "8081", "--host", "127.0.0.1"])
    assert (args.command, args.demo, args.port, args.host, args.config) == ("serve", True, 8081, "127.0.0.1", None)
    args = cli._parser().parse_args(["db", "--config", "c.yaml", "upgrade"])
    assert (args.command, args.db_command, args.config) == ("db", "upgrade", "c.yaml")


def test_client_code_does_not_load_the_server_stack():
    code = ("import sys, api.cli, api.client.commands, api.client.sources, api.client.wait; "
            "print(sorted(m for m in ('falcon', 'sqlalchemy', 'waitress', 'pydantic', 'api.app') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_a_damaged_stored_login_only_matters_when_it_is_needed(capsys, tmp_path, monkeypatch):
    stored = tmp_path / "config" / "pvem" / "credentials.json"
    stored.parent.mkdir(parents=True)
    stored.write_text("{damaged")
    assert cli.main(["get", "vms"]) == 2
    assert str(stored) in capsys.readouterr().err
    seen: list[tuple[str, str | None]] = []

    def get(args, console):
        client = commands.connect(args, console)
        seen.append((client.server, client.token))
        return 0

    monkeypatch.setitem(commands.COMMANDS, "get", get)
    assert cli.main(["get", "vms", "--server", "http://h:1", "--token", "t"]) == 0
    assert seen == [("http://h:1", "t")]
