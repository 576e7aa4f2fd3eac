"""`jobrunner submit` on a sweep file: the preview of its trials, and one line for job types a
pool does not run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobrunner.cli import app
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
