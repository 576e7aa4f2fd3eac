"""`schemas/job.schema.json` must accept the job files the loader accepts and refuse typos
(that it matches the models is checked with every schema in `tests/common/test_schemas.py`)."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from jobrunner.spec.job import job_json_schema

ROOT = Path(__file__).resolve().parents[2]


def test_schema_is_valid_and_accepts_the_examples() -> None:
    schema = job_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    jobs = sorted((ROOT / "examples").glob("*/job.yml"))
    assert jobs, "examples/*/job.yml missing"
    for job in jobs:
        validator.validate(yaml.safe_load(job.read_text(encoding="utf-8")))


def test_schema_rejects_an_unknown_top_level_key() -> None:
    validator = jsonschema.Draft202012Validator(job_json_schema())
    errors = list(validator.iter_errors({"command": "echo", "comand": "echo"}))
    assert errors and "comand" in errors[0].message
