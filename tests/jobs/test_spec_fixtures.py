"""The job loader over the project's own Azure ML CLI v2 files (tests/fixtures/aml-cli-v2),
written from commandJob.schema.json: what the corpus tests check on real files, checked on
every clone, corpus or not."""

from __future__ import annotations

import pytest

from jobrunner.errors import JobSpecError
from jobrunner.spec.job import load_job
from tests.corpus import OWN_AML_CLI_V2 as OWN


def test_a_curated_environment_resolves_and_a_registered_data_asset_is_refused_by_field() -> None:
    path = OWN / "registered-assets.yml"
    with pytest.raises(JobSpecError) as caught:
        load_job(path, check_paths=False)
    (problem,) = caught.value.problems
    assert (problem.file, problem.field) == (str(path), "inputs.images.path")
    assert "`azureml:images-train:3` is a registered Azure ML asset" in problem.message
    assert "datastore URI" in problem.message


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
