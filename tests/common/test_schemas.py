"""The committed JSON Schemas (`schemas/*.schema.json`) are generated from the models they
describe (`trainstack schemas --write`); each must match its model and be a valid schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from trainstack.commands.schemas import render, schema_factories

ROOT = Path(__file__).resolve().parents[2]
FIX = "run `trainstack schemas --write` (or `make schemas`) and commit the result"


@pytest.mark.parametrize("rel", sorted(schema_factories()))
def test_committed_schema_matches_its_model(rel: str) -> None:
    path = ROOT / rel
    assert path.exists(), f"{rel} is missing: {FIX}"
    assert path.read_text(encoding="utf-8") == render(schema_factories()[rel]()), f"{rel} is stale: {FIX}"


@pytest.mark.parametrize("rel", sorted(schema_factories()))
def test_committed_schema_is_a_strict_draft_2020_12_schema(rel: str) -> None:
    schema = json.loads((ROOT / rel).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/" + Path(rel).name)
    # unknown keys are refused, as the loaders refuse them (typos in files must show)
    assert schema["additionalProperties"] is False
