"""Running pvem: settings + store + controller service + the Falcon app on waitress, with clean shutdown.

`serve()` is what `pvem serve` calls. SIGTERM and SIGINT stop taking requests, stop the scheduled
jobs, and exit 0.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import waitress
import waitress.utilities
from pydantic import ValidationError

from api.app import create_app, create_status_app
from api.schemas import snapshot_dict, vm_dict
from api.workers import Workers, listening_socket
from controller.config import (
    ConfigError,
    ServerSettings,
    Settings,
    describe_errors,
    load_settings,
    require_production_secret,
)
from controller.events.feed import Feed
from controller.lease import leader_check
from controller.log import configure_logging, get_logger
from controller.service import ControllerService
from controller.store import Store, notify
from controller.users import AdminConflict, Passwords
from controller.webhooks.worker import Render

log = get_logger("pvem.server")

DEMO_ADMIN = ("admin@pve.local", "admin123")
DEMO_DATA_DIR = Path("var")


def _json_waitress_errors() -> None:
    """waitress answers some errors itself (413 over max_request_body_size, 400 on bad framing) in
    plain text; give them the API's `{"error": ..., "code": ...}` shape too."""

    def to_response(self: waitress.utilities.Error, ident: str | None = None) -> tuple[str, list[Any], bytes]:
        body = json.dumps({"error": f"{self.reason}: {self.body}".strip(), "code": self.code}).encode()
        return f"{self.code} {self.reason}", [("Content-Type", "application/json")], body

    waitress.utilities.Error.to_response = to_response


class _Stop(SystemExit):
    """Raised in the main thread by SIGTERM/SIGINT. A SystemExit on purpose: waitress's event loop
    swallows ordinary exceptions raised while it handles a connection (as a channel error) and
    would keep serving; SystemExit it re-raises and then returns from `run()`."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop()


def write_secret_file(path: Path, secret: str) -> bool:
    """Creates `path` holding `secret`, mode 0600 from the first byte (never readable by others, not
    even briefly); an existing file is kept as it is. True when it was created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret)
    return True

def _stop_handler(feed: Feed) -> Any:
    """SIGTERM/SIGINT: end open event streams first (waitress waits for its busy threads as it stops)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        feed.halt()
        _raise_stop(signum, frame)

    return handler


@dataclass
class Runtime:
    settings: Settings
    demo: bool
    fake: Any = None


def demo_settings(config_path: str | None) -> Runtime:
    """Demo: SQLite under ./var, a fake two-node Proxmox started here, the contract's admin login."""
    from controller.demo import start_fake_cluster

    DEMO_DATA_DIR.mkdir(exist_ok=True)
    secret_file = DEMO_DATA_DIR / "demo-jwt-secret"
    write_secret_file(secret_file, secrets.token_urlsafe(48))
    base = load_settings(config_path)
    fake = start_fake_cluster()
    overrides: dict[str, Any] = {
        "proxmox": {**base.proxmox.model_dump(), "host": fake.host, "port": fake.port, "user": fake.user,
                    "password": fake.password, "token_name": None, "token_value": None,
                    "verify_ssl": True, "ca_file": fake.ca_file, "default_node": base.proxmox.default_node
                    or "pve1"},
    }
    if base.auth.jwt_secret is None:
        overrides["auth"] = {**base.auth.model_dump(), "jwt_secret": secret_file.read_text().strip()}
    settings = load_settings(config_path, **overrides)
    return Runtime(settings=settings, demo=True, fake=fake)


def check_port_free(host: str, port: int) -> None:
    """ConfigError when host:port cannot be listened on (checked before the database is touched)."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as waitress does: TIME_WAIT is fine
        try:
            probe.bind(address)
        except OSError as exc:
            reason = "the port is already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise ConfigError(f"cannot listen on {host}:{port}: {reason} (is another pvem running? choose "
                              "another with --port or server.port)") from None


def serve(config_path: str | None = None, demo: bool = False, host: str | None = None,
          port: int | None = None, mode: str = "all", metrics_port: int | None = None,
          workers: int | None = None) -> int:
    """Run pvem. mode: `all` (API + controller), `api` (HTTP only), `controller` (reconciler only; with
    `controller.metrics_port` or `metrics_port`, also /metrics and health on that port)."""
    runtime: Runtime | None = None
    try:
        runtime = demo_settings(config_path) if demo else Runtime(load_settings(config_path), demo=False)
        settings = runtime.settings
        flags = {key: value for key, value in (("host", host), ("port", port), ("workers", workers))
                 if value is not None}
        if flags:  # validated as the config file's values are (--workers 0 is refused like server.workers: 0)
            try:
                server_section = ServerSettings.model_validate({**settings.server.model_dump(), **flags})
            except ValidationError as exc:
                raise ConfigError(f"invalid option: server.{describe_errors(exc)}") from None
            settings = settings.model_copy(update={"server": server_section})
        if mode == "controller":
            # the status port (if any) takes the API's place: server.port is not used by a controller
            status_port = metrics_port if metrics_port is not None else settings.controller.metrics_port
            settings = settings.model_copy(update={"server": settings.server.model_copy(
                update={"port": status_port if status_port is not None else 0})})
        else:
            status_port = None
        if not demo and mode != "controller":
            require_production_secret(settings)
        if mode != "controller" or status_port is not None:
            check_port_free(settings.server.host, settings.server.port)
    except (ConfigError, ImportError) as exc:
        if runtime is not None and runtime.fake is not None:
            runtime.fake.stop()
        print(f"pvem: {exc}", file=sys.stderr)
        return 2
    assert runtime is not None
    configure_logging(settings.logging.format, settings.logging.level)

    store = Store(settings.database.url, echo=settings.database.echo)
    passwords = Passwords(settings.auth.argon2_time_cost, settings.auth.argon2_memory_kib)
    render = Render(vm=vm_dict, snapshot=snapshot_dict)  # webhook payloads: the API's own objects
    controller = ControllerService(settings, store, passwords, render=render) if mode != "api" else None
    try:
        if controller is not None:
            controller.prepare(demo_admin=DEMO_ADMIN if demo else None)
        else:
            ControllerService.prepare_api_only(settings, store, passwords)
    except AdminConflict as exc:
        print(f"pvem: {exc}", file=sys.stderr)
        if controller is not None:
            controller.stop()
        store.dispose()
        if runtime.fake is not None:
            runtime.fake.stop()
        return 2

    server = None
    api_workers: Workers | None = None
    feed = Feed(store, settings.events.poll_seconds)  # wakes this process's /api/events streams
    if mode != "controller":
        app = build_api(settings, store, passwords, feed, controller)
        server, api_workers = create_api_server(app, settings, controller.nudge if controller else None)
    elif status_port is not None:
        assert controller is not None
        server = create_server(create_status_app(settings, store, controller.readiness_checks()), settings)
    if controller is not None:
        controller.start()
    previous = {sig: signal.signal(sig, _stop_handler(feed)) for sig in (signal.SIGTERM, signal.SIGINT)}
    if server is not None and mode != "controller":
        address = f"http://{settings.server.host}:{server.effective_port}"
        _announce(address, runtime)
        log.info("listening", url=address, demo=demo, mode=mode, database=store.engine.url.render_as_string())
    else:
        status = f"; metrics: http://{settings.server.host}:{server.effective_port}/metrics" if server else ""
        print(f"pvem controller running (Ctrl-C to stop){status}", flush=True)
        log.info("controller_running", database=store.engine.url.render_as_string())
    try:
        if server is not None:
            server.run()  # returns after a _Stop (waitress catches SystemExit and closes itself)
        else:
            while True:
                time.sleep(3600)
    except _Stop:
        pass
    finally:
        log.info("shutting_down")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        feed.stop()  # open event streams end, freeing their threads
        if api_workers is not None:
            api_workers.stop()
        if server is not None:
            server.close()
            server.task_dispatcher.shutdown()
        if controller is not None:
            controller.stop()
        store.dispose()
        if runtime.fake is not None:
            runtime.fake.stop()
    log.info("stopped")
    return 0


def build_api(settings: Settings, store: Store, passwords: Passwords, feed: Feed,
              controller: ControllerService | None, local_nudge: Callable[[str], None] | None = None) -> Any:
    """The API app of `pvem serve` (and of each extra API worker): nudges reach the in-process controller
    (or `local_nudge`), plus every controller by NOTIFY on PostgreSQL."""
    importer = controller.importer if controller else ControllerService.build_importer(settings, store)
    nudge = notify.sender(store, controller.nudge if controller else local_nudge)
    return create_app(settings, store, nudge=nudge,
                      readiness=controller.readiness_checks() if controller else {"leader": leader_check(store)},
                      passwords=passwords, importer=importer, feed=feed)


def create_server(app: Any, settings: Settings, sock: socket.socket | None = None) -> Any:
    """The waitress server pvem runs (also what bench/ serves its reference endpoints with): on
    server.host/port, or on `sock` (a listening socket shared by API workers)."""
    _json_waitress_errors()
    where: dict[str, Any] = {"sockets": [sock]} if sock is not None else {
        "host": settings.server.host, "port": settings.server.port}
    return waitress.create_server(
        app, **where, threads=settings.server.threads,
        max_request_body_size=settings.server.max_body_bytes, ident="pvem",
        clear_untrusted_proxy_headers=False, connection_limit=settings.server.connection_limit,
        channel_timeout=settings.server.channel_timeout_seconds,
        asyncore_use_poll=True,  # poll(), not select(): past 1024 descriptors select() fails
    )


def create_api_server(app: Any, settings: Settings, nudge: Callable[[str], None] | None = None,
                      module: str = "api.workers") -> tuple[Any, Workers | None]:
    """The API's server and, with `server.workers` > 1, the other workers (started, and accepting on the
    same socket before this returns: until then worker 0 would take every connection). `nudge` takes
    the workers' nudges; `module` is what a worker runs (bench/ adds its reference routes)."""
    if settings.server.workers <= 1:
        return create_server(app, settings), None
    sock = listening_socket(settings.server.host, settings.server.port)
    server = create_server(app, settings, sock=sock)
    workers = Workers(settings, sock, nudge, module=module)
    workers.balance.install(server, 0)
    workers.start()
    if not workers.wait_ready():
        log.warning("api_workers_not_ready", workers=settings.server.workers)
    return server, workers


def _announce(address: str, runtime: Runtime) -> None:
    lines = [f"pvem listening on {address}/api"]
    if runtime.demo:
        fake = runtime.fake
        lines += [
            f"  console: {address}/   (log in as {DEMO_ADMIN[0]} / {DEMO_ADMIN[1]})",
            f"  demo: fake Proxmox (nodes pve1, pve2) at https://{fake.host}:{fake.port}",
            f"  log in: POST {address}/api/auth/login "
            f"{{\"email\": \"{DEMO_ADMIN[0]}\", \"password\": \"{DEMO_ADMIN[1]}\"}}",
            f"  e.g.  curl -s {address}/api/auth/login -H 'Content-Type: application/json' "
            f"-d '{{\"email\":\"{DEMO_ADMIN[0]}\",\"password\":\"{DEMO_ADMIN[1]}\"}}'",
            f"  CLI:  pvem login --server {address}   then   pvem apply -f manifests/web-tier.yaml --wait",
        ]
    lines.append(f"  API document: {address}/api/openapi.json   (Ctrl-C to stop)")
    print("\n".join(lines), flush=True)
