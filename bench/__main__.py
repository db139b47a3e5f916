"""`python -m bench [--smoke] [--only NAME[,NAME...]] [--list]`: run scenarios, print one table.

Exit status: 0 when every scenario ran (met or not: figures are reported, not asserted), 1 when one
failed to run or timed out, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import FrameType

from bench.harness import Context, Row
from bench.registry import SCENARIOS, Scenario
from bench.scenarios import load_all


class ScenarioTimeout(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise ScenarioTimeout()


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = "/".join(f"{value:.2f}" for value in os.getloadavg())
    return f"{os.cpu_count()} CPUs ({model}), load average {load}, Python {platform.python_version()}"


def run_one(item: Scenario, ctx: Context) -> tuple[list[Row], str | None]:
    timeout = max(30, item.timeout_seconds // 3) if ctx.smoke else item.timeout_seconds
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        return item.run(ctx), None
    except ScenarioTimeout:
        return [], f"timed out after {timeout} s"
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        return [], f"failed: {type(exc).__name__}: {exc}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def table(rows: list[tuple[str, Row]]) -> str:
    header = ("scenario", "figure", "target", "measured", "ratio", "met")
    lines = [header] + [(name, row.figure, row.target, row.measured, row.ratio,
                         "-" if row.met is None else ("yes" if row.met else "NO")) for name, row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) + " |"
           for line in lines]
    out.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", default=os.environ.get("BENCH_SMOKE") == "1",
                        help="small sizes and short runs (CI); also BENCH_SMOKE=1")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    load_all()
    if args.list:
        for item in SCENARIOS.values():
            print(f"{item.name:16} {item.summary}{'' if item.smoke else ' (full runs only)'}")
        return 0
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; see --list", file=sys.stderr)
        return 2
    chosen = [SCENARIOS[name] for name in names] if names else [
        item for item in SCENARIOS.values() if item.smoke or not args.smoke]
    mode = "smoke (sizes and durations cut down: figures are not comparable to the targets)" if args.smoke \
        else "full"
    print(f"pvem bench, {mode}\nmachine: {machine()}", flush=True)
    results: list[tuple[str, Row]] = []
    failures = 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pvem-bench-") as workdir:
        ctx = Context(smoke=args.smoke, workdir=Path(workdir))
        for item in chosen:
            print(f"... {item.name}: {item.summary}", flush=True)
            rows, problem = run_one(item, ctx)
            if problem:
                failures += 1
                rows = [Row("(scenario)", "runs", problem, met=False)]
            results.extend((item.name, row) for row in rows)
    print()
    print(table(results))
    judged = [row for _name, row in results if row.met is not None]
    print(f"\n{sum(1 for row in judged if row.met)} of {len(judged)} targets met, "
          f"{time.monotonic() - started:.0f} s, machine: {machine()}")
    only = f" --only {','.join(item.name for item in chosen)}" if names else ""
    print(f"rerun: make bench{'-smoke' if args.smoke else ''}   or   .venv/bin/python -m bench"
          f"{' --smoke' if args.smoke else ''}{only}")
    for note in ctx.notes:
        print(f"note: {note}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
