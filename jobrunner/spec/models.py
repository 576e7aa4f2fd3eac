"""The job file as frozen pydantic models: an Azure ML CLI v2 command job
(`commandJob.schema.json`) plus one extension key, `trainstack`, for what Azure ML lacks
(job preparation on every node, a retry policy).

Names follow Azure ML's so that a `JobSpec` maps one to one onto an Azure ML `CommandJob`;
the extension stays apart in `JobSpec.trainstack`. Fields that exist in Azure ML's schema but
mean nothing on a pool (`compute`, `services`, `identity`, ...) are accepted and reported in
`JobSpec.notes`. `jobrunner.spec.job` reads files into these models.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
)

from jobrunner.spec import safety as spec_safety
from jobrunner.spec.environments import EnvironmentRef, parse_environment_ref
from jobrunner.spec.expressions import OUTPUT_PATH_EXPRESSIONS, unknown_output_path_expressions
from jobrunner.spec.uri import DataLocation, parse_data_uri

Literal_ = str | int | float | bool


# The most nodes any pool can have: a VM scale set's limit (`GpuPool`'s maxNodes).
MAX_POOL_NODES = 1000
MAX_TASKS = MAX_POOL_NODES * 8  # TensorFlow tasks: one per GPU of the largest pool; each is planned
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _input_kind(value: Any) -> str | None:
    if isinstance(value, dict | DataInput):
        return "DataInput"
    if value is None or isinstance(value, str | int | float | bool):
        return "literal"
    return None


_ASSET_TYPES = ("mltable", "custom_model", "mlflow_model", "triton_model")


def _uri_type_only(value: Any) -> Any:
    if value in _ASSET_TYPES:
        raise ValueError(
            f"type `{value}` is an Azure ML asset type (tables and models live in a workspace), "
            "which a pool cannot stage; use `uri_folder` or `uri_file` with the data's path"
        )
    return value


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class DataInput(_Model):
    """A file or folder the job reads, staged onto every node before it starts."""

    type: Literal["uri_folder", "uri_file"] = "uri_folder"
    path: str = Field(
        description="azureml://datastores/<name>/paths/<path>, a local path (relative to the job "
        "file), https://..., or wasbs:// / abfss:// on a storage account"
    )
    mode: Literal["ro_mount", "download", "direct"] = Field(
        "ro_mount", description="ro_mount and download both stage a local copy; direct passes the URI"
    )
    datastore: str | None = Field(None, description="ignored: Azure ML uploads local paths there")
    path_on_compute: str | None = Field(None, description="ignored: the pool chooses where inputs go")
    description: str | None = None

    _type = field_validator("type", mode="before")(classmethod(lambda cls, v: _uri_type_only(v)))

    @field_validator("path")
    @classmethod
    def _known_location(cls, value: str) -> str:
        parse_data_uri(value)  # raises ValueError with the reason
        return value

    @property
    def location(self) -> DataLocation:
        return parse_data_uri(self.path)


class DataOutput(_Model):
    """A folder (or file) the job writes; kept with the run and uploaded to `path` if given."""

    type: Literal["uri_folder", "uri_file"] = "uri_folder"
    mode: Literal["rw_mount", "upload", "mount"] = "rw_mount"
    path: str | None = Field(
        None,
        description="azureml://datastores/<name>/paths/<path>; may use ${{name}} (the run's id), "
        "${{output_name}} and ${{default_datastore}}; default: the run's outputs",
    )
    name: str | None = Field(None, description="ignored: a pool does not register data assets")
    version: str | int | None = Field(None, description="ignored: a pool does not register data assets")
    description: str | None = None

    _type = field_validator("type", mode="before")(classmethod(lambda cls, v: _uri_type_only(v)))

    @field_validator("path")
    @classmethod
    def _datastore_only(cls, value: str | None) -> str | None:
        if value is not None and parse_data_uri(value).kind != "datastore":
            raise ValueError("an output path must be azureml://datastores/<name>/paths/<path>")
        unknown = unknown_output_path_expressions(value or "")
        if unknown:
            known = ", ".join(f"${{{{{e}}}}}" for e in OUTPUT_PATH_EXPRESSIONS)
            raise ValueError(
                f"`${{{{{unknown[0]}}}}}` cannot be filled in on a pool: an output path may use {known}"
            )
        return value


class Environment(_Model):
    """Where the command runs: a container image, pulled by the node (or, without a container
    runtime, ignored: the command runs on the node itself, Batch AI's "VM mode")."""

    image: str
    name: str | None = None
    version: str | int | None = None
    description: str | None = None
    tags: dict[str, Any] | None = None
    os_type: Literal["linux", "Linux"] | None = None

    _image = field_validator("image")(classmethod(lambda cls, v: spec_safety.check_image(v)))


def _registered(value: str) -> str:
    parse_environment_ref(value)  # raises ValueError with the forms a pool reads
    return value


# `azureml:<name>@latest`, `azureml:<name>:<version>`, `azureml://registries/...`: resolved to an
# image by the pool's environments map or Azure ML's curated rule (`jobrunner.spec.environments`).
RegisteredEnvironment = Annotated[
    str,
    AfterValidator(_registered),
    Field(description="a registered Azure ML environment: azureml:<name>@latest or azureml:<name>:<version>"),
]


class PyTorchDistribution(_Model):
    type: Literal["pytorch"]
    process_count_per_instance: int | None = Field(
        None, ge=1, description="processes per node; default: the node's GPU count, 1 on a CPU node"
    )


class TensorFlowDistribution(_Model):
    type: Literal["tensorflow"]
    worker_count: int | None = Field(
        None, ge=1, le=MAX_TASKS, description="default: resources.instance_count"
    )
    parameter_server_count: int = Field(0, ge=0, le=MAX_TASKS)


class MpiDistribution(_Model):
    type: Literal["mpi"]
    process_count_per_instance: int | None = Field(
        None, ge=1, description="processes per node; default: the node's GPU count, 1 on a CPU node"
    )


Input = Annotated[
    Annotated[DataInput, Tag("DataInput")] | Annotated[Literal_ | None, Tag("literal")],
    Discriminator(
        _input_kind,
        custom_error_type="input_kind",
        custom_error_message="an input is a literal (text, number, true/false) or a mapping with `path`",
    ),
]

# `name:` with nothing after it is Azure ML's way to ask for a default output folder.
Output = Annotated[
    DataOutput,
    BeforeValidator(lambda v: {} if v is None else v, json_schema_input_type=DataOutput | None),
]

Distribution = Annotated[
    PyTorchDistribution | TensorFlowDistribution | MpiDistribution, Field(discriminator="type")
]


class Resources(_Model):
    instance_count: int = Field(
        1, ge=1, description="nodes the job runs on at once (gang scheduled)",
        json_schema_extra={"maximum": MAX_POOL_NODES},
    )  # fmt: skip
    instance_type: str | None = Field(None, description="ignored: the pool's VM size decides")
    shm_size: str | None = Field(None, pattern=r"^\d+[bkmgBKMG]?$", description="container shared memory")
    docker_args: str | list[str] | None = Field(None, description="extra `docker run` arguments")
    properties: dict[str, Any] | None = None
    locations: list[str] | None = None
    max_instance_count: int | None = None

    @field_validator("instance_count")
    @classmethod
    def _fits_a_pool(cls, value: int) -> int:
        # refused before anything is planned: a plan holds every node's processes
        if value > MAX_POOL_NODES:
            raise ValueError(f"asks for {value} nodes; no pool has more than {MAX_POOL_NODES}")
        return value

    _docker_args = field_validator("docker_args")(
        classmethod(lambda cls, v: spec_safety.check_docker_args(v))
    )


class Limits(_Model):
    timeout: int | None = Field(None, ge=1, description="seconds before the run is stopped")


class Preparation(_Model):
    """Batch AI's job preparation: a shell command run on every node before the job."""

    command: str = Field(min_length=1)


class Retry(_Model):
    """How often a run is tried again after the command fails (a non-zero exit).
    Preemption and lost nodes requeue without spending this budget."""

    max_attempts: int = Field(1, ge=1, le=100, description="attempts in all; 1 means no retry")
    no_retry_exit_codes: tuple[int, ...] = Field(
        (), description="exit codes that mean the job cannot succeed: fail at once"
    )


class StoreAccess(_Model):
    """Blobs of the run's own that the job reads and writes itself: each process gets a
    short-lived SAS URL per blob (`jobrunner.store.run_sas`), and no other store credential."""

    blobs: Annotated[tuple[str, ...], AfterValidator(spec_safety.check_store_blobs)] = Field(
        (),
        description="paths under `runs/<experiment>/<id>/job/` (e.g. `checkpoints/latest.pt`); each "
        "process finds their SAS URLs in TRAINSTACK_RUN_SAS_URLS (JSON: path -> URL)",
    )


class Quota(_Model):
    """Shares of a pool: at most so many nodes at once for the runs of one experiment, or of one
    user. Cooperative (a pool takes the names its submitters write, as Slurm's accounts without
    enforcement would): it keeps a team's pool fair, it is not a security boundary."""

    experiment_nodes: int | None = Field(
        None, ge=1, le=MAX_POOL_NODES,
        description="the runs of this job's experiment hold at most this many nodes at once; "
        "a run that would go over waits, with the reason",
    )  # fmt: skip
    user: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$",
        description="who the job counts against for `user_nodes` (default: the submitter's login name)",
    )  # fmt: skip
    user_nodes: int | None = Field(
        None, ge=1, le=MAX_POOL_NODES, description="this user's runs hold at most this many nodes at once"
    )


class Extension(_Model):
    """The `trainstack:` key: what a pool adds to an Azure ML command job."""

    preparation: Preparation | None = None
    retry: Retry = Retry()
    priority: int = Field(
        0, ge=-1000, le=1000,
        description="the pool scheduler takes higher priorities first, then submission order; "
        "a lower-priority job may still start first where it fits in nodes nobody waits for",
    )  # fmt: skip
    store: StoreAccess = Field(StoreAccess(), description="blobs of its own run the job reads and writes")
    quota: Quota = Field(Quota(), description="shares of the pool this job counts against")


_IGNORED = ("compute", "services", "identity", "queue_settings", "properties", "parent_job_name")


class JobSpec(_Model):
    """One command job, as submitted: what runs, on how many nodes, with which data."""

    schema_: str | None = Field(None, alias="$schema")
    type: Literal["command"] = "command"
    name: str | None = None
    display_name: str | None = None
    experiment_name: str | None = None
    description: str | None = None
    tags: dict[str, Any] | None = None
    command: str = Field(min_length=1)
    code: str | None = Field(None, description="the code folder, relative to the job file")
    environment: Environment | RegisteredEnvironment | None = Field(
        None,
        description="an image, or a registered environment the pool resolves; none: run on the node itself",
    )
    environment_variables: dict[str, str] = {}
    inputs: dict[str, Input] = {}
    outputs: dict[str, Output] = {}
    resources: Resources = Resources()
    distribution: Distribution | None = None
    limits: Limits = Limits()
    trainstack: Extension = Field(Extension(), description="trainstack's additions (not in Azure ML)")
    # Azure ML fields that mean nothing on a pool: accepted, then reported in `notes`.
    compute: str | dict[str, Any] | None = None
    services: dict[str, Any] | None = None
    identity: dict[str, Any] | None = None
    queue_settings: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None
    parent_job_name: str | None = None

    @field_validator("trainstack")
    @classmethod
    def _quota_fits(cls, value: Extension, info: Any) -> Extension:
        # a quota smaller than the job itself could never let it start: refused here, not queued
        resources = info.data.get("resources")
        nodes = resources.instance_count if isinstance(resources, Resources) else 1
        for name in ("experiment_nodes", "user_nodes"):
            limit = getattr(value.quota, name)
            if limit is not None and limit < nodes:
                raise ValueError(
                    f"`trainstack.quota.{name}` is {limit}, fewer than the job's {nodes} nodes "
                    f"(`resources.instance_count`): it could never start (must be {nodes} or more)"
                )
        return value

    @field_validator("inputs", "outputs")
    @classmethod
    def _io_names(cls, value: dict[str, Any], info: Any) -> dict[str, Any]:
        return spec_safety.check_io_names(value, info.field_name)

    @field_validator("environment_variables", mode="before")
    @classmethod
    def _values_as_text(cls, value: Any) -> Any:
        # YAML turns `DEBUG: 1` into an int; the process sees text either way.
        if isinstance(value, dict):
            return {k: _as_text(v) for k, v in value.items()}
        return value

    @field_validator("environment_variables")
    @classmethod
    def _variable_names(cls, value: dict[str, str]) -> dict[str, str]:
        # A name with `=` or a space cannot be set for a process: refused here, not on the node.
        bad = [name for name in value if not ENV_NAME.fullmatch(name)]
        if bad:
            raise ValueError(
                f"`{bad[0]}` is not an environment variable name: letters, digits and `_`, not starting "
                "with a digit (must be like `LEARNING_RATE`)"
            )
        return value

    @property
    def distribution_type(self) -> str:
        """ "none", "pytorch", "tensorflow" or "mpi"."""
        return self.distribution.type if self.distribution else "none"

    @property
    def environment_ref(self) -> EnvironmentRef | None:
        """The registered environment the file names, or None (an image, or none)."""
        return parse_environment_ref(self.environment) if isinstance(self.environment, str) else None

    @property
    def instance_count(self) -> int:
        return self.resources.instance_count

    @property
    def data_inputs(self) -> dict[str, DataInput]:
        return {k: v for k, v in self.inputs.items() if isinstance(v, DataInput)}

    @property
    def notes(self) -> tuple[str, ...]:
        """What the file asks for that a pool does not do, said once at submit time."""
        out = [f"`{name}` is not used on a pool" for name in _IGNORED if getattr(self, name) is not None]
        if self.resources.instance_type:
            out.append("`resources.instance_type` is not used: the pool's VM size decides")
        for name, spec in self.outputs.items():
            if spec.name or spec.version:
                out.append(f"`outputs.{name}` is not registered as a data asset on a pool")
        return tuple(out)


def _as_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value
