"""Every real Azure ML CLI v2 job file either loads or is refused with a reason that names
the field: parametrized over the corpus folder, so new files are covered as they arrive."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobrunner.errors import JobSpecError
from jobrunner.spec import JobSpec, load_job
from tests.corpus import AML_CLI_V2 as CORPUS
from tests.corpus import OWN_AML_CLI_V2, corpus_files, needs_corpus

# The project's own job files (tests/fixtures) on every clone, the corpus's real ones beside them.
FILES = sorted(OWN_AML_CLI_V2.glob("*.yml")) + corpus_files(CORPUS, "*.yml", "*.yaml")

# Words that say why a pool cannot run something, one of which every refusal must carry.
REASONS = (
    "registered",
    "a pool",
    "cannot",
    "not found",
    "unknown key",
    "did you mean",
    "must be",
    "should be",
)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_corpus_file_loads_or_is_refused_with_a_reason(path: Path) -> None:
    try:
        spec = load_job(path, check_paths=False)
    except JobSpecError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.file == str(path)
            assert problem.field, f"refusal without a field: {problem}"
            assert any(word in str(problem).lower() for word in REASONS), str(problem)
        return
    assert isinstance(spec, JobSpec)
    assert spec.command.strip()
    # What was loaded survives a round trip through JSON (the store keeps spec.json).
    again = JobSpec.model_validate_json(spec.model_dump_json(by_alias=True))
    assert again == spec


@needs_corpus
def test_registered_environment_and_data_asset_are_refused_by_field() -> None:
    path = CORPUS / "single-step__pytorch__cifar-distributed__job.yml"
    if not path.exists():
        pytest.skip("corpus file not present")
    with pytest.raises(JobSpecError) as caught:
        load_job(path, check_paths=False)
    fields = {p.field for p in caught.value.problems}
    assert fields == {"environment", "inputs.cifar.path"}
    assert "azureml:AzureML-acpt-pytorch" in str(caught.value)
    assert "cannot resolve" in str(caught.value)


@needs_corpus
def test_missing_code_folder_is_refused_when_paths_are_checked() -> None:
    path = CORPUS / "deepspeed__deepspeed-training__job.yml"
    hello = CORPUS / "basics__hello-world.yml"
    if not hello.exists() or not path.exists():
        pytest.skip("corpus file not present")
    assert load_job(hello).code is None
    with pytest.raises(JobSpecError) as caught:
        load_job(path)
    assert {p.field for p in caught.value.problems} == {"environment.build", "code"}
