"""`python -m bench.server CONFIG`: pvem's API (as `pvem serve --mode api` builds it) plus the reference
endpoints, on pvem's waitress set-up; prints `BENCH-READY <port>` once listening. SIGTERM stops it."""

from __future__ import annotations

import signal
import sys
from types import FrameType

from api.app import create_app
from api.server import create_server
from bench import reference
from controller.config import load_settings
from controller.log import configure_logging
from controller.store import Store
from controller.users import Passwords


def main(config_path: str) -> int:
    settings = load_settings(config_path)
    configure_logging(settings.logging.format, settings.logging.level)
    store = Store(settings.database.url)
    passwords = Passwords(settings.auth.argon2_time_cost, settings.auth.argon2_memory_kib)
    app = create_app(settings, store, passwords=passwords)
    reference.mount(app, store, settings.jwt_key(), settings.auth.issuer)
    server = create_server(app, settings)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"BENCH-READY {server.effective_port}", flush=True)
    try:
        server.run()
    finally:
        server.close()
        store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
