"""One job file, two worlds: job files a pool accepts become Azure ML command jobs. What the
mapping produces is read back through Azure ML's own REST model (`CommandJob`, vendored by
azure-ai-ml at the API version azure-native uses), and judged by what that model makes of it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.ai.ml._restclient.arm_ml_service import models as ml
from pydantic.alias_generators import to_camel

from components.job_properties import JobTarget, NotDeclarableError, command_job_properties, job_name
from jobrunner.errors import JobSpecError
from jobrunner.spec.job import DataInput, JobSpec, load_job, parse_job
from tests.corpus import AML_CLI_V2 as CORPUS
from tests.corpus import OWN_AML_CLI_V2, corpus_files
from tests.stacks.arm_contract import check

TARGET = JobTarget(
    compute_id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w/computes/gpu",
    environment_id="/subscriptions/s/.../environments/e/versions/1",
    experiment_name="exp",
    gpus_per_node=4,
    code_id="/subscriptions/s/.../codes/c/versions/1",
)
# Maps whose keys are names a person chose, not API properties.
_NAMED = ("inputs", "outputs", "environment_variables", "tags")


def _camel(value: Any) -> Any:
    return {to_camel(k): _camel(v) for k, v in value.items()} if isinstance(value, dict) else value


def wire(props: dict[str, Any]) -> dict[str, Any]:
    """The properties as the REST API carries them (camelCase; named maps keep their keys)."""
    return {
        to_camel(k): {name: _camel(item) for name, item in v.items()} if k in _NAMED else _camel(v)
        for k, v in props.items()
    }


def rest_job(spec: JobSpec) -> ml.CommandJob:
    """The declared job as Azure ML's REST model reads it; every key and enum value is one
    the API knows (`arm_contract.check`)."""
    body = wire(command_job_properties(spec, TARGET, display_name="run"))
    assert check(body, ml.CommandJob) == []
    return ml.CommandJob(body)


def pool_jobs() -> list[tuple[str, JobSpec]]:
    out = []
    for path in sorted(OWN_AML_CLI_V2.glob("*.yml")) + corpus_files(CORPUS, "*.yml"):
        try:
            spec = load_job(path, check_paths=False)
        except JobSpecError:
            continue  # what a pool refuses is never declared either
        if any(i.location.kind == "local" for i in spec.data_inputs.values()):
            continue  # Azure ML cannot read the submitter's disk (see the test below)
        out.append((path.name, spec))
    return out


def test_some_job_files_are_accepted_by_a_pool() -> None:
    assert len(pool_jobs()) >= 3


@pytest.mark.parametrize(("name", "spec"), pool_jobs(), ids=[n for n, _ in pool_jobs()])
def test_job_file_reads_back_as_the_same_job_in_azure_ml(name: str, spec: JobSpec) -> None:
    job = rest_job(spec)
    assert job.job_type == ml.JobType.COMMAND and job.command == spec.command
    assert job.compute_id == TARGET.compute_id and job.environment_id == TARGET.environment_id
    assert job.resources.instance_count == spec.instance_count
    assert dict(job.environment_variables or {}) == dict(spec.environment_variables)
    for key, value in spec.inputs.items():
        if value is None:
            assert key not in (job.inputs or {})  # an optional input without a value is left out
        elif isinstance(value, DataInput):
            kind = ml.UriFileJobInput if value.type == "uri_file" else ml.UriFolderJobInput
            assert isinstance(job.inputs[key], kind) and job.inputs[key].uri == value.path
            assert isinstance(job.inputs[key].mode, ml.InputDeliveryMode)
        else:
            assert isinstance(job.inputs[key], ml.LiteralJobInput), key
    assert set(job.outputs or {}) == set(spec.outputs)
    for out in (job.outputs or {}).values():
        assert isinstance(out, ml.UriFolderJobOutput | ml.UriFileJobOutput)
        assert isinstance(out.mode, ml.OutputDeliveryMode)
    if spec.limits.timeout:
        assert job.limits.timeout == timedelta(seconds=spec.limits.timeout)
    kinds = {"pytorch": ml.PyTorch, "tensorflow": ml.TensorFlow, "mpi": ml.Mpi}
    if spec.distribution is None:
        assert job.distribution is None
    else:
        assert isinstance(job.distribution, kinds[spec.distribution_type])


def test_distributions_take_azure_ml_defaults() -> None:
    def dist(text: str) -> Any:
        return rest_job(
            parse_job("command: python train.py\nresources: {instance_count: 3}\n" + text)
        ).distribution

    pytorch = dist("distribution: {type: pytorch}")
    assert isinstance(pytorch, ml.PyTorch) and pytorch.process_count_per_instance == 4  # the node's GPUs
    mpi = dist("distribution: {type: mpi, process_count_per_instance: 2}")
    assert isinstance(mpi, ml.Mpi) and mpi.process_count_per_instance == 2
    tf = dist("distribution: {type: tensorflow, parameter_server_count: 1}")
    assert isinstance(tf, ml.TensorFlow) and (tf.worker_count, tf.parameter_server_count) == (3, 1)


def test_inputs_and_outputs_keep_their_modes() -> None:
    job = rest_job(
        parse_job(
            "command: python t.py\n"
            "inputs:\n  lr: 0.1\n  flag: true\n"
            "  data: {type: uri_file, path: 'azureml://datastores/d/paths/a.csv', mode: direct}\n"
            "  folder: {path: 'azureml://datastores/d/paths/f', mode: download}\n"
            "outputs:\n  model: {mode: upload, path: 'azureml://datastores/d/paths/out/'}\n  logs:\n"
        )
    )
    assert (job.inputs["lr"].value, job.inputs["flag"].value) == ("0.1", "true")
    assert isinstance(job.inputs["data"], ml.UriFileJobInput)
    assert job.inputs["data"].mode == ml.InputDeliveryMode.DIRECT
    assert job.inputs["folder"].mode == ml.InputDeliveryMode.DOWNLOAD
    assert isinstance(job.outputs["model"], ml.UriFolderJobOutput)
    assert job.outputs["model"].mode == ml.OutputDeliveryMode.UPLOAD
    assert job.outputs["model"].uri == "azureml://datastores/d/paths/out/"
    assert (
        job.outputs["logs"].mode == ml.OutputDeliveryMode.READ_WRITE_MOUNT and job.outputs["logs"].uri is None
    )


def test_a_local_input_cannot_be_declared(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "job.yml").write_text(
        "command: ls ${{inputs.d}}\ninputs:\n  d: {type: uri_folder, path: ./data}\n"
    )
    spec = load_job(tmp_path / "job.yml")
    with pytest.raises(NotDeclarableError, match="inputs.d.path is a local path"):
        command_job_properties(spec, TARGET, display_name="r")


def test_a_run_that_asks_for_its_own_blobs_cannot_be_declared() -> None:
    spec = parse_job("command: python train.py\ntrainstack: {store: {blobs: [ckpt.pt]}}\n")
    with pytest.raises(NotDeclarableError, match="trainstack.store.blobs: a declared Azure ML run"):
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
