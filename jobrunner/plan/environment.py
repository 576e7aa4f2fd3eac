"""The environment variables a job's processes see: the names Azure ML sets, the names Batch AI
set, so that scripts written for either run unchanged, and the values every process of one
node shares (`node_env`).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping

from jobrunner.api import Gang, NodeFacts, NodePaths, RunStoreAccess

# Azure ML (and torch.distributed's env:// init)
MASTER_ADDR = "MASTER_ADDR"
MASTER_PORT = "MASTER_PORT"
WORLD_SIZE = "WORLD_SIZE"
NODE_RANK = "NODE_RANK"
RANK = "RANK"
LOCAL_RANK = "LOCAL_RANK"
LOCAL_WORLD_SIZE = "LOCAL_WORLD_SIZE"
TF_CONFIG = "TF_CONFIG"
AZ_BATCH_MASTER_NODE = "AZ_BATCH_MASTER_NODE"  # "addr:port"
AZUREML_RUN_ID = "AZUREML_RUN_ID"
AZUREML_EXPERIMENT_NAME = "AZUREML_EXPERIMENT_NAME"
# MLflow's own: every process logs into the job run's one MLflow run (`jobrunner.tracking.runs`)
MLFLOW_TRACKING_URI = "MLFLOW_TRACKING_URI"
MLFLOW_RUN_ID = "MLFLOW_RUN_ID"
MLFLOW_EXPERIMENT_NAME = "MLFLOW_EXPERIMENT_NAME"
MLFLOW_REGISTRY_URI = "MLFLOW_REGISTRY_URI"

# Batch AI
AZ_BATCHAI_MPI_MASTER_NODE = "AZ_BATCHAI_MPI_MASTER_NODE"  # "addr"
AZ_BATCHAI_MPI_HOST_FILE = "AZ_BATCHAI_MPI_HOST_FILE"
AZ_BATCHAI_TASK_INDEX = "AZ_BATCHAI_TASK_INDEX"
AZ_BATCHAI_PS_HOSTS = "AZ_BATCHAI_PS_HOSTS"
AZ_BATCHAI_WORKER_HOSTS = "AZ_BATCHAI_WORKER_HOSTS"
AZ_BATCHAI_NUM_GPUS = "AZ_BATCHAI_NUM_GPUS"
AZ_BATCHAI_JOB_MOUNT_ROOT = "AZ_BATCHAI_JOB_MOUNT_ROOT"
AZ_BATCHAI_MOUNT_ROOT = "AZ_BATCHAI_MOUNT_ROOT"
AZ_BATCHAI_JOB_TEMP = "AZ_BATCHAI_JOB_TEMP"
AZ_BATCHAI_SHARED_JOB_TEMP = "AZ_BATCHAI_SHARED_JOB_TEMP"
AZ_BATCHAI_STDOUTERR_DIR = "AZ_BATCHAI_STDOUTERR_DIR"
AZ_BATCHAI_PYTORCH_BACKEND = "AZ_BATCHAI_PYTORCH_BACKEND"  # "nccl" on GPU nodes, "gloo" on CPU
AZ_BATCHAI_PYTORCH_INIT_METHOD = "AZ_BATCHAI_PYTORCH_INIT_METHOD"
AZ_BATCHAI_INPUT_PREFIX = "AZ_BATCHAI_INPUT_"  # + the input's name, upper case
AZ_BATCHAI_OUTPUT_PREFIX = "AZ_BATCHAI_OUTPUT_"  # + the output's name, upper case

# trainstack
TRAINSTACK_ATTEMPT = "TRAINSTACK_ATTEMPT"
# The job's own blobs (`trainstack.store.blobs`): JSON {path: SAS URL}, and when they expire.
TRAINSTACK_RUN_SAS_URLS = "TRAINSTACK_RUN_SAS_URLS"
TRAINSTACK_RUN_SAS_EXPIRES = "TRAINSTACK_RUN_SAS_EXPIRES"
# Python buffers stdout when it is not a terminal; a run's logs should arrive as written.
PYTHONUNBUFFERED = "PYTHONUNBUFFERED"
# OpenMPI refuses to start as root without these; pool nodes and containers often are root.
OMPI_ALLOW_RUN_AS_ROOT = "OMPI_ALLOW_RUN_AS_ROOT"
OMPI_ALLOW_RUN_AS_ROOT_CONFIRM = "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"


def io_variable(prefix: str, name: str) -> str:
    """`AZ_BATCHAI_INPUT_` + `train-data` -> `AZ_BATCHAI_INPUT_TRAIN_DATA`."""
    return prefix + re.sub(r"[^A-Za-z0-9_]", "_", name).upper()


def shared_job_temp(paths: NodePaths) -> str:
    """Batch AI's `$AZ_BATCHAI_SHARED_JOB_TEMP`: a folder for the job's processes on this node.
    Batch AI shared it between nodes over the cluster's file system; a pool's nodes share no
    disk, so scripts that meet through it (Caffe2's file store) need every rank on one node,
    or a datastore path instead."""
    return posixpath.join(paths.temp or paths.root, "shared")


def node_env(
    job_env: Mapping[str, str],
    node: NodeFacts,
    gang: Gang,
    paths: NodePaths,
    *,
    world_size: int,
    experiment: str | None,
    store_access: RunStoreAccess | None = None,
) -> dict[str, str]:
    """The variables every process on this node gets. The job's `environment_variables` go
    first and the pool's on top, so a stray `RANK` in a job file cannot mislead a script (nor
    a job file name the store URLs its processes get: `store_access_env`)."""
    leader = gang.leader.address
    env = dict(job_env)
    env.update(
        {
            MASTER_ADDR: leader,
            MASTER_PORT: str(gang.master_port),
            WORLD_SIZE: str(world_size),
            NODE_RANK: str(gang.node_rank),
            AZ_BATCH_MASTER_NODE: f"{leader}:{gang.master_port}",
            AZ_BATCHAI_MPI_MASTER_NODE: leader,
            AZ_BATCHAI_NUM_GPUS: str(node.gpus),
            AZ_BATCHAI_JOB_MOUNT_ROOT: paths.mounts or paths.root,
            # One root for both: a pool stages cluster and job mounts alike, per job.
            AZ_BATCHAI_MOUNT_ROOT: paths.mounts or paths.root,
            AZ_BATCHAI_JOB_TEMP: paths.temp or paths.root,
            AZ_BATCHAI_SHARED_JOB_TEMP: shared_job_temp(paths),
            AZ_BATCHAI_STDOUTERR_DIR: paths.logs or paths.root,
            AZUREML_RUN_ID: gang.job_id,
            TRAINSTACK_ATTEMPT: str(gang.attempt),
            PYTHONUNBUFFERED: "1",
        }
    )
    if experiment:
        env[AZUREML_EXPERIMENT_NAME] = experiment
    env.update({io_variable(AZ_BATCHAI_INPUT_PREFIX, k): v for k, v in paths.inputs.items()})
    env.update({io_variable(AZ_BATCHAI_OUTPUT_PREFIX, k): v for k, v in paths.outputs.items()})
    for name in (TRAINSTACK_RUN_SAS_URLS, TRAINSTACK_RUN_SAS_EXPIRES):
        env.pop(name, None)  # only the agent says where a job's blobs are
    env.update(store_access_env(store_access))
    return env


def store_access_env(access: RunStoreAccess | None) -> dict[str, str]:
    """The variables that carry a job's SAS URLs for its own blobs (none without access)."""
    if access is None:
        return {}
    return {
        TRAINSTACK_RUN_SAS_URLS: json.dumps(dict(access.urls), sort_keys=True),
        TRAINSTACK_RUN_SAS_EXPIRES: access.expires,
    }
