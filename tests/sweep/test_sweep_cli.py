"""`jobrunner submit` on a sweep file: the preview of its trials, and one line for job types a
pool does not run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobrunner.cli.main import app
from tests.sweep.fixtures import write_sweep


def test_dry_run_shows_the_first_trials_with_their_commands(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, sampling_algorithm={"type": "random", "seed": 3})
    result = CliRunner().invoke(app, ["submit", str(path), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    preview = json.loads(result.output)
    assert preview["sampling"] == {"type": "random", "seed": 3, "rule": "random"}
    assert len(preview["trials"]) == 5
    for trial in preview["trials"]:
        assert f"--opt {trial['params']['opt']}" in trial["command"]
        assert trial["params"]["opt"] in ("sgd", "adam")
    again = json.loads(CliRunner().invoke(app, ["submit", str(path), "--dry-run", "--json"]).output)
    assert again == preview


def test_a_bad_sweep_is_refused_with_the_field(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, sampling_algorithm="grid")
    result = CliRunner().invoke(app, ["submit", str(path), "--dry-run"])
    assert result.exit_code == 1
    assert "search_space.lr" in result.output and "grid sampling" in result.output


@pytest.mark.parametrize("kind", ["pipeline", "automl", "parallel", "spark"])
def test_another_job_type_gets_one_line(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "job.yml"
    path.write_text(f"type: {kind}\njobs: {{a: {{}}}}\nsettings: {{x: 1}}\ntask: classification\n")
    result = CliRunner().invoke(app, ["submit", str(path), "--dry-run"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and f"not `{kind}` jobs" in lines[0], result.output


def test_submitting_a_sweep_creates_its_parent_run(tmp_path: Path, azurite: str) -> None:
    path = write_sweep(tmp_path)
    env = {"JOBRUNNER_STORE": azurite, "JOBRUNNER_POOL": "cli-sweeps"}
    result = CliRunner().invoke(app, ["submit", str(path), "--json"], env=env)
    assert result.exit_code == 0, result.output
    sweep_id = json.loads(result.output)["id"]
    assert sweep_id.startswith("sweep-")
    shown = json.loads(CliRunner().invoke(app, ["status", sweep_id, "--json"], env=env).output)
    assert shown["kind"] == "sweep" and shown["state"] == "queued"
    assert shown["trials"] == [] and shown["best"] is None
    again = CliRunner().invoke(app, ["submit", str(path)], env=env)
    assert again.exit_code == 0 and "note: pool 'cli-sweeps' has no recorded size" in again.output


def test_the_table_of_trials_marks_the_best_and_names_the_runs(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from rich.console import Console

    from jobrunner.store.status import RunStatus
    from jobrunner.sweep.driver import SweepRecord, TrialRecord
    from jobrunner.sweep.load import load_sweep
    from jobrunner.sweep.report import SweepReport, render_trials

    now = datetime(2026, 1, 1, tzinfo=UTC)
    trials = [
        TrialRecord(index=i, run_id=f"sweep-x-t{i}", params={"lr": lr, "opt": "sgd"}, units={}, state=state,
                    metric=metric, started_at=now, stop_reason=why)
        for i, (lr, state, metric, why) in enumerate([
            (0.1, "succeeded", 0.5, None), (0.01, "succeeded", 0.2, None),
            (0.3, "canceled", 0.9, "bandit: far"),
        ])
    ]  # fmt: skip
    record = SweepRecord(seed=1, started_at=now, trials=trials, best=1, done=True)
    status = RunStatus(id="sweep-x", experiment="e", pool="p", kind="sweep", submitted_at="t", updated_at="t")
    console = Console(width=120, record=True)
    console.print(render_trials(status, SweepReport(load_sweep(write_sweep(tmp_path)).file, record)))
    text = console.export_text()
    (best,) = [line for line in text.splitlines() if line.lstrip().startswith("*")]
    assert "t1" in best and "0.2" in best
    assert "bandit: far" in text and "trial t<i> is run sweep-x-t<i>" in text
    assert "3/6 trials" in text
