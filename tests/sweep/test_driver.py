"""The sweep's driver over a pool of its own kind (trials advance one logged value per pass),
with its record written out and read back between passes, as a replaced driver would."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobrunner.sweep.driver import SweepRecord, TrialState, drive
from jobrunner.sweep.load import SweepSpec, load_sweep
from tests.sweep.fixtures import write_sweep

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Crash(Exception):
    """The driver's process died here."""


class TrialPool:
    """Trials that log one value of `loss` per pass for `steps` passes, then succeed.

    loss at step s = base(params) + 1 / (s + 1): a trial's final value is its base + 1/steps.
    """

    def __init__(self, steps: int = 4, crash_after_submits: int | None = None) -> None:
        self.steps = steps
        self.runs: dict[int, dict[str, Any]] = {}
        self.max_unfinished = 0
        self.crash_after_submits = crash_after_submits
        self.submits = 0

    @staticmethod
    def base(params: Mapping[str, Any]) -> float:
        return abs(float(params.get("lr", 0.0)) - 0.01) * 10 + (0.0 if params.get("opt") == "adam" else 0.5)

    def submit_trial(self, index: int, job: Any, params: Mapping[str, Any]) -> str:
        if index not in self.runs:
            self.runs[index] = {"params": dict(params), "values": [], "state": "queued", "job": job}
            self.submits += 1
        unfinished = sum(r["state"] in ("queued", "running") for r in self.runs.values())
        self.max_unfinished = max(self.max_unfinished, unfinished)
        if self.crash_after_submits is not None and self.submits >= self.crash_after_submits:
            self.crash_after_submits = None
            raise Crash()
        return f"sweep-t{index}"

    def _run(self, run_id: str) -> dict[str, Any]:
        return self.runs[int(run_id.rsplit("t", 1)[1])]

    def advance(self) -> None:
        for run in self.runs.values():
            if run["state"] in ("queued", "running"):
                run["state"] = "running"
                step = len(run["values"])
                run["values"].append(self.base(run["params"]) + 1 / (step + 1))
                if len(run["values"]) >= self.steps:
                    run["state"] = "succeeded"

    def trial_state(self, run_id: str) -> TrialState:
        return self._run(run_id)["state"]  # type: ignore[no-any-return]

    def metric_history(self, run_id: str, metric: str) -> Sequence[float]:
        assert metric == "loss"
        return list(self._run(run_id)["values"])

    def cancel_trial(self, run_id: str, reason: str) -> None:
        run = self._run(run_id)
        if run["state"] in ("queued", "running"):
            run["state"] = "canceled"
            run["reason"] = reason


def run_sweep(spec: SweepSpec, pool: TrialPool, *, max_passes: int = 200) -> SweepRecord:
    record = SweepRecord.start(seed=7, now=T0)
    for n in range(max_passes):
        now = T0 + timedelta(seconds=10 * n)
        with contextlib.suppress(Crash):  # the record of before the pass is what survives
            record = drive(spec, record, pool, now=now)
        record = SweepRecord.model_validate_json(record.model_dump_json())
        if record.done:
            return record
        pool.advance()
    raise AssertionError("the sweep never ended")


def test_a_random_sweep_respects_its_limits_and_keeps_the_best(tmp_path: Path) -> None:
    spec = load_sweep(write_sweep(tmp_path))
    pool = TrialPool()
    record = run_sweep(spec, pool)
    assert len(record.trials) == len(pool.runs) == 6
    assert pool.max_unfinished <= 2
    assert all(t.state == "succeeded" for t in record.trials)
    best = record.best_trial()
    assert best is not None
    assert best.metric == min(min(r["values"]) for r in pool.runs.values())
    assert best.params == pool.runs[best.index]["params"]


def test_a_grid_sweep_with_bandit_covers_each_combination_once(tmp_path: Path) -> None:
    space = {
        "lr": {"type": "choice", "values": [0.01, 0.5, 0.9]},
        "opt": {"type": "choice", "values": ["sgd", "adam"]},
    }
    policy = {"type": "bandit", "slack_amount": 0.3, "evaluation_interval": 1, "delay_evaluation": 2}
    limits = {"max_total_trials": 20, "max_concurrent_trials": 3}
    path = write_sweep(
        tmp_path, search_space=space, sampling_algorithm="grid", early_termination=policy, limits=limits
    )
    pool = TrialPool(steps=6)
    record = run_sweep(load_sweep(path), pool)
    combos = sorted((t.params["lr"], t.params["opt"]) for t in record.trials)
    assert combos == sorted((lr, opt) for lr in (0.01, 0.5, 0.9) for opt in ("sgd", "adam"))
    assert pool.max_unfinished <= 3
    stopped = [t for t in record.trials if t.state == "canceled"]
    assert stopped and all(t.stop_reason and t.stop_reason.startswith("bandit") for t in stopped)
    best = record.best_trial()
    assert best is not None and best.params == {"lr": 0.01, "opt": "adam"} and best.state == "succeeded"


def test_the_sweep_timeout_cancels_what_still_runs(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, limits={"max_total_trials": 6, "max_concurrent_trials": 2, "timeout": 25})
    pool = TrialPool(steps=50)
    record = run_sweep(load_sweep(path), pool)
    assert record.reason == "timeout: 25 s"
    assert all(r["state"] == "canceled" for r in pool.runs.values())


@settings(max_examples=25, deadline=None)
@given(crash_at=st.integers(1, 6), steps=st.integers(1, 5))
def test_a_driver_dying_mid_pass_neither_loses_nor_doubles_a_trial(crash_at: int, steps: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        spec = load_sweep(write_sweep(Path(folder)))
        pool = TrialPool(steps=steps, crash_after_submits=crash_at)
        record = run_sweep(spec, pool)
    assert len(record.trials) == 6 == len(pool.runs)
    assert sorted(t.index for t in record.trials) == list(range(6))
    assert pool.max_unfinished <= 2


def test_a_done_sweep_is_left_alone(tmp_path: Path) -> None:
    spec = load_sweep(write_sweep(tmp_path, limits={"max_total_trials": 1}))
    pool = TrialPool(steps=1)
    record = run_sweep(spec, pool)
    assert record.done
    assert drive(spec, record, pool, now=T0 + timedelta(days=1)) == record


@pytest.mark.parametrize("goal", ["minimize", "maximize"])
def test_best_follows_the_goal(tmp_path: Path, goal: str) -> None:
    path = write_sweep(tmp_path, objective={"goal": goal, "primary_metric": "loss"})
    pool = TrialPool(steps=2)
    record = run_sweep(load_sweep(path), pool)
    pick = min if goal == "minimize" else max
    best = record.best_trial()
    assert best is not None
    expected = pick((pick(r["values"]), -i if goal == "maximize" else i) for i, r in pool.runs.items())
    assert best.metric == expected[0]
