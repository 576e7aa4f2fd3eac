"""Reading sweep files: the schema, the refusals with their fields, the trial's command job."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from jobrunner.errors import JobSpecError
from jobrunner.sweep.load import load_sweep
from jobrunner.sweep.sampling import make_sampler
from tests.corpus import AML_SWEEPS, corpus_files
from tests.sweep.fixtures import EVERY_EXPRESSION, write_sweep

SWEEPS = corpus_files(AML_SWEEPS, "*.yml", "*.yaml")


def problems(path: Path) -> list[str]:
    with pytest.raises(JobSpecError) as info:
        load_sweep(path)
    return [str(p) for p in info.value.problems]


def test_a_sweep_loads_and_each_trial_is_a_command_job_with_its_values(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path))
    assert sweep.parameters == ("lr", "opt")
    job = sweep.trial_job({"lr": 0.001, "opt": "adam"})
    assert job.command == "python train.py --lr 0.001 --opt adam --n ${{inputs.n}}"
    assert job.environment_variables["AZUREML_SWEEP_lr"] == "0.001"
    assert job.environment_variables["AZUREML_SWEEP_opt"] == "adam"
    assert job.experiment_name == "sweep-tests"
    assert job.code == str((tmp_path / "src").resolve())


def test_trial_timeout_caps_each_trial(tmp_path: Path) -> None:
    limits = {"max_total_trials": 2, "trial_timeout": 60}
    sweep = load_sweep(write_sweep(tmp_path, limits=limits))
    assert sweep.trial_job({"lr": 0.1, "opt": "sgd"}).limits.timeout == 60


def test_unknown_keys_get_a_did_you_mean(tmp_path: Path) -> None:
    found = problems(write_sweep(tmp_path, objectve={"goal": "minimize", "primary_metric": "x"}))
    assert any("objectve" in p and "did you mean `objective`" in p for p in found), found


def test_a_typo_in_the_trial_is_named_under_trial(tmp_path: Path) -> None:
    trial = {"command": "python train.py --lr ${{search_space.lr}}", "code": "src", "enviroment": {}}
    found = problems(write_sweep(tmp_path, trial=trial))
    assert any("trial.enviroment" in p and "did you mean `environment`" in p for p in found), found


def test_a_search_space_reference_to_nothing_is_refused(tmp_path: Path) -> None:
    trial = {"command": "python train.py --lr ${{search_space.lrr}}", "code": "src"}
    found = problems(write_sweep(tmp_path, trial=trial))
    assert any("trial.command" in p and "search_space.lrr" in p for p in found), found


def test_grid_refuses_a_continuous_parameter_with_its_name(tmp_path: Path) -> None:
    found = problems(write_sweep(tmp_path, sampling_algorithm="grid"))
    assert any("search_space.lr" in p and "grid sampling covers `choice`" in p for p in found), found
    assert not any("search_space.opt" in p for p in found)


def test_bayesian_refuses_early_termination_and_lognormal_kinds(tmp_path: Path) -> None:
    policy = {"type": "median_stopping", "evaluation_interval": 1}
    found = problems(write_sweep(tmp_path, sampling_algorithm="bayesian", early_termination=policy))
    assert any("early_termination" in p for p in found), found
    assert any("search_space.lr" in p and "`loguniform`" in p for p in found), found


def test_bandit_takes_exactly_one_slack(tmp_path: Path) -> None:
    policy = {"type": "bandit", "slack_factor": 0.1, "slack_amount": 0.2}
    found = problems(write_sweep(tmp_path, early_termination=policy))
    assert any("early_termination" in p and "exactly one" in p for p in found), found


def test_more_concurrent_than_total_trials_is_refused(tmp_path: Path) -> None:
    found = problems(write_sweep(tmp_path, limits={"max_total_trials": 2, "max_concurrent_trials": 5}))
    assert any("limits.max_concurrent_trials" in p for p in found), found


def test_every_parameter_expression_is_accepted(tmp_path: Path) -> None:
    space = EVERY_EXPRESSION
    trial = {"command": "python train.py " + " ".join(f"--{k} ${{{{search_space.{k}}}}}" for k in space)}
    sweep = load_sweep(write_sweep(tmp_path, search_space=space, trial=trial))
    assert sweep.parameters == tuple(space)


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_corpus_sweeps_that_azure_ml_accepts_load_as_they_are(path: Path, tmp_path: Path) -> None:
    from azure.ai.ml import load_job as azure_load_job

    from jobrunner.files import read_mapping

    copy = tmp_path / path.name
    shutil.copy(path, copy)
    code = read_mapping(copy).get("trial", {}).get("code")
    if isinstance(code, str) and "://" not in code:
        (tmp_path / code.strip()).mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        azure_load_job(copy)  # Azure ML's own loader accepts it
    sweep = load_sweep(copy)
    assert sweep.parameters and sweep.file.limits.max_total_trials >= 1
    point = make_sampler(sweep.file, seed=1).draw(0, [])
    assert point is not None
    job = sweep.trial_job(point.params)
    assert "search_space" not in job.command
