"""A job file (`jobrunner.spec.job.JobSpec`) as the properties of an Azure ML command job, so that
one file runs on a pool and as a declared run on an AmlCompute cluster.

`command_job_properties` is pure: the same spec, cluster and environment always give the
same properties, and `job_name` hashes them, so a changed run becomes a new job (Azure ML
jobs are immutable).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from jobrunner.spec.job import (
    DataInput,
    JobSpec,
    MpiDistribution,
    PyTorchDistribution,
    TensorFlowDistribution,
)
from jobrunner.spec.uri import parse_data_uri

_INPUT_MODES = {"ro_mount": "ReadOnlyMount", "download": "Download", "direct": "Direct"}
_OUTPUT_MODES = {"rw_mount": "ReadWriteMount", "mount": "ReadWriteMount", "upload": "Upload"}


class NotDeclarableError(ValueError):
    """The job file uses something that only exists on a pool (a local data path, SAS URLs
    for its own blobs)."""


@dataclass(frozen=True)
class JobTarget:
    """Where a declared run goes. Ids are ARM ids (plain text once resolved)."""

    compute_id: str
    environment_id: str
    experiment_name: str
    gpus_per_node: int  # the default processes per node, as Azure ML counts them
    code_id: str | None = None


def command_job_properties(spec: JobSpec, target: JobTarget, *, display_name: str) -> dict[str, Any]:
    """The `properties` of a `machinelearningservices.Job` (snake_case keys, as the SDK's
    `CommandJobArgs` takes them; nested members are plain dicts).

    Raises NotDeclarableError for a local input path (Azure ML cannot read the submitter's
    disk: put the data on a datastore) and for `trainstack.store.blobs` (only a pool's agent
    signs those URLs: the run on Azure ML would start without them).
    """
    if spec.trainstack.store.blobs:
        raise NotDeclarableError(
            "trainstack.store.blobs: a declared Azure ML run gets no SAS URLs for its own blobs (a "
            "pool's agent signs them); write what the job keeps to an output instead"
        )
    props: dict[str, Any] = {
        "job_type": "Command",
        "command": spec.command,
        "environment_id": target.environment_id,
        "compute_id": target.compute_id,
        "experiment_name": target.experiment_name,
        "display_name": spec.display_name or display_name,
        "environment_variables": dict(spec.environment_variables),
        "inputs": {name: _input(name, value) for name, value in spec.inputs.items() if value is not None},
        "outputs": {name: _output(out) for name, out in spec.outputs.items()},
        "resources": {"instance_count": spec.instance_count},
    }
    if target.code_id:
        props["code_id"] = target.code_id
    if spec.description:
        props["description"] = spec.description
    if spec.resources.shm_size:
        props["resources"]["shm_size"] = spec.resources.shm_size
    if spec.limits.timeout:
        props["limits"] = {"job_limits_type": "Command", "timeout": f"PT{spec.limits.timeout}S"}
    if spec.tags:
        props["tags"] = {k: str(v) for k, v in spec.tags.items()}
    distribution = _distribution(spec, target.gpus_per_node)
    if distribution:
        props["distribution"] = distribution
    return {k: v for k, v in props.items() if v != {} or k in ("inputs", "outputs")}


def job_name(experiment: str, run: str, properties: dict[str, Any]) -> str:
    """`<experiment>-<run>-<hash of the properties>`: a new name whenever the run changes."""
    digest = hashlib.sha256(json.dumps(properties, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{experiment}-{run}-{digest}"


def _input(name: str, value: DataInput | str | int | float | bool) -> dict[str, Any]:
    if not isinstance(value, DataInput):
        text = json.dumps(value) if isinstance(value, bool) else str(value)
        return {"job_input_type": "literal", "value": text}
    if parse_data_uri(value.path).kind == "local":
        raise NotDeclarableError(
            f"inputs.{name}.path is a local path, which Azure ML cannot read: "
            "upload the data and use azureml://datastores/<name>/paths/<path>"
        )
    out: dict[str, Any] = {"job_input_type": value.type, "uri": value.path, "mode": _INPUT_MODES[value.mode]}
    if value.description:
        out["description"] = value.description
    return out


def _output(value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"job_output_type": value.type, "mode": _OUTPUT_MODES[value.mode]}
    if value.path:
        out["uri"] = value.path
    if value.description:
        out["description"] = value.description
    return out


def _distribution(spec: JobSpec, gpus_per_node: int) -> dict[str, Any] | None:
    dist = spec.distribution
    per_node = max(gpus_per_node, 1)
    if isinstance(dist, PyTorchDistribution):
        return {
            "distribution_type": "PyTorch",
            "process_count_per_instance": dist.process_count_per_instance or per_node,
        }
    if isinstance(dist, MpiDistribution):
        return {
            "distribution_type": "Mpi",
            "process_count_per_instance": dist.process_count_per_instance or per_node,
        }
    if isinstance(dist, TensorFlowDistribution):
        return {
            "distribution_type": "TensorFlow",
            "worker_count": dist.worker_count or spec.instance_count,
            "parameter_server_count": dist.parameter_server_count,
        }
    return None
