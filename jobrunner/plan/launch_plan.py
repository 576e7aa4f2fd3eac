"""What one node runs for one attempt of a job, planned without touching the machine.

`plan_launch(spec, node, gang, paths) -> LaunchPlan` is pure: the same spec, node facts, gang
and paths give the same argv and environment, which is what tests and `--dry-run` show and
what `jobrunner.node.launch` executes. Per `distribution`:

- none: one `bash -c <command>` on every node (Azure ML runs a non-distributed job with
  `instance_count` N on each of the N nodes).
- pytorch: one `torchrun` per node, c10d rendezvous on the leader's `MASTER_PORT`, which starts
  `process_count_per_instance` workers (default: the node's GPUs, 1 without) that each run
  `bash -c <command>` with torchrun's `RANK`, `LOCAL_RANK`, `WORLD_SIZE`, `MASTER_ADDR/PORT`
  (and Batch AI's `AZ_BATCHAI_TASK_INDEX`, set from `RANK` in front of the command).
- tensorflow: one process per task, `worker_count` workers (default: one per node) then
  `parameter_server_count` parameter servers, dealt round-robin over the nodes, each with its
  own `TF_CONFIG` and a port its node reserved (`gang.ports`: each member's in rank order;
  else the first free one after `master_port`), none used twice on one address.
- mpi: the leader runs `mpirun` over a host file listing every node with
  `process_count_per_instance` slots (nodes sharing an address, as on a local pool, are one
  host line with their slots added); the other nodes start nothing (`waits_for_leader`), as
  mpirun reaches them itself (over ssh, which the pool must allow between its nodes); each
  rank gets `AZ_BATCHAI_TASK_INDEX` from OpenMPI's `OMPI_COMM_WORLD_RANK`.

With a container runtime and an image (`environment.image`, or a registered environment that
the node's environments map or Azure ML's curated rule resolves: `choose_image`), each process
runs in `docker run --rm --network host --ipc host` (`--gpus all` on GPU nodes) with the job's
folders mounted at the same paths and the same variables; without one, no image is used and
the plan's notes say so.
"""

from __future__ import annotations

import itertools
import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass

from jobrunner.api import Gang, LaunchPlan, NodeFacts, NodePaths, ProcessPlan, RunStoreAccess
from jobrunner.errors import JobSpecError, LaunchError, Problem
from jobrunner.plan import environment as V
from jobrunner.spec.environments import resolve_environment, unresolved_fix
from jobrunner.spec.expressions import Ref, render
from jobrunner.spec.job import (
    DataInput,
    Environment,
    JobSpec,
    MpiDistribution,
    PyTorchDistribution,
    TensorFlowDistribution,
)
from jobrunner.spec.safety import docker_arguments

SHELL = ("bash", "-c")
TORCHRUN = "torchrun"
MPIRUN = "mpirun"
DOCKER = "docker"
HOST_FILE = "mpi-hostfile"
OMPI_RANK = "OMPI_COMM_WORLD_RANK"  # the global rank OpenMPI's mpirun gives each process


@dataclass(frozen=True)
class _Context:
    """What every per-distribution planner reads."""

    spec: JobSpec
    command: str
    node: NodeFacts
    gang: Gang
    paths: NodePaths
    base: Mapping[str, str]  # the variables every process of the node gets

    def processes_per_node(self, asked: int | None) -> int:
        """`process_count_per_instance`, or one per GPU (one on a CPU node)."""
        return asked if asked is not None else max(self.node.gpus, 1)


@dataclass(frozen=True)
class _Planned:
    processes: tuple[ProcessPlan, ...]
    world_size: int
    files: Mapping[str, str]
    waits_for_leader: bool = False


def plan_launch(
    spec: JobSpec,
    node: NodeFacts,
    gang: Gang,
    paths: NodePaths,
    *,
    store_access: RunStoreAccess | None = None,
) -> LaunchPlan:
    """The plan for `node` (rank `gang.node_rank`) in `gang` for one attempt of `spec`;
    `store_access` carries the SAS URLs of the blobs the job named (`jobrunner.store.run_sas`).

    Raises LaunchError when the gang does not fit the job (size other than
    `resources.instance_count`, a node rank outside it) or when a data input or output the
    command uses has no staged path in `paths`.
    """
    _check_gang(spec, gang)
    command = render_command(spec.command, spec, paths)
    base = V.node_env(
        spec.environment_variables,
        node,
        gang,
        paths,
        world_size=1,
        experiment=spec.experiment_name,
        store_access=store_access,
    )
    planned = _PLANNERS[spec.distribution_type](_Context(spec, command, node, gang, paths, base))
    prep = None
    if spec.trainstack.preparation:
        prep_env = {**base, V.WORLD_SIZE: str(planned.world_size)}
        prep_cmd = render_command(spec.trainstack.preparation.command, spec, paths)
        prep = ProcessPlan((*SHELL, prep_cmd), prep_env, paths.code, f"node-{gang.node_rank}.preparation")
    image, notes = choose_image(spec, node)
    processes = planned.processes
    if image:
        processes = tuple(
            _in_container(p, i, spec, node, gang, paths, image) for i, p in enumerate(processes)
        )
        prep = _in_container(prep, len(processes), spec, node, gang, paths, image) if prep else None
    if planned.waits_for_leader:
        notes.append(f"mpirun on the leader ({gang.leader.name}) starts this node's ranks")
    return LaunchPlan(
        node=node.name,
        distribution=spec.distribution_type,
        processes=processes,
        preparation=prep,
        image=image,
        notes=tuple(notes),
        files=planned.files,
        waits_for_leader=planned.waits_for_leader,
    )


def choose_image(spec: JobSpec, node: NodeFacts) -> tuple[str | None, list[str]]:
    """The image the job's processes run in on `node` (None: on the node itself), and notes.

    A registered environment resolves through the node's environments map, then Azure ML's
    curated rule (`jobrunner.spec.environments`). Without a container runtime nothing runs in an
    image, whatever the environment, and a note says so. Raises JobSpecError (the job's fault,
    not the node's) for a registered environment that does not resolve on a node that runs
    containers; submit refuses those already when the pool has published its map.
    """
    ref = spec.environment_ref
    if ref is None:
        image = spec.environment.image if isinstance(spec.environment, Environment) else None
        how = ""
    else:
        resolved = resolve_environment(ref, dict(node.environments))
        if resolved is None and node.container_runtime:
            message = f"`{ref.text}` does not resolve to an image on {node.name}"
            raise JobSpecError([Problem(None, "environment", message, unresolved_fix(ref))])
        image = resolved.image if resolved else None
        how = f" (`{ref.text}` by {resolved.how})" if resolved else ""
    if node.container_runtime or (image is None and ref is None):
        return image, []
    what = f"image {image}{how}" if image else f"environment `{ref.text if ref else ''}`"
    return None, [f"{what} not used: no container runtime on {node.name}; the command runs on the node"]


def render_command(command: str, spec: JobSpec, paths: NodePaths) -> str:
    """`command` with `${{inputs.x}}` as the staged path (data) or the value (literal) and
    `${{outputs.x}}` as the local output folder. Raises LaunchError for an unstaged one."""

    def value_of(ref: Ref) -> str | None:
        if ref.namespace == "outputs":
            return _staged(paths.outputs, ref)
        value = spec.inputs.get(ref.name)
        if isinstance(value, DataInput):
            return value.path if value.mode == "direct" else _staged(paths.inputs, ref)
        return None if value is None else str(value)

    return render(command, value_of)


def _staged(where: Mapping[str, str], ref: Ref) -> str:
    try:
        return where[ref.name]
    except KeyError:
        raise LaunchError(f"{ref} has no staged path on this node", fix="stage it before planning") from None


def _check_gang(spec: JobSpec, gang: Gang) -> None:
    if gang.size != spec.instance_count:
        raise LaunchError(
            f"the job asks for {spec.instance_count} node(s) but the gang has {gang.size}",
            fix="gang up exactly resources.instance_count nodes",
        )
    if not 0 <= gang.node_rank < gang.size:
        raise LaunchError(f"node rank {gang.node_rank} is outside a gang of {gang.size}")


def _plan_none(job: _Context) -> _Planned:
    command, gang, paths, base = job.command, job.gang, job.paths, job.base
    r = gang.node_rank
    env = {
        **base,
        V.WORLD_SIZE: str(gang.size),
        V.RANK: str(r),
        V.LOCAL_RANK: "0",
        V.AZ_BATCHAI_TASK_INDEX: str(r),
    }
    return _Planned((ProcessPlan((*SHELL, command), env, paths.code, f"node-{r}", rank=r),), gang.size, {})


def _plan_pytorch(job: _Context) -> _Planned:
    spec, command, node, gang, paths, base = job.spec, job.command, job.node, job.gang, job.paths, job.base
    assert isinstance(spec.distribution, PyTorchDistribution)
    per_node = job.processes_per_node(spec.distribution.process_count_per_instance)
    world = gang.size * per_node
    leader = gang.leader.address
    is_leader = gang.node_rank == 0
    argv = (
        TORCHRUN,
        f"--nnodes={gang.size}",
        f"--nproc-per-node={per_node}",
        f"--node-rank={gang.node_rank}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={leader}:{gang.master_port}",
        f"--rdzv-id={_token(gang.job_id)}-{gang.attempt}",
        # The leader hosts the rendezvous store; saying so avoids a race when every node
        # shares one address (a local pool).
        f"--rdzv-conf=is_host={'true' if is_leader else 'false'}",
        f"--local-addr={node.address}",
        # Restarts are the job runner's (retry budget, gang-wide); torchrun must not add its own.
        "--max-restarts=0",
        "--no-python",
        *SHELL,
        task_index_from(V.RANK, command),
    )
    env = {
        **base,
        V.WORLD_SIZE: str(world),
        V.LOCAL_WORLD_SIZE: str(per_node),
        V.AZ_BATCHAI_PYTORCH_BACKEND: "nccl" if node.gpus else "gloo",
        # torchrun gives each worker MASTER_ADDR/PORT, RANK and WORLD_SIZE: env:// reads them.
        V.AZ_BATCHAI_PYTORCH_INIT_METHOD: "env://",
    }
    return _Planned((ProcessPlan(argv, env, paths.code, f"node-{gang.node_rank}"),), world, {})


def _plan_tensorflow(job: _Context) -> _Planned:
    spec, command, gang, paths, base = job.spec, job.command, job.gang, job.paths, job.base
    assert isinstance(spec.distribution, TensorFlowDistribution)
    workers = spec.distribution.worker_count or gang.size
    tasks = [("worker", i) for i in range(workers)] + [
        ("ps", i) for i in range(spec.distribution.parameter_server_count)
    ]
    placed: dict[tuple[str, int], str] = {}
    mine: list[tuple[str, int]] = []
    # A task takes a port its own node reserved (`gang.ports` holds each member's in rank
    # order), never one used on the same address: nodes that share one (a local pool) must
    # not collide.
    per_member = len(gang.ports) // gang.size
    taken: dict[str, set[int]] = {}
    for n, task in enumerate(tasks):
        rank = n % gang.size
        member = gang.members[rank]
        used = taken.setdefault(member.address, {gang.master_port})
        own = gang.ports[rank * per_member : (rank + 1) * per_member]
        port = next((p for p in own if p not in used), None)
        if port is None:  # fewer reserved than tasks: the ports after the master port
            port = next(p for p in itertools.count(gang.master_port + 1) if p not in used)
        used.add(port)
        placed[task] = f"{member.address}:{port}"
        if rank == gang.node_rank:
            mine.append(task)
    cluster = {
        kind: [placed[t] for t in tasks if t[0] == kind]
        for kind in ("worker", "ps")
        if any(t[0] == kind for t in tasks)
    }
    shared = {
        **base,
        V.WORLD_SIZE: str(len(tasks)),
        V.AZ_BATCHAI_WORKER_HOSTS: ",".join(cluster.get("worker", [])),
        V.AZ_BATCHAI_PS_HOSTS: ",".join(cluster.get("ps", [])),
    }
    processes = []
    for local, (kind, index) in enumerate(mine):
        tf_config = {"cluster": cluster, "task": {"type": kind, "index": index}, "environment": "cloud"}
        env = {
            **shared,
            V.TF_CONFIG: json.dumps(tf_config, separators=(",", ":")),
            V.AZ_BATCHAI_TASK_INDEX: str(index),
            V.LOCAL_RANK: str(local),
        }
        if kind == "worker":
            env[V.RANK] = str(index)
        log = f"node-{gang.node_rank}.{kind}-{index}"
        processes.append(
            ProcessPlan((*SHELL, command), env, paths.code, log, rank=index if kind == "worker" else None)
        )
    return _Planned(tuple(processes), len(tasks), {})


def _plan_mpi(job: _Context) -> _Planned:
    spec, command, gang, paths, base = job.spec, job.command, job.gang, job.paths, job.base
    assert isinstance(spec.distribution, MpiDistribution)
    per_node = job.processes_per_node(spec.distribution.process_count_per_instance)
    world = gang.size * per_node
    if gang.node_rank != 0:
        return _Planned((), world, {}, waits_for_leader=True)
    slots: dict[str, int] = {}
    for member in gang.members:
        slots[member.address] = slots.get(member.address, 0) + per_node
    host_file = posixpath.join(paths.temp or paths.root, HOST_FILE)
    env = {
        **base,
        V.WORLD_SIZE: str(world),
        V.AZ_BATCHAI_MPI_HOST_FILE: host_file,
        V.OMPI_ALLOW_RUN_AS_ROOT: "1",
        V.OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: "1",
    }
    exported = [arg for name in sorted(env) if not name.startswith("OMPI_") for arg in ("-x", name)]
    argv = (
        MPIRUN,
        "--hostfile",
        host_file,
        "-np",
        str(world),
        # Training processes pin their own threads and GPUs; OpenMPI's core binding would
        # squeeze every rank of a node onto one core.
        "--bind-to",
        "none",
        *exported,
        *SHELL,
        task_index_from(OMPI_RANK, command),
    )
    content = "".join(f"{addr} slots={n}\n" for addr, n in slots.items())
    return _Planned((ProcessPlan(argv, env, paths.code, "node-0.mpirun"),), world, {host_file: content})


def task_index_from(rank_variable: str, command: str) -> str:
    """`command` run with Batch AI's `AZ_BATCHAI_TASK_INDEX` set to the process's global rank,
    which only the launcher (torchrun, mpirun) knows when it starts the process: Batch AI
    scripts take it as their rank (`--rank $AZ_BATCHAI_TASK_INDEX`)."""
    return f'export {V.AZ_BATCHAI_TASK_INDEX}="${{{rank_variable}}}"\n{command}'


_PLANNERS = {"none": _plan_none, "pytorch": _plan_pytorch, "tensorflow": _plan_tensorflow, "mpi": _plan_mpi}


def _in_container(
    process: ProcessPlan, index: int, spec: JobSpec, node: NodeFacts, gang: Gang, paths: NodePaths, image: str
) -> ProcessPlan:
    """`process` run by `docker run` in `image`: host network and IPC (NCCL, rendezvous and
    shared memory behave as on the node), the job's folders at the same paths, the same
    variables (passed by name, so values stay out of the argv)."""
    name = f"ts-{_token(gang.job_id)}-{gang.attempt}-{gang.node_rank}-{index}"
    argv: list[str] = [DOCKER, "run", "--rm", "--name", name, "--network", "host", "--ipc", "host"]
    if node.gpus:
        argv += ["--gpus", "all"]
    if spec.resources.shm_size:
        argv += ["--shm-size", spec.resources.shm_size]
    for host, mode in _mounts(paths):
        argv += ["-v", f"{host}:{host}:{mode}"]
    argv += ["-w", process.cwd]
    for key in sorted(process.env):
        argv += ["-e", key]
    extra = spec.resources.docker_args
    argv += docker_arguments(extra) if extra else []  # checked at submit (jobrunner.spec.safety)
    argv += [image, *process.argv]
    return ProcessPlan(tuple(argv), process.env, process.cwd, process.log_name, process.rank)


def _mounts(paths: NodePaths) -> list[tuple[str, str]]:
    """Every folder the job touches, read-only for inputs, none inside another."""
    wanted = [
        (p, "rw") for p in (paths.root, paths.code, paths.temp, paths.logs, *paths.outputs.values()) if p
    ]
    wanted += [(p, "ro") for p in paths.inputs.values() if p]
    out: list[tuple[str, str]] = []
    for path, mode in sorted(wanted, key=lambda pm: len(pm[0])):
        if not any(_inside(path, kept) for kept, _ in out):
            out.append((path, mode))
    return out


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _token(text: str) -> str:
    """`text` as a name Docker and torchrun accept (letters, digits, `_.-`)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text) or "job"
