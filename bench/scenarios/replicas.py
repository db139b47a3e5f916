"""Two `pvem api` replicas against one on PostgreSQL (bench/replicas.py; `python -m bench.replicas` alone).

Skipped, with a note, when no PostgreSQL answers at PVEM_BENCH_DATABASE_URL's host.
"""

from __future__ import annotations

import socket

from sqlalchemy.engine import make_url

from bench import replicas
from bench.harness import Context, Row
from bench.registry import scenario


def _server_answers() -> bool:
    url = make_url(replicas.SERVER_URL)
    try:
        socket.create_connection((url.host or "127.0.0.1", url.port or 5432), 2).close()
        return True
    except OSError:
        return False


@scenario("replicas", "two API replicas against one, on one PostgreSQL database", timeout_seconds=180)
def run(ctx: Context) -> list[Row]:
    if not _server_answers():
        ctx.notes.append(f"replicas: skipped, no PostgreSQL answers at {replicas.SERVER_URL}")
        return []
    rows = replicas.run(ctx.scale(5.0, 2.0))
    ctx.notes.append("replicas: the issue sets no target here; the clients are threads of one process on the "
                     "same 2 cores, so the ratio shows what a second replica adds on this machine, not a bound")
    return [Row(figure, "-", measured, measured if "/ 1" in figure else "", None)
            for figure, _target, measured, _met in rows]
