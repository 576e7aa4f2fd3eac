"""Turning what people actually write into the one shape `JobSpec` validates.

Three jobs, all on the raw mapping before validation:

- `--set key=value` overrides (`apply_overrides`);
- older Azure ML CLI v2 forms (`compute: {target, instance_count}`, `distribution.process_count`,
  `code: {local_path}`, `{inputs.x}` in the command) and literal inputs written as objects
  (`{type: integer, value: 3}`);
- environment files (`environment: file:env.yml`) read in and judged as if written inline;
- refusals that need a reason rather than a type error: git or registered code, an
  environment that must be built, a distribution type a pool cannot start.

Every function here returns `Problem`s instead of raising, so one pass reports them all.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from jobrunner.errors import Problem, did_you_mean
from jobrunner.spec.environments import parse_environment_ref
from jobrunner.spec.expressions import modernize

DISTRIBUTION_TYPES = ("pytorch", "tensorflow", "mpi")
# refuse(field, message, fix): records one Problem.
Refuse = Callable[..., None]
_LITERAL_INPUT_TYPES = ("string", "integer", "number", "boolean")
# Overridden values under these keys are YAML scalars (`2`, `0.1`, `true`); elsewhere text.
_TYPED_OVERRIDES = ("inputs", "resources", "distribution", "limits", "trainstack")


def apply_overrides(
    data: dict[str, Any], overrides: Mapping[str, str], source: str | None
) -> tuple[dict[str, Any], list[Problem]]:
    """A copy of `data` with each dotted `key=value` override set.

    `inputs.x=v` on a data input sets its `path`. Problems: an empty key, or a key that
    walks through something that is not a mapping.
    """
    out = copy.deepcopy(data)
    problems: list[Problem] = []
    for key, raw in overrides.items():
        steps = key.split(".")
        if not all(steps):
            problems.append(
                Problem(source, f"--set {key}", "empty part in the key", "write e.g. inputs.epochs=3")
            )
            continue
        value: Any = _typed(raw) if steps[0] in _TYPED_OVERRIDES else raw
        node: Any = out
        for i, step in enumerate(steps[:-1]):
            if node.get(step) is None:
                node[step] = {}
            node = node[step]
            if not isinstance(node, dict):
                where = ".".join(steps[: i + 1])
                problems.append(
                    Problem(source, f"--set {key}", f"`{where}` is not a mapping in the job file")
                )
                break
        else:
            last = steps[-1]
            if steps[0] == "inputs" and len(steps) == 2 and isinstance(node.get(last), dict):
                node[last] = {**node[last], "path": raw}
            else:
                node[last] = value
    return out, problems


def _typed(raw: str) -> Any:
    try:
        value = yaml.safe_load(raw)
    except (yaml.YAMLError, RecursionError):  # not a scalar: kept as the text it is
        return raw
    return value if isinstance(value, str | int | float | bool) else raw


def normalize(
    data: dict[str, Any], source: str | None, base_dir: Path | None = None
) -> tuple[dict[str, Any], list[Problem]]:
    """Older forms rewritten to the current ones, and refusals that need their reason said.

    `base_dir` (the job file's folder) anchors `environment: file:<path>`.
    """
    out = dict(data)
    problems: list[Problem] = []

    def refuse(field: str, message: str, fix: str | None = None) -> None:
        problems.append(Problem(source, field, message, fix))

    kind = out.get("type")
    if kind is not None and kind != "command":
        refuse(
            "type", f"a pool runs command jobs only, not `{kind}` jobs", "submit each step as a command job"
        )
        out.pop("type")
    if "component" in out:
        refuse(
            "component",
            "a pool cannot resolve Azure ML components",
            "write `command`, `code` and `environment`",
        )
        out.pop("component")
    _normalize_code(out, refuse)
    _normalize_environment(out, refuse, base_dir)
    _normalize_compute(out)
    _normalize_distribution(out, refuse)
    if isinstance(out.get("command"), str):
        out["command"] = modernize(out["command"])
    for key in ("inputs", "outputs", "environment_variables"):
        if key in out and out[key] is None:
            out[key] = {}
    if isinstance(out.get("inputs"), dict):
        out["inputs"] = {k: _literal_input(v) for k, v in out["inputs"].items()}
    if isinstance(out.get("outputs"), dict):
        out["outputs"] = {k: {} if v is None else v for k, v in out["outputs"].items()}
    return out, problems


def _normalize_code(out: dict[str, Any], refuse: Refuse) -> None:
    code = out.get("code")
    if isinstance(code, dict) and isinstance(code.get("local_path"), str):
        out["code"] = code = code["local_path"]
    if not isinstance(code, str):
        return
    if code.startswith("git+"):
        refuse(
            "code",
            f"`{code}` is git code: a pool takes the code from a local folder next to the job file",
            "clone the repository and set `code` to the folder, e.g. `code: src`",
        )
    elif code.startswith("azureml:") or "://" in code:
        refuse(
            "code",
            f"`{code}` is a registered Azure ML code asset: a pool takes the code from a local folder",
            "set `code` to a local path, e.g. `code: src`",
        )
    else:
        return
    out.pop("code")  # said once: no "folder not found" for the same value


def _normalize_environment(out: dict[str, Any], refuse: Refuse, base_dir: Path | None) -> None:
    env = out.get("environment")
    if isinstance(env, str) and not env.startswith("azureml:"):
        if env.startswith("file:") or env.endswith((".yml", ".yaml")):
            env = _environment_file(env, refuse, base_dir)
            out["environment"] = env
        else:
            refuse(
                "environment",
                f"`{env}` is not an environment: write a mapping with `image`, a registered "
                "`azureml:<name>@latest`, or `file:<environment.yml>`",
                f"for an image, write `environment: {{image: {env}}}`",
            )
            out.pop("environment")
            return
    if isinstance(env, str):
        try:
            parse_environment_ref(env)
        except ValueError as exc:
            refuse("environment", str(exc))
            out.pop("environment")
    elif isinstance(env, dict):
        if "build" in env:
            refuse(
                "environment.build",
                "a pool does not build images from a Docker context",
                "build and push the image, then set `environment.image`",
            )
        if "conda_file" in env:
            refuse(
                "environment.conda_file",
                "a pool does not build conda environments on top of an image",
                "bake the packages into the image, or install them in `trainstack.preparation.command`",
            )
        dropped = ("build", "conda_file", *_ENVIRONMENT_FILE_ONLY)
        if any(k in env for k in dropped):
            out["environment"] = {k: v for k, v in env.items() if k not in dropped}
            if "image" not in env:
                out["environment"] = None


# Keys of an environment YAML that say nothing about where a job runs.
_ENVIRONMENT_FILE_ONLY = ("$schema", "inference_config")


def _environment_file(ref: str, refuse: Refuse, base_dir: Path | None) -> Any:
    """The mapping in the environment YAML `ref` names (relative to the job file), judged
    afterwards as if it were written inline; None (refused) when it cannot be read."""
    rel = ref.removeprefix("file:")
    path = (base_dir or Path(".")) / rel
    try:
        path = path.expanduser().resolve()
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        refuse("environment", f"environment file `{rel}` not found (looked at {path})", "check the path")
        return None
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ValueError: undecodable, NUL in the path
        refuse("environment", f"cannot read environment file `{rel}`: {exc}".splitlines()[0])
        return None
    if not isinstance(data, dict):
        refuse("environment", f"environment file `{rel}` does not hold a mapping", "write `image: <image>`")
        return None
    return data


def _normalize_compute(out: dict[str, Any]) -> None:
    compute = out.get("compute")
    if isinstance(compute, dict) and "instance_count" in compute:
        resources = out.get("resources")
        if resources is None:
            out["resources"] = resources = {}
        if isinstance(resources, dict) and "instance_count" not in resources:
            out["resources"] = {**resources, "instance_count": compute["instance_count"]}


def _normalize_distribution(out: dict[str, Any], refuse: Refuse) -> None:
    dist = out.get("distribution")
    if not isinstance(dist, dict):
        return
    dist = dict(dist)
    kind = dist.get("type")
    if isinstance(kind, str):
        dist["type"] = kind = kind.lower()
        if kind not in DISTRIBUTION_TYPES:
            guess = did_you_mean(kind, DISTRIBUTION_TYPES)
            refuse(
                "distribution.type",
                f"a pool starts pytorch (torchrun), tensorflow (TF_CONFIG) and mpi (mpirun), not `{kind}`",
                f"did you mean `{guess}`?" if guess else "remove `distribution` to run one process per node",
            )
            out.pop("distribution")
            return
    if "process_count" in dist and "process_count_per_instance" not in dist:
        # Older files give the total number of processes across all nodes.
        total = dist.pop("process_count")
        nodes = _instance_count(out)
        if isinstance(total, int) and not isinstance(total, bool) and nodes and total % nodes == 0:
            dist["process_count_per_instance"] = total // nodes
        else:
            refuse(
                "distribution.process_count",
                f"{total!r} processes do not spread evenly over {nodes} node(s)",
                "write `process_count_per_instance` instead",
            )
    out["distribution"] = dist


def _instance_count(out: Mapping[str, Any]) -> int | None:
    resources = out.get("resources")
    count = resources.get("instance_count", 1) if isinstance(resources, dict) else 1
    return count if isinstance(count, int) and count > 0 else None


def _literal_input(value: Any) -> Any:
    """`{type: integer, value: 3}` / `{value: 3}` / `{type: string, default: a}` -> the literal."""
    if not isinstance(value, dict):
        return value
    if value.get("type") in _LITERAL_INPUT_TYPES or set(value) == {"value"}:
        return value.get("value", value.get("default"))
    return value
