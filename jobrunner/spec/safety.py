"""What a job file may name, checked at submit: the checks that keep a job inside its own run.

- Input and output names become folder names on the node (`inputs/<name>`) and variable
  names: `^[A-Za-z_][A-Za-z0-9_.-]*$` (no `/`, no `..`, nothing absolute); no output is
  named `mlflow-artifacts`, the folder of the run's outputs where a local pool keeps its MLflow
  artifacts (`jobrunner.tracking.artifacts`).
- `resources.docker_args` go to `docker run`: only the options in `DOCKER_OPTIONS` (resources
  and hardening, never mounts, devices, privileges, namespaces or the user).
- `environment.image` is an image reference, never an option (`-v/:/host`).
- `trainstack.store.blobs` name blobs under the run's own `job/` folder: plain relative paths
  (`STORE_BLOB`), no `..`, `.` or empty segments, at most `MAX_STORE_BLOBS`.
Datastore names and paths are checked where they are parsed (`jobrunner.spec.uri`).
Each check raises ValueError with the reason and the fix (pydantic reports it at its field).
"""

from __future__ import annotations

import re
import shlex

IO_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
MLFLOW_ARTIFACTS_OUTPUT = "mlflow-artifacts"  # runs/<exp>/<id>/outputs/<this>/: MLflow's artifacts
# `docker run` options a job may add, with whether they take a value. Everything that mounts,
# maps devices, grants capabilities, changes namespaces, the user or the network is absent.
DOCKER_OPTIONS: dict[str, bool] = {
    "--shm-size": True,
    "--ulimit": True,
    "--memory": True,
    "-m": True,
    "--memory-swap": True,
    "--memory-reservation": True,
    "--cpus": True,
    "--cpu-shares": True,
    "--pids-limit": True,
    "--cap-drop": True,
    "--read-only": False,
    "--init": False,
    "--tmpfs": True,
    "--security-opt": True,
    "--label": True,
    "-l": True,
    "--stop-timeout": True,
    "--oom-score-adj": True,
}
# Only security options that take privileges away.
_SECURITY_OPTS = re.compile(r"^no-new-privileges(:true)?$")
# A Docker image reference: [registry[:port]/]path[:tag][@digest], no option, no whitespace.
IMAGE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(:[0-9]+)?(/[A-Za-z0-9._-]+)*"  # registry[:port]/path
    r"(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?"  # :tag
    r"(@[A-Za-z0-9]+:[A-Fa-f0-9]{32,})?$"  # @sha256:digest
)

# One blob a job reads and writes itself, relative to its run's `job/` folder.
STORE_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
MAX_STORE_BLOBS = 32
MAX_STORE_BLOB_CHARS = 256


def check_store_blobs(names: tuple[str, ...]) -> tuple[str, ...]:
    """`names` when each is a plain relative blob path and none repeats (ValueError otherwise)."""
    if len(names) > MAX_STORE_BLOBS:
        raise ValueError(f"{len(names)} blobs: at most {MAX_STORE_BLOBS}; keep related files in one archive")
    for name in names:
        parts = name.split("/")
        if len(name) > MAX_STORE_BLOB_CHARS or not all(STORE_SEGMENT.match(p) for p in parts):
            raise ValueError(
                f"store blob {name!r} is not allowed: a relative path under the run's own `job/` folder, "
                "segments of letters, digits, `_`, `.` and `-` (not starting with `.`), joined by `/`, "
                f"at most {MAX_STORE_BLOB_CHARS} characters (like `checkpoints/latest.pt`)"
            )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"store blob {repeated[0]!r} is named twice: name each blob once")
    return names


def check_io_names(names: dict[str, object], what: str) -> dict[str, object]:
    """`names` when every key is a valid input/output name (`what`: inputs or outputs)."""
    for name in names:
        if not IO_NAME.match(name):
            raise ValueError(
                f"{what} name {name!r} is not allowed: it becomes a folder and a variable name on the node; "
                "use letters, digits, `_`, `.` and `-`, starting with a letter or `_`"
            )
        if what == "outputs" and name == MLFLOW_ARTIFACTS_OUTPUT:
            raise ValueError(
                f"output name {name!r} is taken: the run's MLflow artifacts are kept there; rename the output"
            )
    return names


def docker_arguments(value: str | list[str]) -> list[str]:
    """The arguments of `resources.docker_args` (a string is split as a shell would)."""
    return shlex.split(value) if isinstance(value, str) else list(value)


def check_docker_args(value: str | list[str] | None) -> str | list[str] | None:
    """`value` when each option is in DOCKER_OPTIONS (`--opt value` or `--opt=value`)."""
    if value is None:
        return None
    try:
        args = docker_arguments(value)
    except ValueError as exc:
        raise ValueError(f"docker_args cannot be read: {exc}") from None
    i = 0
    while i < len(args):
        option, eq, inline = args[i].partition("=")
        if option not in DOCKER_OPTIONS:
            allowed = ", ".join(sorted(o for o in DOCKER_OPTIONS if o.startswith("--")))
            raise ValueError(
                f"docker_args: `{args[i]}` is not allowed on a pool (jobs may not add mounts, devices, "
                f"privileges, namespaces or another user); allowed: {allowed}"
            )
        takes_value = DOCKER_OPTIONS[option]
        if takes_value and not eq:
            i += 1
            if i >= len(args):
                raise ValueError(f"docker_args: `{option}` needs a value")
            inline = args[i]
        elif not takes_value and eq:
            raise ValueError(f"docker_args: `{option}` takes no value")
        if option == "--security-opt" and not _SECURITY_OPTS.match(inline):
            raise ValueError(
                f"docker_args: `--security-opt {inline}` is not allowed; only no-new-privileges is"
            )
        i += 1
    return value


def check_image(value: str) -> str:
    """`value` when it is an image reference (`registry/path:tag` or `@sha256:...`)."""
    if not IMAGE.match(value):
        raise ValueError(
            f"environment.image {value!r} is not an image reference: write "
            "`[registry/]name[:tag]` or `name@sha256:<digest>` (no spaces, not starting with `-`)"
        )
    return value
