"""The job loader over the project's own Azure ML CLI v2 files (tests/fixtures/aml-cli-v2),
written from commandJob.schema.json: what the corpus tests check on real files, checked on
every clone, corpus or not."""

from __future__ import annotations

import pytest

from jobrunner.errors import JobSpecError
from jobrunner.spec import load_job
from tests.corpus import OWN_AML_CLI_V2 as OWN


def test_registered_environment_and_data_asset_are_refused_by_field() -> None:
    path = OWN / "registered-assets.yml"
    with pytest.raises(JobSpecError) as caught:
        load_job(path, check_paths=False)
    assert {p.field for p in caught.value.problems} == {"environment", "inputs.images.path"}
    assert all(p.file == str(path) for p in caught.value.problems)
    assert "azureml:AzureML-sklearn-1.5@latest" in str(caught.value)
    assert "cannot resolve" in str(caught.value)


def test_missing_code_folder_is_refused_when_paths_are_checked() -> None:
    path = OWN / "build-context-and-missing-code.yml"
    assert load_job(OWN / "hello.yml").code is None
    with pytest.raises(JobSpecError) as caught:
        load_job(path)
    assert {p.field for p in caught.value.problems} == {"environment.build", "code"}
    with pytest.raises(JobSpecError) as unchecked:
        load_job(path, check_paths=False)
    assert {p.field for p in unchecked.value.problems} == {"environment.build"}


def test_loaded_fields_are_the_files() -> None:
    tf = load_job(OWN / "tensorflow-workers.yml")
    assert (tf.instance_count, tf.limits.timeout, tf.experiment_name) == (2, 3600, "fixture-tensorflow")
    assert tf.distribution is not None and tf.distribution.type == "tensorflow"
    assert load_job(OWN / "hello-env-var.yml").environment_variables == {"GREETING": "hello from a variable"}
    inputs = load_job(OWN / "hello-inputs.yml").inputs
    assert (inputs["words"], inputs["count"]) == ("hello from an input", 7)
    assert set(load_job(OWN / "hello-output.yml").outputs) == {"greeting"}
