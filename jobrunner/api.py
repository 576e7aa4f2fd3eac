"""The types every part of the job runner shares: the states a run goes through, why an
attempt failed, what a node knows about itself and its gang, and the launch plan.

The launch is planned by a pure function (`jobrunner.plan.launch_plan.plan_launch`: spec + node facts
+ gang -> `LaunchPlan`) and executed separately (`jobrunner.node.launch`), so that tests and
`jobrunner submit --dry-run` show exactly what a node would run.

Run state machine::

    QUEUED ──claim──► PREPARING ──prep ok──► RUNNING ──exit 0──► SUCCEEDED
      ▲                  │                      │
      │                  │                      ├──exit != 0 / timeout──► FAILED
      │                  │                      │     (a user failure with retries left
      │                  │                      │      goes back to QUEUED, attempt + 1)
      │                  ▼                      ▼
      └──── preempted / lost node / infrastructure (no retry budget spent)
    any non-terminal state ──cancel──► CANCELED

SUCCEEDED, FAILED and CANCELED are terminal.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class JobState(enum.StrEnum):
    """A run's state; see the module docstring for the transitions."""

    QUEUED = "queued"
    PREPARING = "preparing"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED)


class FailureKind(enum.StrEnum):
    """Why an attempt ended badly. Only USER spends the job's retry budget."""

    USER = "user"  # the command exited non-zero
    TIMEOUT = "timeout"  # limits.timeout passed
    CANCELED = "canceled"  # someone asked
    PREEMPTED = "preempted"  # Spot/low-priority eviction (Scheduled Events)
    LOST_NODE = "lost_node"  # a node of the attempt vanished (silent past the stale limit, or restarted)
    INFRASTRUCTURE = "infrastructure"  # staging, store or launch broke, not the user's code


@dataclass(frozen=True)
class NodeFacts:
    """What an agent knows about the node it runs on."""

    name: str  # the agent's name: the VM name on Azure, `<pool>-<i>` on a local pool
    address: str  # reachable by the other gang members (127.0.0.1 on a local pool)
    gpus: int = 0
    gpu_model: str | None = None
    cpus: int = 1
    container_runtime: bool = False  # a working Docker engine, not just the binary
    # The pool's environments map (`<name>[:<version>]` -> image), as (key, image) pairs.
    environments: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class GangMember:
    name: str
    address: str
    rank: int  # node rank; 0 is the leader, whose address is the rendezvous endpoint


@dataclass(frozen=True)
class Gang:
    """The nodes one attempt of a job runs on, as seen from one of them (`node_rank`)."""

    job_id: str
    attempt: int
    members: tuple[GangMember, ...]
    node_rank: int
    master_port: int = 6105  # Azure ML's default
    ports: tuple[int, ...] = ()  # extra ports reserved on each node (TensorFlow, per task)

    @property
    def leader(self) -> GangMember:
        return self.members[0]

    @property
    def size(self) -> int:
        return len(self.members)


@dataclass(frozen=True)
class NodePaths:
    """Where a job's files live on one node, once staged."""

    root: str  # the attempt's directory on this node
    code: str  # the code snapshot: the working directory
    inputs: Mapping[str, str] = field(default_factory=dict)  # input name -> local path
    outputs: Mapping[str, str] = field(default_factory=dict)  # output name -> local path
    logs: str = ""  # where ./logs of the job is kept
    temp: str = ""
    # Batch AI's mount root ($AZ_BATCHAI_JOB_MOUNT_ROOT): links named after the datastores,
    # to the staged inputs and outputs (`jobrunner.node.batchai_runtime`); `root` when empty.
    mounts: str = ""


@dataclass(frozen=True)
class ProcessPlan:
    """One process to start on the node: exactly its argv, environment and directory."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str
    log_name: str  # the name its stdout/stderr are stored under, e.g. "node-0.rank-0"
    rank: int | None = None  # global rank, when the plan knows it


@dataclass(frozen=True)
class RunStoreAccess:
    """The SAS URLs a job gets for the blobs it named in `trainstack.store.blobs` (made by
    `jobrunner.store.run_sas`, which signs; the plan only passes them on)."""

    urls: Mapping[str, str]  # blob path under the run's `job/` folder -> its SAS URL
    expires: str  # ISO 8601, UTC: when every URL stops working


@dataclass(frozen=True)
class LaunchPlan:
    """Everything one node does for one attempt: preparation, then the processes."""

    node: str
    distribution: str  # "none" | "pytorch" | "tensorflow" | "mpi"
    processes: tuple[ProcessPlan, ...]
    preparation: ProcessPlan | None = None
    image: str | None = None  # the job's image when it runs in a container, else None
    notes: tuple[str, ...] = ()  # said in the logs, e.g. "image python:3.11 not used: no container runtime"
    # Files to write before anything starts (absolute path -> text), e.g. the MPI host file.
    files: Mapping[str, str] = field(default_factory=dict)
    # True on an MPI gang's other nodes: mpirun on the leader starts their ranks, so this node
    # starts nothing itself and its attempt ends with the leader's.
    waits_for_leader: bool = False
