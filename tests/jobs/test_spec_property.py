"""Whatever YAML a person hands the loader, the answer is a JobSpec or a JobSpecError."""

from __future__ import annotations

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from jobrunner.errors import JobSpecError
from jobrunner.spec.job import JobSpec, parse_job

KEYS = [
    "command",
    "code",
    "environment",
    "inputs",
    "outputs",
    "resources",
    "distribution",
    "limits",
    "environment_variables",
    "trainstack",
    "compute",
    "type",
    "path",
    "image",
    "mode",
    "instance_count",
    "process_count",
    "process_count_per_instance",
    "worker_count",
    "value",
    "local_path",
    "timeout",
    "retry",
    "preparation",
    "max_attempts",
    "x",
    "$schema",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 5),
    st.floats(allow_nan=False, width=32),
    st.sampled_from(
        [
            "pytorch",
            "mpi",
            "tensorflow",
            "ray",
            "azureml:x@latest",
            "${{inputs.x}}",
            "azureml://datastores/d/paths/p",
            "s3://x",
            "uri_file",
            "python:3",
            "{inputs.x}",
        ]
    ),
    st.text(max_size=8),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    doc=st.dictionaries(st.sampled_from(KEYS), documents, max_size=8),
    overrides=st.dictionaries(
        st.sampled_from(
            [
                "inputs.x",
                "resources.instance_count",
                "distribution",
                "command.a",
                "x..y",
                "environment_variables.K",
            ]
        ),
        st.sampled_from(["1", "true", "a b", "", "[1"]),
        max_size=2,
    ),
)
def test_any_yaml_gives_a_spec_or_a_job_spec_error(doc: dict[str, object], overrides: dict[str, str]) -> None:
    text = yaml.safe_dump(doc)
    try:
        spec = parse_job(text, source="fuzz.yml", overrides=overrides, check_paths=False)
    except JobSpecError as exc:
        assert exc.problems and all(str(p) for p in exc.problems)
    else:
        assert isinstance(spec, JobSpec)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_text_gives_a_spec_or_a_job_spec_error(text: str) -> None:
    try:
        spec = parse_job(text, source="fuzz.yml", check_paths=False)
    except JobSpecError as exc:
        assert exc.problems
    else:
        assert spec.command
