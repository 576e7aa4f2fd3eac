"""What every node of a gang would run for a job, without running anything: the plans that
`jobrunner submit --dry-run` shows, as JSON or as tables.

Nothing is staged in a dry run, so paths are placeholders in the agent's layout
(`<work>/runs/<job>/<attempt>/...`) and, unless real node facts are given, nodes are
placeholders named `node-<rank>` without GPUs or a container runtime. Nothing is signed
either: the SAS URLs of the job's own blobs (`trainstack.store.blobs`) are placeholders.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from jobrunner.api import Gang, GangMember, LaunchPlan, NodeFacts, NodePaths, RunStoreAccess
from jobrunner.errors import LaunchError
from jobrunner.plan import environment as V
from jobrunner.plan.launch_plan import plan_launch
from jobrunner.spec.job import JobSpec

DRY_RUN_ID = "dry-run"
WORK = "/var/lib/jobrunner"  # placeholder for the agent's work folder
TF_PORTS = (6106, 6107, 6108, 6109)  # what a gang reserves per node for TensorFlow tasks


def placeholder_nodes(count: int) -> list[NodeFacts]:
    """`count` CPU nodes named and addressed `node-<i>`."""
    return [NodeFacts(name=f"node-{i}", address=f"node-{i}") for i in range(count)]


def placeholder_paths(spec: JobSpec, job_id: str = DRY_RUN_ID, attempt: int = 1) -> NodePaths:
    """Where the agent would put the job's files (see `jobrunner.node.attempt.node_paths`)."""
    root = posixpath.join(WORK, "runs", job_id, str(attempt))
    code = posixpath.join(root, "code")
    return NodePaths(
        root=root,
        code=code,
        inputs={name: posixpath.join(root, "inputs", name) for name in spec.data_inputs},
        outputs={name: posixpath.join(root, "outputs", name) for name in spec.outputs},
        logs=posixpath.join(code, "logs"),
        temp=posixpath.join(root, "tmp"),
        mounts=posixpath.join(root, "mounts"),
    )


def placeholder_store_access(spec: JobSpec) -> RunStoreAccess | None:
    """What stands for the SAS URLs the agent signs at launch (`jobrunner.store.run_sas`)."""
    blobs = spec.trainstack.store.blobs
    if not blobs:
        return None
    return RunStoreAccess(
        urls={path: f"<SAS URL of runs/.../{DRY_RUN_ID}/job/{path}, signed at launch>" for path in blobs},
        expires="<limits.timeout + 5 min from launch, at most 24 h>",
    )


def dry_run(spec: JobSpec, pool_nodes: Sequence[NodeFacts] | int) -> list[LaunchPlan]:
    """The plan of every node of a gang for `spec`, the first nodes of `pool_nodes` (or that
    many placeholder nodes) in rank order.

    Raises LaunchError when the pool has fewer nodes than `resources.instance_count`.
    """
    nodes = placeholder_nodes(pool_nodes) if isinstance(pool_nodes, int) else list(pool_nodes)
    if len(nodes) < spec.instance_count:
        raise LaunchError(
            f"the job needs {spec.instance_count} node(s), the pool has {len(nodes)}",
            fix="lower resources.instance_count (--set resources.instance_count=N) or grow the pool",
        )
    nodes = nodes[: spec.instance_count]
    members = tuple(GangMember(n.name, n.address, i) for i, n in enumerate(nodes))
    paths = placeholder_paths(spec)
    access = placeholder_store_access(spec)
    return [
        plan_launch(
            spec,
            node,
            Gang(DRY_RUN_ID, 1, members, rank, ports=TF_PORTS * len(nodes)),
            paths,
            store_access=access,
        )
        for rank, node in enumerate(nodes)
    ]


def describe_plan(spec: JobSpec, nodes: Sequence[NodeFacts] | int) -> dict[str, Any]:
    """`dry_run` as a JSON-able document, with what the loader noted about the job."""
    return {"notes": list(spec.notes), "nodes": render_plans(dry_run(spec, nodes), as_json=True)}


def render_plans(plans: Sequence[LaunchPlan], *, as_json: bool) -> Any:
    """JSON-able list of plans (`as_json`) or a rich renderable: one table per node."""
    if as_json:
        return [_plan_json(p) for p in plans]
    return Group(*(_plan_table(p) for p in plans))


def _plan_json(plan: LaunchPlan) -> dict[str, Any]:
    def process(p: Any) -> dict[str, Any]:
        return {
            "log_name": p.log_name,
            "rank": p.rank,
            "argv": list(p.argv),
            "cwd": p.cwd,
            "env": dict(sorted(p.env.items())),
        }

    return {
        "node": plan.node,
        "distribution": plan.distribution,
        "image": plan.image,
        "notes": list(plan.notes),
        "files": dict(plan.files),
        "waits_for_leader": plan.waits_for_leader,
        "preparation": process(plan.preparation) if plan.preparation else None,
        "processes": [process(p) for p in plan.processes],
    }


def _plan_table(plan: LaunchPlan) -> RenderableType:
    title = f"{plan.node}: {plan.distribution}" + (f" in {plan.image}" if plan.image else "")
    table = Table(title=title, title_justify="left", show_lines=True, expand=False)
    table.add_column("process")
    table.add_column("command")
    table.add_column("rank variables")
    steps = ([plan.preparation] if plan.preparation else []) + list(plan.processes)
    for p in steps:
        shown = {k: v for k, v in p.env.items() if k in _RANK_VARIABLES}
        table.add_row(p.log_name, shlex.join(p.argv), "\n".join(f"{k}={v}" for k, v in sorted(shown.items())))
    parts: list[RenderableType] = [table]
    parts += [Text(f"  note: {n}") for n in plan.notes]
    parts += [
        Text(f"  file {path}:\n    " + text.rstrip("\n").replace("\n", "\n    "))
        for path, text in plan.files.items()
    ]
    return Group(*parts)


_RANK_VARIABLES = {
    V.MASTER_ADDR,
    V.MASTER_PORT,
    V.WORLD_SIZE,
    V.NODE_RANK,
    V.RANK,
    V.LOCAL_RANK,
    V.TF_CONFIG,
    V.AZ_BATCHAI_TASK_INDEX,
    V.AZ_BATCHAI_PYTORCH_BACKEND,
}
