"""Every benchmark still runs: `python bench/NAME.py --quick --json` (tiny sizes) exits 0 and
prints one JSON object of the agreed shape. Speed is not checked here: benchmarks are never
timed tests."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = (
    "dispatch",
    "overhead",
    "staging",
    "logs",
    "logpath",
    "preempt",
    "plan",
    "agent",
    "scale",
    "simulate",
    "metrics",
)
FIELDS = {"name", "value", "baseline", "ratio", "unit", "goal", "met", "detail", "host"}


@pytest.mark.slow
@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_runs_and_prints_its_ratio(name: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("JOBRUNNER_STORE", "JOBRUNNER_HOME")}
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / f"{name}.py"), "--quick", "--json"],
        capture_output=True, text=True, timeout=240, env=env, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert set(result) == FIELDS
    assert result["name"] == name
    assert isinstance(result["unit"], str) and result["unit"]
    assert isinstance(result["goal"], str) and result["goal"]
    assert result["met"] in (True, False, None)
    for key in ("value", "baseline", "ratio"):
        assert isinstance(result[key], int | float) and math.isfinite(result[key]), key
    assert result["ratio"] == pytest.approx(result["value"] / result["baseline"], rel=1e-3)
    if name == "scale":  # correctness, not speed: every job ran exactly once per node
        assert result["detail"]["every_job_exactly_once"], result["detail"]
