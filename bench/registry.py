"""The one registry of scenarios. A scenario module decorates a function `run(ctx) -> list[Row]`:

    @scenario("api-reads", "GET /api/vms, /api/vms/{id}, /api/auth/me against the reference endpoints")
    def run(ctx: Context) -> list[Row]: ...

and is listed in bench/scenarios/__init__.py (MODULES), which the runner imports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.harness import Context, Row

Runner = Callable[[Context], list[Row]]


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    run: Runner
    timeout_seconds: int  # the whole scenario, full mode (smoke mode gets a third, at least 30 s)
    smoke: bool  # part of `make bench-smoke`


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, summary: str, timeout_seconds: int = 300, smoke: bool = True) -> Callable[[Runner], Runner]:
    def register(run: Runner) -> Runner:
        if name in SCENARIOS:
            raise ValueError(f"two bench scenarios are named {name!r}")
        SCENARIOS[name] = Scenario(name, summary, run, timeout_seconds, smoke)
        return run

    return register
