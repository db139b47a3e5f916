"""`python -m bench.server CONFIG`: pvem's API (as `pvem serve --mode api` builds it) plus the reference
endpoints, on pvem's waitress set-up; prints `BENCH-READY <port>` once listening. SIGTERM stops it.
With `server.workers` > 1 the other workers (`bench.worker`) serve the same app on the same socket."""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any

from api.server import build_api, create_api_server
from bench import reference
from controller.config import Settings, load_settings
from controller.events.feed import Feed
from controller.log import configure_logging
from controller.store import Store
from controller.users import Passwords


def mount_reference(app: Any, store: Store, settings: Settings) -> None:
    reference.mount(app, store, settings.jwt_key(), settings.auth.issuer)


def main(config_path: str) -> int:
    settings = load_settings(config_path)
    configure_logging(settings.logging.format, settings.logging.level)
    store = Store(settings.database.url)
    passwords = Passwords(settings.auth.argon2_time_cost, settings.auth.argon2_memory_kib)
    feed = Feed(store, settings.events.poll_seconds)
    app = build_api(settings, store, passwords, feed, controller=None)
    mount_reference(app, store, settings)
    server, workers = create_api_server(app, settings, module="bench.worker")

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"BENCH-READY {server.effective_port}", flush=True)
    try:
        server.run()
    finally:
        if workers is not None:
            workers.stop()
        feed.stop()
        server.close()
        store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
