"""Arbitrary input to the stack file and Batch AI parsers yields a model or ConfigError, never
another exception (the job file's own property tests are in tests/jobs)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobrunner.errors import ConfigError
from tests.corpus import batchai_files

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
STACK_KEYS = ["trainstack:location", "trainstack:clusters", "trainstack:datastores", "trainstack:workspace",
              "trainstack:pools", "trainstack:experiments", "azure-native:location", "other"]  # fmt: skip
BATCHAI_KEYS = ["nodeCount", "cluster", "pyTorchSettings", "customToolkitSettings", "vmSize", "scaleSettings",
                "stdOutErrPathPrefix", "inputDirectories", "outputDirectories", "mountVolumes"]  # fmt: skip


def _model_or_config_error(rel: str, text: str, load: Callable[[Path], object]) -> None:
    """Write `text` at `rel` in a fresh folder and load it: a model or a ConfigError with a message."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        try:
            load(Path(tmp))
        except ConfigError as exc:
            assert str(exc)


def _stack(text: str) -> None:
    from trainstack.stack import load_stack

    _model_or_config_error("stacks/Pulumi.prop.yaml", text, lambda root: load_stack("prop", root))


@SETTINGS
@given(st.text(max_size=200))
def test_any_text_as_a_stack_file(text: str) -> None:
    _stack(text)


@SETTINGS
@given(st.dictionaries(st.sampled_from(STACK_KEYS), values, max_size=5))
def test_any_config_in_a_stack_file(config: dict[str, Any]) -> None:
    _stack(json.dumps({"config": config}))  # JSON is YAML


def _batchai(data: object | str) -> None:
    from trainstack.batchai.schema import load

    text = data if isinstance(data, str) else json.dumps(data)
    _model_or_config_error("file.json", text, lambda root: load(root / "file.json"))


@SETTINGS
@given(st.text(max_size=200))
def test_any_text_as_a_batchai_file(text: str) -> None:
    _batchai(text)


@SETTINGS
@given(st.dictionaries(st.sampled_from(BATCHAI_KEYS), values, max_size=5))
def test_any_properties_in_a_batchai_file(properties: dict[str, Any]) -> None:
    _batchai({"properties": properties})


# The project's own files always, and the corpus's real ones when it is there.
REAL = (batchai_files("jobs") + batchai_files("clusters"))[:12]


@SETTINGS
@given(st.sampled_from(REAL), st.data())
def test_real_batchai_files_with_one_field_broken(path: Path, data: st.DataObject) -> None:
    """A real file with one property replaced by arbitrary JSON still gives a model or the error."""
    doc = json.loads(path.read_text(encoding="utf-8-sig"))
    props = doc.get("properties") if isinstance(doc, dict) else None
    if isinstance(props, dict) and props:
        key = data.draw(st.sampled_from(sorted(props)))
        props[key] = data.draw(values)
    _batchai(doc)
