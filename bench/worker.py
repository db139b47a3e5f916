"""An extra API worker of the bench server (`server.workers` > 1): pvem's API plus the reference endpoints."""

from __future__ import annotations

import sys

from api.workers import child_main
from bench.server import mount_reference

if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:], extend=mount_reference))
