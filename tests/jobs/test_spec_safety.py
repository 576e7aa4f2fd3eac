"""What a job file may name, refused at submit with the field and the fix: input and output
names that are not plain names, the runner's own containers as datastores, datastore paths that
climb (`..`), plain http, docker options outside the allow-list and images that are options."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobrunner.errors import JobSpecError
from jobrunner.spec.job import load_job
from jobrunner.spec.safety import check_docker_args, check_image
from jobrunner.spec.uri import RESERVED_DATASTORES, parse_data_uri
from jobrunner.store.client import POOLS, RUNS


def job(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.yml"
    path.write_text("command: echo hi\n" + text)
    return path


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(JobSpecError) as caught:
        load_job(job(tmp_path, text))
    return str(caught.value)


@pytest.mark.parametrize("name", ["/etc", "/root/.ssh", "../up", "a/b", ".hidden", "9lives", ""])
def test_input_and_output_names_are_plain_names(tmp_path: Path, name: str) -> None:
    inputs = f'inputs:\n  "{name}": {{type: uri_folder, path: azureml://datastores/data/paths/x}}\n'
    assert "not allowed" in refused(tmp_path, inputs)
    outputs = f'outputs:\n  "{name}": {{type: uri_folder}}\n'
    assert "not allowed" in refused(tmp_path, outputs)


def test_no_output_takes_the_folder_of_the_runs_mlflow_artifacts(tmp_path: Path) -> None:
    said = refused(tmp_path, "outputs:\n  mlflow-artifacts: {type: uri_folder}\n")
    assert "'mlflow-artifacts' is taken" in said and "rename the output" in said
    inputs = "inputs:\n  mlflow-artifacts: {type: uri_folder, path: azureml://datastores/data/paths/x}\n"
    assert load_job(job(tmp_path, inputs)).inputs


def test_good_names_pass(tmp_path: Path) -> None:
    spec = load_job(
        job(
            tmp_path,
            "inputs:\n  train_data-v1.2: {type: uri_folder, path: azureml://datastores/data/paths/x/}\n"
            "outputs:\n  _model: {type: uri_folder}\n",
        )
    )
    assert set(spec.inputs) == {"train_data-v1.2"} and set(spec.outputs) == {"_model"}


@pytest.mark.parametrize(
    "path",
    [
        "azureml://datastores/runs/paths/exp/victim/spec.json",
        "azureml://datastores/pools/paths/a100/board.json",
        "azureml://datastores/Runs/paths/x",
        "azureml://datastores/data/paths/../runs/x",
        "azureml://datastores/data/paths/a//b",
        "azureml://datastores/data/paths/./a",
    ],
)
def test_inputs_and_outputs_cannot_name_the_runners_containers_or_climb(tmp_path: Path, path: str) -> None:
    assert "inputs.x" in refused(tmp_path, f"inputs:\n  x: {{type: uri_folder, path: {path}}}\n")
    assert "outputs.y" in refused(tmp_path, f"outputs:\n  y: {{type: uri_folder, path: {path}}}\n")


def test_the_reserved_names_are_the_stores_own_containers() -> None:
    assert {RUNS, POOLS} == RESERVED_DATASTORES
    assert parse_data_uri("azureml://datastores/data/paths/").path == ""


def test_url_inputs_are_https_only(tmp_path: Path) -> None:
    message = refused(tmp_path, "inputs:\n  x: {type: uri_file, path: http://example.com/data.csv}\n")
    assert "https" in message
    assert parse_data_uri("https://example.com/data.csv").kind == "https"


@pytest.mark.parametrize(
    "args",
    [
        "--shm-size 8g --ulimit memlock=-1 --ulimit stack=67108864",
        ["--memory=32g", "--cpus", "8", "--read-only", "--init"],
        "--security-opt no-new-privileges --cap-drop ALL",
    ],
)
def test_resource_and_hardening_options_pass(args: str | list[str]) -> None:
    assert check_docker_args(args) == args


@pytest.mark.parametrize(
    "args",
    [
        "--privileged",
        "-v /:/host",
        "--volume=/:/host",
        "--mount type=bind,src=/,dst=/host",
        "--network host",
        "--pid=host",
        "--user 0",
        "--cap-add SYS_ADMIN",
        "--device /dev/mem",
        "--security-opt seccomp=unconfined",
        "--entrypoint sh",
        "--ulimit",
        "--init=yes",
        "'unterminated",
    ],
)
def test_options_that_escape_the_container_are_refused(args: str) -> None:
    with pytest.raises(ValueError, match="docker_args"):
        check_docker_args(args)


def test_docker_args_are_checked_when_the_job_file_loads(tmp_path: Path) -> None:
    message = refused(tmp_path, "resources: {docker_args: '--privileged -v /:/host'}\n")
    assert "resources.docker_args" in message and "--privileged" in message


@pytest.mark.parametrize(
    "image",
    [
        "python:3.11-slim",
        "mcr.microsoft.com/azureml/curated/acpt-pytorch-2.2-cuda12.1:latest",
        "localhost:5000/team/train:v1",
        "nvcr.io/nvidia/pytorch:24.01-py3",
        "ubuntu@sha256:" + "a" * 64,
    ],
)
def test_image_references_pass(image: str) -> None:
    assert check_image(image) == image


@pytest.mark.parametrize(
    "image", ["-v/:/host", "--privileged", "img name", "", "img:tag;rm -rf /", ":latest"]
)
def test_an_image_is_never_an_option(image: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="image"):
        check_image(image)
    assert "environment.image" in refused(tmp_path, f'environment: {{image: "{image}"}}\n')
