"""`schemas/job.schema.json` is generated from the models; it must not drift from them, and
it must accept the job files the loader accepts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import yaml

from jobrunner.spec import job_json_schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "schemas" / "job.schema.json"


def rendered() -> str:
    return json.dumps(job_json_schema(), indent=2, sort_keys=True) + "\n"


def test_committed_schema_matches_the_models() -> None:
    if os.environ.get("TRAINSTACK_UPDATE_SCHEMAS"):
        SCHEMA.write_text(rendered(), encoding="utf-8")
    assert SCHEMA.read_text(encoding="utf-8") == rendered(), (
        "schemas/job.schema.json is stale: rerun this test with TRAINSTACK_UPDATE_SCHEMAS=1"
    )


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
