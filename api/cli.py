"""`pvem`: the one console script. Server commands (serve, api, controller, db) and client commands
(login, logout, apply, diff, get, describe, delete, export; in `api/client/`).

Server commands exit 0 on success, 1 when the command failed, 2 on bad usage or configuration.
Client commands: 0 success / no differences; 1 `diff` found differences or an object failed to
converge under --wait; 2 usage or input error (bad flags, unreadable file, invalid YAML, manifest
rejected as invalid); 3 the request could not be completed (unreachable, not logged in, token
rejected, 403/404/409/5xx); 4 --wait timed out; 130 interrupted. Errors are one `pvem: ` line.

Kept import-light: the server stack (falcon, SQLAlchemy, waitress) loads only for server commands.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

from api.version import pvem_version

CLIENT_COMMANDS = ("login", "logout", "apply", "diff", "get", "describe", "delete", "export", "start", "stop",
                   "restart", "pause", "resume", "snapshot", "import", "completion", "version")


class _Parser(argparse.ArgumentParser):
    """Client subcommands report usage errors as one `pvem: ` line (exit 2); the rest as argparse does."""

    def __init__(self, *args: Any, one_line_errors: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.one_line_errors = one_line_errors

    def error(self, message: str) -> NoReturn:
        if self.prog == "pvem":
            self.exit(2, f"pvem: {message} (see `pvem --help`)\n")
        self.exit(2, f"pvem: {self.prog.removeprefix('pvem ')}: {message} (see `{self.prog} --help`)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pvem", description="Declarative controller for Proxmox VE.", one_line_errors=True)
    parser.add_argument("--version", action="version", version=f"pvem {pvem_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    for name, text in (("serve", "run the API and the controller in one process"),
                       ("api", "run the HTTP API only (controllers run apart)"),
                       ("controller", "run the controller only: reconciler, stats, scheduled jobs")):
        serve = commands.add_parser(name, help=text, description=text, one_line_errors=True)
        serve.add_argument("--config", metavar="PATH", help="config file (default: $PVEM_CONFIG or ./config.yaml)")
        serve.add_argument("--demo", action="store_true",
                           help="start a fake two-node Proxmox and the demo admin (admin@pve.local / admin123)")
        if name != "controller":
            serve.add_argument("--host", help="override server.host")
            serve.add_argument("--port", type=int, help="override server.port")
            serve.add_argument("--workers", type=int, metavar="N",
                               help="API processes on the one port (override server.workers)")
        else:
            serve.add_argument("--metrics-port", type=int, metavar="PORT",
                               help="serve /metrics and /api/health/ready on server.host:PORT "
                                    "(controller.metrics_port)")

    db = commands.add_parser("db", help="database schema", one_line_errors=True)
    db.add_argument("--config", metavar="PATH", help="config file")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    for action, text in (("upgrade", "apply pending migrations"), ("current", "print the schema revision")):
        # `pvem db upgrade --config PATH` as well as `pvem db --config PATH upgrade`
        sub = db_commands.add_parser(action, help=text, description=text, one_line_errors=True)
        sub.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="config file")

    _client_commands(commands)
    return parser


def _timeout(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < seconds <= 86400:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 86400 seconds")
    return seconds


def _client_commands(commands: Any) -> None:
    common = _Parser(add_help=False)
    common.add_argument("--server", metavar="URL",
                        help="pvem API (default: $PVEM_SERVER, then the stored login, then http://127.0.0.1:8080)")
    common.add_argument("--token", metavar="TOKEN", help="API token (default: $PVEM_TOKEN, then the stored login)")

    def client(name: str, text: str, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
        parsed: argparse.ArgumentParser = commands.add_parser(name, help=text, description=text, parents=parents,
                                                              one_line_errors=True)
        return parsed

    def files(sub: argparse.ArgumentParser, verb: str) -> None:
        sub.add_argument("-f", "--filename", metavar="PATH", action="append", required=True,
                         help=f"manifest file, directory (*.yaml, *.yml, *.json) or - for stdin, to {verb}; repeatable")

    def waiting(sub: argparse.ArgumentParser, until: str) -> None:
        sub.add_argument("--wait", action="store_true", help=f"wait until {until}, showing progress")
        sub.add_argument("--timeout", type=_timeout, default=300.0, metavar="S",
                         help="give up waiting after S seconds (default 300; exit 4)")

    login = client("login", "log in and store the token (0600) in the user's config directory", [common])
    login.add_argument("--email", help="(default: asked)")
    login.add_argument("--password-stdin", action="store_true", help="read the password from stdin's first line")
    client("logout", "forget the stored login", [])

    for name, text in (("apply", "create and update VMs to match manifests (server-side apply); prints what each "
                                 "change does to the guest"),
                       ("diff", "read-only: show what apply would change and what each change does to the guest "
                                "(live, needs reboot, stops the guest, destroys data); changes nothing. Exit 0: no "
                                "differences, 1: differences")):
        sub = client(name, text, [common])
        files(sub, name)
        if name == "apply":
            sub.add_argument("--apply-set", metavar="NAME",
                             help="record the VMs created as members of this apply set")
            sub.add_argument("--prune", action="store_true",
                             help="delete this apply set's VMs that the manifests no longer list (needs --apply-set)")
            sub.add_argument("--adopt", action="store_true",
                             help="listed VMs that exist outside the apply set become its members")
        else:
            sub.add_argument("--apply-set", metavar="NAME", help="compare as an apply of this apply set would")
            sub.add_argument("--prune", action="store_true",
                             help="also show the deletions an apply with --prune would make (needs --apply-set)")
            sub.add_argument("--adopt", action="store_true",
                             help="show the VMs an apply with --adopt would make members of the apply set")
        sub.add_argument("-v", "--verbose", action="store_true", help="list unchanged objects too")
        if name == "apply":
            sub.add_argument("--dry-run", action="store_true", help="only print the plan")
            waiting(sub, "every object is synced (or gone)")

    get = client("get", "list VMs (or show one), a VM's snapshots or rules, the audit trail, the cluster's VMs "
                 "or its templates", [common])
    get.add_argument("resource", choices=("vms", "vm", "snapshots", "rules", "audit", "cluster", "templates",
                                          "template"),
                     help="vms [NAME] | snapshots vm NAME | rules vm NAME | audit | cluster (admins) | templates")
    get.add_argument("rest", nargs="*", metavar="NAME", help="a VM's name (snapshots and rules: vm NAME)")
    get.add_argument("-o", "--output", choices=("table", "wide", "name", "json", "yaml"), default="table",
                     help="wide adds reboot_required, management and labels; name prints names only")
    get.add_argument("-l", "--selector", metavar="SELECTOR", help="label selector k=v[,k2=v2]")
    get.add_argument("-w", "--watch", action="store_true", help="keep listing VMs as they change (Ctrl-C stops)")
    get.add_argument("--limit", type=int, default=20, metavar="N", help="audit: how many records (default 20)")

    describe = client("describe", "a VM's spec, status, last error, snapshots, firewall and recent audit", [common])
    describe.add_argument("resource", choices=("vm", "vms"), help="what to describe")
    describe.add_argument("name", help="the VM's name")

    delete = client("delete", "delete a VM (`delete vm NAME`), or the VMs named in manifests (-f; names not found "
                    "are skipped)", [common])
    delete.add_argument("target", nargs="*", metavar="vm NAME", help="vm NAME")
    delete.add_argument("-f", "--filename", metavar="PATH", action="append",
                        help="manifest file, directory or - for stdin: delete the VMs it names; repeatable")
    waiting(delete, "they are gone")

    for verb, text in (("start", "start a VM"), ("stop", "stop a VM (ACPI shutdown, then a hard stop)"),
                       ("restart", "reboot a VM (applies changes waiting for a reboot)"),
                       ("pause", "pause a running VM"), ("resume", "resume a paused VM")):
        sub = client(verb, f"{text}: pvem {verb} vm NAME", [common])
        sub.add_argument("resource", choices=("vm",), help="vm")
        sub.add_argument("name", help="the VM's name")
        waiting(sub, "the VM is synced")

    snap = client("snapshot", "create, delete or roll back to a snapshot: pvem snapshot ACTION vm NAME SNAPSHOT",
                  [common])
    snap.add_argument("action", choices=("create", "delete", "rollback"))
    snap.add_argument("resource", choices=("vm",), help="vm")
    snap.add_argument("name", help="the VM's name")
    snap.add_argument("snapshot", help="the snapshot's name")
    snap.add_argument("--description", help="create: the snapshot's description")
    waiting(snap, "the VM is synced")

    imported = client("import", "take over an existing Proxmox VM (admins): its spec is what is observed; "
                      "nothing in the guest changes", [common])
    imported.add_argument("vmid", type=int, help="the Proxmox VM id (see `pvem get cluster`)")
    imported.add_argument("--owner-id", metavar="USER_ID", help="import it for this user")
    imported.add_argument("--observe", action="store_true", help="management observe: watch, never write")
    waiting(imported, "the VM is synced")

    client("version", "print the client's and the server's versions", [common])
    completion = client("completion", "print a shell completion script: eval \"$(pvem completion bash)\"", [])
    completion.add_argument("shell", choices=("bash", "zsh"))

    export = client("export", "print your VMs as manifests (apply them back for no changes)", [common])
    export.add_argument("--apply-set", metavar="NAME", help="only this apply set's VMs")
    export.add_argument("-l", "--selector", metavar="SELECTOR", help="label selector k=v[,k2=v2]")
    export.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        message = f"unrecognized arguments: {' '.join(extra)}"
        if not args.command:
            parser.error(message)
        print(f"pvem: {args.command}: {message} (see `pvem {args.command} --help`)", file=sys.stderr)
        return 2
    if args.command in CLIENT_COMMANDS:
        from api.client.commands import run

        return run(args)
    if args.command in ("serve", "api", "controller"):
        from api.server import serve

        mode = {"serve": "all", "api": "api", "controller": "controller"}[args.command]
        return serve(args.config, demo=args.demo, host=getattr(args, "host", None), port=getattr(args, "port", None),
                     mode=mode, metrics_port=getattr(args, "metrics_port", None),
                     workers=getattr(args, "workers", None))
    if args.command == "db":
        return _db(args)
    _parser().print_help()
    return 2


def _db(args: argparse.Namespace) -> int:
    from controller.config import ConfigError, load_settings
    from controller.store.db import Store, current_revision

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"pvem: {exc}", file=sys.stderr)
        return 2
    store = Store(settings.database.url)
    try:
        if args.db_command == "upgrade":
            store.upgrade()
        print(current_revision(store.engine) or "(empty)")
    finally:
        store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
