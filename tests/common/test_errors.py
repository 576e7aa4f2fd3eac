"""The shared file/field/fix messages that every config loader relies on."""

from __future__ import annotations

from typing import Literal

import pydantic
import pytest

from jobrunner.errors import ConfigError, did_you_mean, field_path
from jobrunner.files import parse_mapping, read_mapping, validate_model


class Ssh(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    adminUser: str


class Cluster(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: str
    maxNodes: int
    priority: Literal["Dedicated", "LowPriority"] = "Dedicated"
    ssh: Ssh | None = None


class Stack(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    clusters: list[Cluster] = []
    tags: dict[str, str] = {}


def test_unknown_key_names_file_path_and_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        validate_model(Stack, {"clusters": [{"name": "a", "maxNode": 4}]}, file="stacks/Pulumi.dev.yaml")
    text = str(info.value)
    assert "stacks/Pulumi.dev.yaml: clusters[0].maxNode: unknown key `maxNode`" in text
    assert "did you mean `maxNodes`?" in text
    # the missing maxNodes is reported too: every problem at once, not the first
    assert "clusters[0].maxNodes: required field is missing" in text


def test_prefix_and_nested_unknown_key() -> None:
    data = {"clusters": [{"name": "a", "maxNodes": 1, "ssh": {"adminUsr": "x"}}]}
    with pytest.raises(ConfigError) as info:
        validate_model(Stack, data, file="f.yaml", prefix=("trainstack:clusters",))
    problems = info.value.problems
    assert any(
        p.field == "trainstack:clusters.clusters[0].ssh.adminUsr" and p.fix == "did you mean `adminUser`?"
        for p in problems
    ), problems


def test_literal_typo_suggests_value() -> None:
    with pytest.raises(ConfigError) as info:
        validate_model(
            Stack, {"clusters": [{"name": "a", "maxNodes": 1, "priority": "Lowpriority"}]}, file=None
        )
    assert "did you mean 'LowPriority'?" in str(info.value)


def test_wrong_type_names_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        validate_model(Stack, {"clusters": [{"name": "a", "maxNodes": "four"}]}, file="x.yaml")
    assert "x.yaml: clusters[0].maxNodes:" in str(info.value)


def test_did_you_mean_gives_nothing_for_unrelated_words() -> None:
    assert did_you_mean("zzzz", ["maxNodes", "minNodes"]) is None
    assert did_you_mean("MAXNODES", ["maxNodes"]) == "maxNodes"


def test_field_path() -> None:
    assert field_path(("clusters", 0, "ssh", "adminUser")) == "clusters[0].ssh.adminUser"


def test_yaml_syntax_error_names_line(tmp_path) -> None:
    bad = tmp_path / "job.yml"
    bad.write_text("command: echo hi\ninputs:\n  x: [1, 2\n")
    with pytest.raises(ConfigError) as info:
        read_mapping(bad)
    assert str(bad) in str(info.value) and "line" in str(info.value)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string", "42"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_mapping(text, source="f.yml")


def test_missing_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        read_mapping(tmp_path / "nope.yml", what="job file")
