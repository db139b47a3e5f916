"""The client commands, one function each, and `run`: the error boundary that turns every failure
into one `pvem: ` line on stderr and an exit code (never a traceback)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from api.client import credentials, render
from api.client.errors import CHANGES, INTERRUPTED, OK, UNAVAILABLE, CliError, UsageError, one_line
from api.client.http import ApiClient, ApiError
from api.client.wait import Watch, wait

if TYPE_CHECKING:
    from api.client.sources import Document

KIND = "VirtualMachine"


@dataclass
class Console:
    stdin: TextIO
    stdout: TextIO
    stderr: TextIO
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)

    @classmethod
    def system(cls) -> Console:
        return cls(sys.stdin, sys.stdout, sys.stderr, os.environ)

    def out(self, text: str = "") -> None:
        self.stdout.write(text + "\n")

    @property
    def tty(self) -> bool:
        return self.stdout.isatty()


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    console = console or Console.system()
    try:
        return COMMANDS[args.command](args, console)
    except CliError as exc:
        console.stderr.write(f"pvem: {exc.message}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        console.stderr.write("pvem: interrupted\n")
        return INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`pvem get vms | head -1`): exit as a process killed by SIGPIPE would.
        try:
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141
    except Exception as exc:  # a bug: still one line, the traceback only on request
        if console.env.get("PVEM_DEBUG"):
            raise
        console.stderr.write(f"pvem: unexpected error: {type(exc).__name__}: {one_line(str(exc))} "
                             "(PVEM_DEBUG=1 shows more)\n")
        return UNAVAILABLE


def connect(args: argparse.Namespace, console: Console) -> ApiClient:
    """A client for the resolved server with a token; no token at all is exit 3 with the remedy."""
    env = console.env
    complete = (args.server or env.get("PVEM_SERVER")) and (args.token or env.get("PVEM_TOKEN"))
    stored = None if complete else credentials.load(env)  # a damaged file matters only when it is needed
    target = credentials.resolve(args.server, args.token, env, stored)
    if not target.token:
        raise CliError(f"not logged in to {target.server}: run `pvem login --server {target.server}` "
                       f"or set PVEM_TOKEN")
    return ApiClient(target.server, target.token)


def login(args: argparse.Namespace, console: Console) -> int:
    try:
        stored = credentials.load(console.env)
    except CliError:
        stored = None  # a damaged file is replaced by this login
    server = credentials.resolve(args.server, None, console.env, stored).server
    client = ApiClient(server, args.token)
    if args.token:
        me = _mapping(client.get("auth/me"), "auth/me")
        token, email = args.token, str(me.get("email") or "")
    else:
        email = args.email or _prompt(console, "Email: ")
        if args.password_stdin:
            password = console.stdin.readline().rstrip("\r\n")
        elif console.stdin.isatty():
            password = getpass.getpass("Password: ", stream=console.stderr)
        else:
            raise UsageError("no terminal to ask for the password on: pass --password-stdin")
        if not email or not password:
            raise UsageError("an email and a password are needed")
        try:
            answer = _mapping(client.call("POST", "auth/login", json_body={"email": email, "password": password}),
                              "auth/login")
        except ApiError as exc:
            if exc.status == 401:
                raise ApiError(f"login to {server} failed: {_error_text(exc)}", 401, exc.code, exc.body) from exc
            raise
        token = str(answer.get("token") or "")
        user = answer.get("user")
        email = str(user.get("email") or email) if isinstance(user, dict) else email
        if not token:
            raise CliError(f"{server}: the login answer carries no token")
    credentials.save(credentials.Credentials(server, token, email), console.env)
    console.out(f"Logged in to {server} as {email}")
    return OK


def logout(args: argparse.Namespace, console: Console) -> int:
    path = credentials.credentials_path(console.env)
    console.out(f"Logged out (removed {path})" if credentials.remove(console.env) else "Not logged in")
    return OK


def apply(args: argparse.Namespace, console: Console) -> int:
    if args.wait and args.dry_run:
        raise UsageError("--wait cannot be used with --dry-run")
    client, result = _post_manifests(args, console, dry_run=args.dry_run)
    console.out(render.plan(result, verbose=args.verbose, colour=render.colour_enabled(console.stdout, console.env)))
    if args.wait and result.get("objects"):
        watches = [Watch(str(obj.get("name")), str(obj["id"]), delete=obj.get("action") == "delete")
                   for obj in result.get("objects") or [] if isinstance(obj, dict) and obj.get("id")]
        wait(client, watches, args.timeout, console.stdout, tty=console.tty)
        waiting = _reboot_required(client, watches)
        if waiting:
            console.out(f"Synced, but {len(waiting)} VM{'s' if len(waiting) != 1 else ''} still need"
                        f"{'s' if len(waiting) == 1 else ''} a reboot for changes to take effect:")
            for name in waiting:
                console.out(f"  {name}: pvem restart vm {name}")
        else:
            console.out(f"All {len(watches)} object{'s' if len(watches) != 1 else ''} converged")
    return OK


def _reboot_required(client: ApiClient, watches: Sequence[Watch]) -> list[str]:
    """The watched VMs whose changes wait in Proxmox for a reboot (reboot_policy never)."""
    wanted = {watch.id: watch.name for watch in watches if not watch.delete}
    listed = _sequence(client.get("vms"), "vms")
    return sorted(wanted[vm["id"]] for vm in listed
                  if isinstance(vm, dict) and vm.get("id") in wanted and vm.get("reboot_required"))


def diff(args: argparse.Namespace, console: Console) -> int:
    _client, result = _post_manifests(args, console, dry_run=True)
    console.out(render.plan(result, verbose=args.verbose, colour=render.colour_enabled(console.stdout, console.env)))
    return CHANGES if render.has_changes(result) else OK


def _post_manifests(args: argparse.Namespace, console: Console, *,
                    dry_run: bool) -> tuple[ApiClient, dict[str, Any]]:
    from api.client import sources  # the manifest loader is only needed by -f commands

    if args.prune and not args.apply_set:
        raise UsageError("--prune needs --apply-set NAME")
    documents = sources.read(args.filename, console.stdin)
    client = connect(args, console)
    if args.adopt and not args.apply_set:
        raise UsageError("--adopt needs --apply-set NAME")
    params = {"dry_run": "true" if dry_run else None, "apply_set": args.apply_set,
              "prune": "true" if args.prune else None, "adopt": "true" if args.adopt else None}
    try:
        answer = client.call("POST", "manifests", params=params, json_body=[doc.data for doc in documents])
    except ApiError as exc:
        located = sources.explain(documents, exc.body) if exc.status == 400 else None
        if located:
            raise ApiError(located, exc.status, exc.code, exc.body) from exc
        raise
    return client, _mapping(answer, "manifests")


def get(args: argparse.Namespace, console: Console) -> int:
    from api.client import day2

    if args.resource in ("snapshots", "rules"):
        return day2.get_children(args, console)
    if args.output in ("wide", "name") and args.resource not in ("vms", "vm"):
        raise UsageError(f"-o {args.output} is for `get vms`")
    if args.resource == "audit":
        return day2.get_audit(args, console)
    if args.resource == "cluster":
        return day2.get_cluster(args, console)
    if len(args.rest) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(args.rest[1:])}")
    args.name = args.rest[0] if args.rest else None
    client = connect(args, console)
    if args.resource in ("templates", "template"):
        return _get_templates(args, console, client)
    if args.watch:
        if args.name:
            raise UsageError("--watch lists VMs: use `pvem get vms --watch` (with -l to narrow it)")
        return day2.watch_vms(args, console, lambda: [
            vm for vm in _sequence(client.get("vms", {"label_selector": args.selector}), "vms")
            if isinstance(vm, dict)])
    if args.name:
        vm = find_vm(client, args.name, args.selector)
        found: Any = vm
        listing = [vm]
    else:
        listing = [vm for vm in _sequence(client.get("vms", {"label_selector": args.selector}), "vms")
                   if isinstance(vm, dict)]
        found = listing
    if args.output == "json":
        console.out(render.as_json(found))
    elif args.output == "yaml":
        console.out(render.as_yaml(found))
    elif args.output == "name":
        for vm in sorted(listing, key=lambda vm: str(vm.get("name"))):
            console.out(str(vm.get("name")))
    elif listing:
        console.out(render.vm_table(listing, wide=args.output == "wide"))
    else:
        console.stderr.write("No VMs found.\n")
    return OK


def _get_templates(args: argparse.Namespace, console: Console, client: ApiClient) -> int:
    templates = [item for item in _sequence(client.get("templates"), "templates") if isinstance(item, dict)]
    if args.name:
        templates = [item for item in templates if args.name in (item.get("name"), str(item.get("vmid")))]
        if not templates:
            raise CliError(f"no template named {args.name!r}")
    if args.output == "json":
        console.out(render.as_json(templates))
    elif args.output == "yaml":
        console.out(render.as_yaml(templates))
    elif templates:
        console.out(render.template_table(templates))
    else:
        console.stderr.write("No templates found (the controller lists them after its first pass).\n")
    return OK


def describe(args: argparse.Namespace, console: Console) -> int:
    client = connect(args, console)
    vm = find_vm(client, args.name)
    vm_id = vm["id"]
    snapshots = _sequence(client.get(f"vms/{vm_id}/snapshots"), "snapshots")
    rules = _sequence(client.get(f"vms/{vm_id}/firewall"), "firewall")
    audit = _sequence(client.get("audit-logs", {"resource_id": vm_id, "limit": 20}), "audit-logs")
    console.out(render.describe(vm, snapshots, rules, audit))
    return OK


def delete(args: argparse.Namespace, console: Console) -> int:
    from api.client import day2, sources

    if not args.filename:
        return day2.delete_vm(args, console)
    if args.target:
        raise UsageError("give either -f FILE or `vm NAME`, not both")
    documents = sources.read(args.filename, console.stdin)
    names = _names(documents)
    client = connect(args, console)
    me = _mapping(client.get("auth/me"), "auth/me")
    mine = {vm.get("name"): vm for vm in _sequence(client.get("vms"), "vms")
            if isinstance(vm, dict) and vm.get("owner_id") == me.get("id")}
    colour = render.colour_enabled(console.stdout, console.env)
    watches: list[Watch] = []
    for name in names:
        vm = mine.get(name)
        if vm is None:
            console.out(f"{name}: not found (skipped)")
            continue
        try:
            client.call("DELETE", f"vms/{vm['id']}")
        except ApiError as exc:
            if exc.status != 404:
                raise
            console.out(f"{name}: not found (skipped)")
            continue
        console.out(render.paint(f"- delete {name}", render.COLOURS["delete"], colour))
        watches.append(Watch(name, str(vm["id"]), delete=True))
    console.out(f"Deletion requested: {len(watches)}, not found: {len(names) - len(watches)}")
    if args.wait and watches:
        wait(client, watches, args.timeout, console.stdout, tty=console.tty)
        console.out(f"All {len(watches)} deleted")
    return OK


def export(args: argparse.Namespace, console: Console) -> int:
    client = connect(args, console)
    params = {"format": args.output, "apply_set": args.apply_set, "label_selector": args.selector}
    if args.output == "json":
        console.out(render.as_json(client.call("GET", "manifests/export", params=params)))
    else:
        text = client.request("GET", "manifests/export", params=params, headers={"Accept": "application/yaml"}).text
        console.stdout.write(text if not text or text.endswith("\n") else text + "\n")
    return OK


def find_vm(client: ApiClient, name: str, selector: str | None = None) -> dict[str, Any]:
    """The caller's VM called NAME (an admin also sees others' VMs: their own wins, else it must be unique)."""
    found = [vm for vm in _sequence(client.get("vms", {"name": name, "label_selector": selector}), "vms")
             if isinstance(vm, dict) and vm.get("name") == name]
    if len(found) > 1:
        me = _mapping(client.get("auth/me"), "auth/me")
        found = [vm for vm in found if vm.get("owner_id") == me.get("id")] or found
    if not found:
        raise CliError(f"vm {name} not found on {client.server}")
    if len(found) > 1:
        raise CliError(f"{len(found)} VMs are called {name} (other users' VMs); use the API by id")
    return found[0]


def _names(documents: Sequence[Document]) -> list[str]:
    names: list[str] = []
    for doc in documents:
        if doc.kind != KIND:
            raise UsageError(f"{doc.where()}: kind: expected {KIND}, got {doc.kind!r}")
        if not doc.name:
            raise UsageError(f"{doc.where()}: metadata.name: is required")
        if doc.name not in names:
            names.append(doc.name)
    return names


def _prompt(console: Console, text: str) -> str:
    console.stderr.write(text)
    console.stderr.flush()
    line = console.stdin.readline()
    if not line:
        raise UsageError("no email given (stdin is closed); pass --email")
    return line.strip()


def _error_text(exc: ApiError) -> str:
    body = exc.body
    return str(body["error"]) if isinstance(body, dict) and isinstance(body.get("error"), str) else "refused"


def _mapping(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise CliError(f"unexpected answer from {what}: expected an object")
    return data


def _sequence(data: Any, what: str) -> list[Any]:
    if not isinstance(data, list):
        raise CliError(f"unexpected answer from {what}: expected a list")
    return data


def _day2(name: str) -> Callable[[argparse.Namespace, Console], int]:
    def command(args: argparse.Namespace, console: Console) -> int:
        from api.client import day2

        handler: Callable[[argparse.Namespace, Console], int] = getattr(day2, name)
        return handler(args, console)

    return command


COMMANDS: dict[str, Callable[[argparse.Namespace, Console], int]] = {
    "login": login, "logout": logout, "apply": apply, "diff": diff, "get": get, "describe": describe,
    "delete": delete, "export": export,
    **{verb: _day2("power") for verb in ("start", "stop", "restart", "pause", "resume")},
    "snapshot": _day2("snapshot"), "import": _day2("import_vm"), "version": _day2("version"),
    "completion": _day2("completion"),
}
