"""Running pvem: settings + store + controller service + the Falcon app on waitress, with clean shutdown.

`serve()` is what `pvem serve` calls. SIGTERM and SIGINT stop taking requests, stop the scheduled
jobs, and exit 0.
"""

from __future__ import annotations

import json
import secrets
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import waitress
import waitress.utilities

from api.app import create_app
from controller.config import ConfigError, Settings, load_settings, require_production_secret
from controller.log import configure_logging, get_logger
from controller.service import ControllerService
from controller.store import Store
from controller.users import Passwords

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
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(48))
        secret_file.chmod(0o600)
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


def serve(config_path: str | None = None, demo: bool = False, host: str | None = None,
          port: int | None = None, mode: str = "all") -> int:
    """Run pvem. mode: `all` (API + controller), `api` (HTTP only), `controller` (reconciler only)."""
    try:
        runtime = demo_settings(config_path) if demo else Runtime(load_settings(config_path), demo=False)
        settings = runtime.settings
        if host is not None or port is not None:
            server_section = settings.server.model_copy(update={
                key: value for key, value in (("host", host), ("port", port)) if value is not None})
            settings = settings.model_copy(update={"server": server_section})
        if not demo and mode != "controller":
            require_production_secret(settings)
    except (ConfigError, ImportError) as exc:
        print(f"pvem: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.logging.format, settings.logging.level)

    store = Store(settings.database.url, echo=settings.database.echo)
    passwords = Passwords(settings.auth.argon2_time_cost, settings.auth.argon2_memory_kib)
    controller = ControllerService(settings, store, passwords) if mode != "api" else None
    if controller is not None:
        controller.prepare(demo_admin=DEMO_ADMIN if demo else None)
    else:
        ControllerService.prepare_api_only(settings, store, passwords)

    server = None
    if mode != "controller":
        app = create_app(settings, store, nudge=controller.nudge if controller else None,
                         readiness=controller.readiness_checks() if controller else None, passwords=passwords)
        _json_waitress_errors()
        server = waitress.create_server(
            app, host=settings.server.host, port=settings.server.port, threads=settings.server.threads,
            max_request_body_size=settings.server.max_body_bytes, ident="pvem",
            clear_untrusted_proxy_headers=False,
        )
    if controller is not None:
        controller.start()
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    if server is not None:
        address = f"http://{settings.server.host}:{server.effective_port}"
        _announce(address, runtime)
        log.info("listening", url=address, demo=demo, mode=mode, database=store.engine.url.render_as_string())
    else:
        print("pvem controller running (Ctrl-C to stop)", flush=True)
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
