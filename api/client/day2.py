"""The daily-work client commands: power actions, `delete vm`, snapshots, `get` of snapshots, rules, audit
and the cluster, `import`, `get vms --watch`, `version` and shell completion."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from api.client import render
from api.client.errors import OK, CliError, UsageError
from api.client.http import ApiClient, ApiError
from api.client.wait import Watch, wait
from api.version import pvem_version

if TYPE_CHECKING:
    from api.client.commands import Console

POWER = {"start": "start", "stop": "stop", "restart": "restart", "pause": "pause", "resume": "unpause"}
WATCH_INTERVAL = 2.0


def _vm_target(words: list[str], usage: str) -> str:
    if len(words) != 2 or words[0] not in ("vm", "vms"):
        raise UsageError(f"expected `{usage}`")
    return words[1]


def power(args: argparse.Namespace, console: Console) -> int:
    from api.client.commands import connect, find_vm

    name = _vm_target([args.resource, args.name], f"pvem {args.command} vm NAME")
    client = connect(args, console)
    vm = find_vm(client, name)
    client.call("POST", f"vms/{vm['id']}/action", json_body={"action": POWER[args.command]})
    verb = {"start": "start", "stop": "stop", "restart": "restart", "pause": "pause", "resume": "resume"}[args.command]
    console.out(f"{name}: {verb} requested")
    if getattr(args, "wait", False):
        wait(client, [Watch(name, str(vm["id"]))], args.timeout, console.stdout, tty=console.tty)
        console.out(f"{name}: done")
    return OK


def delete_vm(args: argparse.Namespace, console: Console) -> int:
    from api.client.commands import connect, find_vm

    name = _vm_target(list(args.target), "pvem delete vm NAME [--wait]")
    client = connect(args, console)
    vm = find_vm(client, name)
    client.call("DELETE", f"vms/{vm['id']}")
    console.out(render.paint(f"- delete {name}", render.COLOURS["delete"],
                             render.colour_enabled(console.stdout, console.env)))
    if args.wait:
        wait(client, [Watch(name, str(vm["id"]), delete=True)], args.timeout, console.stdout, tty=console.tty)
        console.out(f"{name}: deleted")
    return OK


def _snapshot_id(client: ApiClient, vm: dict[str, Any], snapshot: str) -> str:
    for item in client.get(f"vms/{vm['id']}/snapshots") or []:
        if isinstance(item, dict) and item.get("name") == snapshot:
            return str(item["id"])
    raise CliError(f"vm {vm.get('name')} has no snapshot {snapshot}")


def snapshot(args: argparse.Namespace, console: Console) -> int:
    from api.client.commands import connect, find_vm

    name = _vm_target([args.resource, args.name], f"pvem snapshot {args.action} vm NAME SNAPSHOT")
    client = connect(args, console)
    vm = find_vm(client, name)
    if args.action == "create":
        body: dict[str, Any] = {"name": args.snapshot}
        if args.description:
            body["description"] = args.description
        client.call("POST", f"vms/{vm['id']}/snapshots", json_body=body)
        console.out(f"{name}: snapshot {args.snapshot} requested")
    elif args.action == "delete":
        client.call("DELETE", f"vms/{vm['id']}/snapshots/{_snapshot_id(client, vm, args.snapshot)}")
        console.out(f"{name}: deletion of snapshot {args.snapshot} requested")
    else:
        client.call("POST", f"vms/{vm['id']}/snapshots/{_snapshot_id(client, vm, args.snapshot)}/rollback")
        console.out(f"{name}: rollback to snapshot {args.snapshot} requested")
    if args.wait:
        wait(client, [Watch(name, str(vm["id"]))], args.timeout, console.stdout, tty=console.tty)
        console.out(f"{name}: done")
    return OK


def _print(console: Console, output: str, data: Any, table: Callable[[], str], empty: str) -> None:
    if output == "json":
        console.out(render.as_json(data))
    elif output == "yaml":
        console.out(render.as_yaml(data))
    elif output == "name":
        for item in data if isinstance(data, list) else [data]:
            console.out(str(item.get("name") or item.get("id")) if isinstance(item, dict) else str(item))
    elif data:
        console.out(table())
    else:
        console.stderr.write(empty + "\n")


def get_children(args: argparse.Namespace, console: Console) -> int:
    from api.client.commands import connect, find_vm

    name = _vm_target(list(args.rest), f"pvem get {args.resource} vm NAME")
    client = connect(args, console)
    vm = find_vm(client, name)
    if args.resource == "snapshots":
        items = client.get(f"vms/{vm['id']}/snapshots") or []
        _print(console, args.output, items, lambda: render.table(
            ("NAME", "DESCRIPTION", "SCHEDULED", "SYNC", "CREATED"),
            [(s.get("name"), s.get("description"), "yes" if s.get("scheduled") else "no", s.get("sync_status"),
              s.get("created_at")) for s in items]), f"No snapshots on {name}.")
    else:
        items = client.get(f"vms/{vm['id']}/firewall") or []
        _print(console, args.output, items, lambda: render.table(
            ("#", "DIRECTION", "ACTION", "PROTOCOL", "PORT", "SOURCE", "DESTINATION", "ENABLED", "COMMENT", "SYNC"),
            [(r.get("position"), r.get("direction"), r.get("action"), r.get("protocol"), r.get("port"),
              r.get("source"), r.get("destination"), "yes" if r.get("enabled") else "no", r.get("comment"),
              r.get("sync_status")) for r in items]), f"No firewall rules on {name}.")
    return OK


def get_audit(args: argparse.Namespace, console: Console) -> int:
    from api.client.commands import connect

    client = connect(args, console)
    items = client.get("audit-logs", {"limit": args.limit}) or []
    _print(console, args.output, items, lambda: render.table(
        ("TIME", "ACTOR", "ACTION", "RESOURCE", "DETAILS"),
        [(a.get("created_at"), a.get("actor"), a.get("action"),
          (a.get("details") or {}).get("vm_name") or a.get("resource_id"), render._details(a.get("details"), 80))
         for a in items]), "No audit records.")
    return OK


def get_cluster(args: argparse.Namespace, console: Console) -> int:
    from api.client.commands import connect

    client = connect(args, console)
    items = client.get("cluster/vms") or []
    _print(console, args.output, items, lambda: render.table(
        ("VMID", "NAME", "NODE", "STATUS", "TEMPLATE", "MANAGED"),
        [(v.get("vmid"), v.get("name"), v.get("node"), v.get("status"), "yes" if v.get("template") else "no",
          "yes" if v.get("managed") else "no") for v in items]), "The cluster has no VMs.")
    return OK


def watch_vms(args: argparse.Namespace, console: Console, listing: Callable[[], list[dict[str, Any]]],
              sleep: Callable[[float], None] = time.sleep, rounds: int | None = None) -> int:
    """`get vms --watch`: print the table, then a line per VM whose row changed, polling until Ctrl-C
    (which ends it with exit 0, as kubectl does)."""
    try:
        return _watch(args, console, listing, sleep, rounds)
    except KeyboardInterrupt:
        return OK


def _watch(args: argparse.Namespace, console: Console, listing: Callable[[], list[dict[str, Any]]],
           sleep: Callable[[float], None], rounds: int | None) -> int:
    wide = args.output == "wide"
    seen: dict[str, tuple[Any, ...]] = {}
    first = True
    count = 0
    while rounds is None or count < rounds:
        count += 1
        vms = listing()
        if first:
            console.out(render.vm_table(vms, wide=wide) if vms else "No VMs found.")
            first = False
        else:
            current = {str(vm.get("id")) for vm in vms}
            for vm in vms:
                key = str(vm.get("id"))
                row = tuple(render.vm_table([vm], wide=wide).splitlines()[1:])
                if seen.get(key) != row:
                    console.out(row[0] if row else str(vm.get("name")))
            for gone in set(seen) - current:
                console.out(f"{seen[gone][0].split()[0] if seen[gone] else gone}   (deleted)")
        seen = {str(vm.get("id")): tuple(render.vm_table([vm], wide=wide).splitlines()[1:]) for vm in vms}
        console.stdout.flush()
        if rounds is None or count < rounds:
            sleep(WATCH_INTERVAL)
    return OK


def import_vm(args: argparse.Namespace, console: Console) -> int:
    from api.client.commands import connect

    client = connect(args, console)
    body: dict[str, Any] = {"vmid": args.vmid}
    if args.owner_id:
        body["owner_id"] = args.owner_id
    if args.observe:
        body["management"] = "observe"
    vm = client.call("POST", "vms/import", json_body=body)
    if not isinstance(vm, dict):
        raise CliError("unexpected answer from vms/import")
    console.out(f"Imported VM {args.vmid} as {vm.get('name')} (id {vm.get('id')}, management "
                f"{vm.get('management')})")
    if args.wait:
        wait(client, [Watch(str(vm.get("name")), str(vm["id"]))], args.timeout, console.stdout, tty=console.tty)
        console.out(f"{vm.get('name')}: synced")
    return OK


def version(args: argparse.Namespace, console: Console) -> int:
    from api.client import credentials

    console.out(f"Client: pvem {pvem_version()}")
    try:
        stored = credentials.load(console.env)
    except CliError:
        stored = None
    server = credentials.resolve(args.server, args.token, console.env, stored).server
    try:
        answer = ApiClient(server, None, timeout=5).get("version")
    except ApiError as exc:
        console.out(f"Server: unavailable ({exc.message})")
        return OK
    shown = answer.get("version") if isinstance(answer, dict) else answer
    console.out(f"Server: pvem {shown} ({server})")
    return OK


COMMANDS_WORDS = ("login", "logout", "apply", "diff", "get", "describe", "delete", "export", "start", "stop",
                  "restart", "pause", "resume", "snapshot", "import", "completion", "version")
GET_RESOURCES = ("vms", "vm", "snapshots", "rules", "audit", "cluster")

BASH = """# bash completion for pvem: eval "$(pvem completion bash)"
_pvem() {
    local cur prev words cword
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "%(commands)s serve api controller db" -- "$cur"))
        return
    fi
    case "${COMP_WORDS[1]}" in
        get) [ "$COMP_CWORD" -eq 2 ] && COMPREPLY=($(compgen -W "%(resources)s" -- "$cur")) ;;
        snapshot) [ "$COMP_CWORD" -eq 2 ] && COMPREPLY=($(compgen -W "create delete rollback" -- "$cur")) ;;
        start|stop|restart|pause|resume|describe) [ "$COMP_CWORD" -eq 2 ] && COMPREPLY=($(compgen -W "vm" -- "$cur")) ;;
        delete) [ "$COMP_CWORD" -eq 2 ] && COMPREPLY=($(compgen -W "vm -f" -- "$cur")) ;;
        completion) COMPREPLY=($(compgen -W "bash zsh" -- "$cur")) ;;
        apply|diff) case "$prev" in -f|--filename) COMPREPLY=($(compgen -f -- "$cur")) ;;
                    *) COMPREPLY=($(compgen -W "-f --apply-set --prune --adopt --wait --timeout" -- "$cur")) ;; esac ;;
    esac
}
complete -F _pvem pvem
"""

ZSH = """#compdef pvem
# zsh completion for pvem: eval "$(pvem completion zsh)"
_pvem() {
    local -a commands
    commands=(%(commands)s serve api controller db)
    if (( CURRENT == 2 )); then
        _describe 'command' commands
        return
    fi
    case "${words[2]}" in
        get) (( CURRENT == 3 )) && compadd %(resources)s ;;
        snapshot) (( CURRENT == 3 )) && compadd create delete rollback ;;
        start|stop|restart|pause|resume|describe|delete) (( CURRENT == 3 )) && compadd vm ;;
        completion) compadd bash zsh ;;
        apply|diff) _files ;;
    esac
}
compdef _pvem pvem
"""


def completion(args: argparse.Namespace, console: Console) -> int:
    template = BASH if args.shell == "bash" else ZSH
    console.stdout.write(template % {"commands": " ".join(COMMANDS_WORDS), "resources": " ".join(GET_RESOURCES)})
    return OK
