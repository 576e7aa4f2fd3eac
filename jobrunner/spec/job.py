"""Reading a job file (Azure ML CLI v2 command job + the `trainstack:` extension) into a
validated `JobSpec`, refusing at submit time whatever a pool could not run.

    load_job("job.yml", {"inputs.epochs": "3"})  -> JobSpec
    parse_job(text, source="job.yml", base_dir=".")  -> JobSpec
    job_json_schema()                              -> the file's JSON Schema

Paths in the file (`code`, local data inputs) are resolved against the job file's folder
(also for `--set` overrides) and stored absolute, so the spec means the same on any machine
that reads it back (`JobSpec.model_validate(spec.model_dump(by_alias=True))`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from jobrunner.errors import ConfigError, JobSpecError, Problem, did_you_mean
from jobrunner.files import file_json_schema, parse_mapping, read_text, validate_model
from jobrunner.spec.compat import apply_overrides, normalize
from jobrunner.spec.expressions import NAMESPACES, references
from jobrunner.spec.models import (
    DataInput,
    DataOutput,
    Environment,
    Extension,
    JobSpec,
    Limits,
    MpiDistribution,
    Preparation,
    PyTorchDistribution,
    Resources,
    Retry,
    TensorFlowDistribution,
)
from jobrunner.spec.uri import parse_data_uri

__all__ = [
    "DataInput",
    "DataOutput",
    "Environment",
    "Extension",
    "JobSpec",
    "Limits",
    "MpiDistribution",
    "Preparation",
    "PyTorchDistribution",
    "Resources",
    "Retry",
    "TensorFlowDistribution",
    "job_json_schema",
    "load_job",
    "parse_job",
]

SCHEMA_ID = "https://trainstack.dev/schemas/job.schema.json"
_NO_OVERRIDES: Mapping[str, str] = {}


def load_job(
    path: str | Path, overrides: Mapping[str, str] = _NO_OVERRIDES, *, check_paths: bool = True
) -> JobSpec:
    """Read and validate the job file at `path`, with `--set` style `overrides` applied.

    Raises JobSpecError (every problem found, each naming the file, the field and the fix)
    when the file is missing, not YAML, malformed, or asks for what a pool cannot run.
    `check_paths=False` skips checking that `code` and local inputs exist.
    """
    p = Path(path)
    text = read_text(p, what="job file", error=JobSpecError)
    return parse_job(text, source=str(p), base_dir=p.parent, overrides=overrides, check_paths=check_paths)


def parse_job(
    text: str,
    source: str | None = None,
    base_dir: str | Path = ".",
    overrides: Mapping[str, str] = _NO_OVERRIDES,
    *,
    check_paths: bool = True,
) -> JobSpec:
    """Like `load_job` for text in hand; `source` names it in errors, `base_dir` anchors paths.

    Raises JobSpecError, never anything else, whatever the text holds.
    """
    try:
        data = parse_mapping(text, source=source, what="job file")
    except ConfigError as exc:
        raise JobSpecError(exc.problems) from None
    _refuse_other_job_types(data, source)
    base = Path(base_dir)
    data, problems = apply_overrides(data, overrides, source)
    problems += _nul_problems(data, source)
    data, refused = normalize(data, source, base)
    problems += refused
    # Checked on the raw mapping, so a missing folder is reported with the schema's problems.
    missing = _missing_paths(data, base, source) if check_paths else []
    try:
        spec = validate_model(JobSpec, data, file=source, error=JobSpecError)
    except JobSpecError as exc:
        raise JobSpecError([*problems, *exc.problems, *missing]) from None
    problems += _reference_problems(spec, source)
    problems += missing
    if problems:
        raise JobSpecError(problems)
    return _resolve_paths(spec, base)


def _nul_problems(data: Any, source: str | None, path: str = "") -> list[Problem]:
    """A NUL byte (YAML's `"\\0"`) cannot be in a command, an argument or a variable."""
    if isinstance(data, str):
        return [Problem(source, path, "holds a NUL byte (\\0)", "remove it")] if "\0" in data else []
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in _nul_problems(v, source, f"{path}.{k}".lstrip("."))]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in _nul_problems(v, source, f"{path}[{i}]")]
    return []


def _refuse_other_job_types(data: Mapping[str, Any], source: str | None) -> None:
    """A file of another job type gets one line saying so, not every key a command job lacks."""
    kind = data.get("type")
    if kind is None or str(kind).lower() == "command":
        return
    if str(kind).lower() == "sweep":
        problem = Problem(
            source, "type", "is a sweep job, not a command job", "`jobrunner submit` reads it as a sweep"
        )
    else:
        problem = Problem(
            source,
            "type",
            f"a pool runs command and sweep jobs, not `{kind}` jobs",
            "submit each step as a command job",
        )
    raise JobSpecError([problem])


def job_json_schema() -> dict[str, Any]:
    """The JSON Schema of a job file (what `schemas/job.schema.json` holds)."""
    title = "trainstack job file (Azure ML CLI v2 command job + `trainstack` extension)"
    return file_json_schema(JobSpec, schema_id=SCHEMA_ID, title=title)


def _reference_problems(spec: JobSpec, source: str | None) -> list[Problem]:
    """Every `${{...}}` in the command and the preparation names something that exists."""
    commands = {"command": spec.command}
    if spec.trainstack.preparation:
        commands["trainstack.preparation.command"] = spec.trainstack.preparation.command
    declared: dict[str, Mapping[str, object]] = {"inputs": spec.inputs, "outputs": spec.outputs}
    problems: list[Problem] = []
    for field, command in commands.items():
        for ref in references(command):
            if ref.namespace not in NAMESPACES:
                problems.append(
                    Problem(source, field, f"`{ref}`: a pool substitutes only inputs and outputs", None)
                )
                continue
            names = declared[ref.namespace]
            if ref.name in names and (names[ref.name] is not None or ref.optional):
                continue
            if ref.optional:
                continue
            if ref.name in names:
                problems.append(
                    Problem(
                        source,
                        f"{ref.namespace}.{ref.name}",
                        f"has no value but `{field}` uses it",
                        f"give it a value, `--set {ref.namespace}.{ref.name}=...`, or wrap the use in $[[ ]]",
                    )
                )
                continue
            guess = did_you_mean(ref.name, names)
            fix = (
                f"did you mean `{ref.namespace}.{guess}`?"
                if guess
                else f"declare `{ref.namespace}.{ref.name}`"
            )
            problems.append(Problem(source, field, f"`{ref}` names no declared {ref.namespace[:-1]}", fix))
    return problems


def _local(path: Any) -> str | None:
    """`path` when it names a local file or folder, else None (URIs, assets, junk)."""
    if not isinstance(path, str):
        return None
    try:
        location = parse_data_uri(path)
    except ValueError:
        return None  # the schema check says why
    return location.path if location.kind == "local" else None


def _missing_paths(data: Mapping[str, Any], base: Path, source: str | None) -> list[Problem]:
    """`code` and local data inputs of the raw file that do not exist under `base`."""
    wanted: list[tuple[str, str, Callable[[Path], bool], str]] = []
    code = data.get("code")
    if isinstance(code, str):
        wanted.append(("code", code, Path.is_dir, "code folder"))
    inputs = data.get("inputs")
    for name, value in inputs.items() if isinstance(inputs, dict) else ():
        if isinstance(value, dict):
            rel = _local(value.get("path"))
            kind = value.get("type", "uri_folder")
            if rel is not None and kind in ("uri_file", "uri_folder"):
                exists: Callable[[Path], bool] = Path.is_file if kind == "uri_file" else Path.is_dir
                wanted.append((f"inputs.{name}.path", rel, exists, str(kind)))
    problems = []
    for field, rel, exists, what in wanted:
        try:
            path = _absolute(base, rel)
            found = exists(path)
        except (OSError, ValueError):  # a NUL in the path, a loop of links
            path, found = base / rel, False
        if not found:
            problems.append(
                Problem(source, field, f"{what} `{rel}` not found (looked at {path})", "check the path")
            )
    return problems


def _absolute(base: Path, rel: str) -> Path:
    return (base / Path(rel).expanduser()).resolve()


def _resolve_paths(spec: JobSpec, base: Path) -> JobSpec:
    """`code` and local inputs made absolute against `base`."""
    update: dict[str, Any] = {}
    if spec.code is not None:
        update["code"] = str(_absolute(base, spec.code))
    inputs: dict[str, Any] = dict(spec.inputs)
    for name, value in spec.data_inputs.items():
        if value.location.kind == "local":
            inputs[name] = value.model_copy(update={"path": str(_absolute(base, value.location.path))})
    update["inputs"] = inputs
    return spec.model_copy(update=update)
