"""`python -m bench --smoke` runs scenarios end to end and prints the table (figures are not asserted:
speed is the bench's business, not the tests')."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=240)


def test_smoke_run_of_two_scenarios_prints_one_table():
    result = run_bench("--smoke", "--only", "manifests,api-writes")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "| scenario" in out and "| figure" not in out.splitlines()[0]
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert any(line.startswith("| manifests ") for line in table), out
    assert any(line.startswith("| api-writes ") for line in table), out
    assert "targets met" in out and "machine:" in out and "rerun:" in out


def test_list_names_every_scenario_and_unknown_names_are_refused():
    listed = run_bench("--list")
    assert listed.returncode == 0
    for name in ("api-reads", "api-writes", "manifests", "capacity", "robustness"):
        assert name in listed.stdout
    refused = run_bench("--only", "no-such-scenario")
    assert refused.returncode == 2 and "no-such-scenario" in refused.stderr
