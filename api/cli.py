"""`pvem`: the one console script. Server commands now (serve, db); client commands come with manifests.

Exit codes: 0 success, 1 the command failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import sys

from api.app import pvem_version


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pvem", description="Declarative controller for Proxmox VE.")
    parser.add_argument("--version", action="version", version=f"pvem {pvem_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    for name, text in (("serve", "run the API and the controller in one process"),
                       ("api", "run the HTTP API only (controllers run apart)"),
                       ("controller", "run the controller only: reconciler, stats, scheduled jobs")):
        serve = commands.add_parser(name, help=text)
        serve.add_argument("--config", metavar="PATH", help="config file (default: $PVEM_CONFIG or ./config.yaml)")
        serve.add_argument("--demo", action="store_true",
                           help="start a fake two-node Proxmox and the demo admin (admin@pve.local / admin123)")
        if name != "controller":
            serve.add_argument("--host", help="override server.host")
            serve.add_argument("--port", type=int, help="override server.port")

    db = commands.add_parser("db", help="database schema")
    db.add_argument("--config", metavar="PATH", help="config file")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_commands.add_parser("upgrade", help="apply pending migrations")
    db_commands.add_parser("current", help="print the schema revision")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("serve", "api", "controller"):
        from api.server import serve

        mode = {"serve": "all", "api": "api", "controller": "controller"}[args.command]
        return serve(args.config, demo=args.demo, host=getattr(args, "host", None), port=getattr(args, "port", None),
                     mode=mode)
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
