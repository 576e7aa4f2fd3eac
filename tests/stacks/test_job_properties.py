"""One job file, two worlds: job files a pool accepts become Azure ML command jobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.job_properties import JobTarget, NotDeclarableError, command_job_properties, job_name
from jobrunner.errors import JobSpecError
from jobrunner.spec import JobSpec, load_job, parse_job
from tests.corpus import AML_CLI_V2 as CORPUS
from tests.corpus import OWN_AML_CLI_V2, corpus_files

TARGET = JobTarget(
    compute_id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w/computes/gpu",
    environment_id="/subscriptions/s/.../environments/e/versions/1",
    experiment_name="exp",
    gpus_per_node=4,
    code_id="/subscriptions/s/.../codes/c/versions/1",
)


def pool_jobs() -> list[tuple[str, JobSpec]]:
    out = []
    for path in sorted(OWN_AML_CLI_V2.glob("*.yml")) + corpus_files(CORPUS, "*.yml"):
        try:
            out.append((path.name, load_job(path, check_paths=False)))
        except JobSpecError:
            continue  # registered assets: refused by the pool, so never declared either
    return out


def test_some_job_files_are_accepted_by_a_pool() -> None:
    assert len(pool_jobs()) >= 3


@pytest.mark.parametrize(("name", "spec"), pool_jobs(), ids=[n for n, _ in pool_jobs()])
def test_job_file_maps_field_by_field(name: str, spec: JobSpec) -> None:
    props = command_job_properties(spec, TARGET, display_name="run")
    assert props["job_type"] == "Command" and props["command"] == spec.command
    assert props["compute_id"] == TARGET.compute_id and props["experiment_name"] == "exp"
    assert props["resources"]["instance_count"] == spec.instance_count
    assert props.get("environment_variables", {}) == dict(spec.environment_variables)
    assert set(props["inputs"]) == {k for k, v in spec.inputs.items() if v is not None}
    for key, value in props["inputs"].items():
        assert value["job_input_type"] in ("literal", "uri_folder", "uri_file"), key
    assert set(props["outputs"]) == set(spec.outputs)
    if spec.limits.timeout:
        assert props["limits"]["timeout"] == f"PT{spec.limits.timeout}S"
    if spec.distribution is None:
        assert "distribution" not in props


def test_distributions_take_azure_ml_defaults() -> None:
    def dist(text: str) -> dict[str, object]:
        spec = parse_job("command: python train.py\nresources: {instance_count: 3}\n" + text)
        return command_job_properties(spec, TARGET, display_name="r")["distribution"]  # type: ignore[no-any-return]

    assert dist("distribution: {type: pytorch}") == {
        "distribution_type": "PyTorch",
        "process_count_per_instance": 4,
    }
    assert dist("distribution: {type: mpi, process_count_per_instance: 2}") == {
        "distribution_type": "Mpi",
        "process_count_per_instance": 2,
    }
    assert dist("distribution: {type: tensorflow, parameter_server_count: 1}") == {
        "distribution_type": "TensorFlow",
        "worker_count": 3,
        "parameter_server_count": 1,
    }


def test_inputs_and_outputs_keep_their_modes() -> None:
    spec = parse_job(
        "command: python t.py\n"
        "inputs:\n  lr: 0.1\n  flag: true\n"
        "  data: {type: uri_file, path: 'azureml://datastores/d/paths/a.csv', mode: direct}\n"
        "outputs:\n  model: {mode: upload, path: 'azureml://datastores/d/paths/out/'}\n"
    )
    props = command_job_properties(spec, TARGET, display_name="r")
    assert props["inputs"]["lr"] == {"job_input_type": "literal", "value": "0.1"}
    assert props["inputs"]["flag"] == {"job_input_type": "literal", "value": "true"}
    assert props["inputs"]["data"] == {
        "job_input_type": "uri_file",
        "uri": "azureml://datastores/d/paths/a.csv",
        "mode": "Direct",
    }
    assert props["outputs"]["model"] == {
        "job_output_type": "uri_folder",
        "mode": "Upload",
        "uri": "azureml://datastores/d/paths/out/",
    }


def test_a_local_input_cannot_be_declared(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "job.yml").write_text(
        "command: ls ${{inputs.d}}\ninputs:\n  d: {type: uri_folder, path: ./data}\n"
    )
    spec = load_job(tmp_path / "job.yml")
    with pytest.raises(NotDeclarableError, match="inputs.d.path is a local path"):
        command_job_properties(spec, TARGET, display_name="r")


def test_a_changed_run_is_a_new_job() -> None:
    spec = parse_job("command: python train.py --epochs 1\n")
    props = command_job_properties(spec, TARGET, display_name="r")
    name = job_name("exp", "r", props)
    assert name == job_name("exp", "r", command_job_properties(spec, TARGET, display_name="r"))
    changed = command_job_properties(
        parse_job("command: python train.py --epochs 2\n"), TARGET, display_name="r"
    )
    assert job_name("exp", "r", changed) != name
    assert name.startswith("exp-r-")
