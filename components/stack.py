"""The whole stack from its validated config: one workspace, its clusters, datastores and
experiments. `__main__.py` calls `build_stack`; nothing here reads `pulumi.Config()`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi

from components.agent_image import AgentImage, AgentImageArgs, wheel_path
from components.artifacts import DeployArtifacts
from components.cluster import GpuCluster
from components.config import StackConfig
from components.datastore import Datastore
from components.experiment import DeclaredRun, Experiment
from components.gpu_pool import GpuPool
from components.job_properties import JobTarget, NotDeclarableError, command_job_properties
from components.job_store import JobStore
from components.workspace import MlWorkspace
from jobrunner.errors import ConfigError, JobSpecError, Problem
from jobrunner.spec.job import JobSpec, load_job


def stack_tags(config: StackConfig, stack: str) -> dict[str, str]:
    """Tags on every resource: the stack's own, plus where it came from."""
    return {"environment": config.environment, "managed-by": "trainstack", "stack": stack, **config.tags}


def build_stack(
    config: StackConfig, *, location: str, stack: str, project_dir: Path
) -> dict[str, pulumi.Output[Any]]:
    """Declare every resource of the stack and return the outputs to export.

    Raises ConfigError when a run's job file is missing or invalid, or asks for what a declared
    Azure ML run cannot do (a local data path); raises ValueError for a derived Azure name
    that would be invalid. Both happen before any resource of the failing part is declared.
    """
    runs = _load_runs(config, project_dir)
    tags = stack_tags(config, stack)
    workspace = MlWorkspace(
        config.workspace.name,
        config.workspace,
        location=location,
        environment=config.environment,
        tags=tags,
        shared_key_access=uses_shared_key(config),
    )
    scope = (config.workspace.resource_group, config.workspace.name)
    # Only the deployment writes the image builder's files and the runs' code.
    needs_artifacts = any(p.image.gallery_image_id is None for p in config.pools) or any(
        spec.code for spec in runs.values()
    )
    artifacts = (
        DeployArtifacts(f"{config.workspace.name}-artifacts", workspace=workspace.ref, scope=scope)
        if needs_artifacts
        else None
    )
    clusters = {c.name: GpuCluster(c.name, c, workspace=workspace.ref) for c in config.clusters}
    for d in config.datastores:
        Datastore(d.name, d, workspace=workspace.ref, scope=scope)
    jobs: dict[str, pulumi.Output[Any]] = {}
    for e in config.experiments:
        declared = [
            DeclaredRun(
                name=run.name,
                spec=runs[(e.name, run.name)],
                compute_id=clusters[run.cluster].compute.id,
                gpus_per_node=next(c.sku.gpus for c in config.clusters if c.name == run.cluster),
            )
            for run in e.runs
        ]
        experiment = Experiment(
            e.name,
            e,
            workspace=workspace.ref,
            runs=declared,
            code_account=artifacts.account_name if artifacts else None,
            scope=scope,
        )
        jobs.update({f"{e.name}/{name}": job.name for name, job in experiment.jobs.items()})
    pools = _build_pools(
        config, workspace, artifacts, location=location, scope=scope, tags=tags, project_dir=project_dir
    )
    return {
        "pools": pulumi.Output.all(*[p.scale_set.name for p in pools]),
        "workspaceName": workspace.workspace.name,
        "resourceGroupName": pulumi.Output.from_input(workspace.ref.resource_group_name),
        "clusters": pulumi.Output.all(*[c.compute.name for c in clusters.values()]),
        "jobs": pulumi.Output.from_input(jobs),
    }


def uses_shared_key(config: StackConfig) -> bool:
    """Whether a datastore in the workspace's own account signs with its key or a SAS (ADLS
    datastores have accounts of their own)."""
    return any(d.auth != "identity" for d in config.datastores if d.kind != "adlsgen2")


def _build_pools(
    config: StackConfig,
    workspace: MlWorkspace,
    artifacts: DeployArtifacts | None,
    *,
    location: str,
    scope: tuple[str, str],
    tags: dict[str, str],
    project_dir: Path,
) -> list[GpuPool]:
    """Each pool with its baked image (unless it names an existing one). The job store is the
    workspace's storage account: its blob datastores are containers there."""
    containers = {d.name: d.container for d in config.datastores if d.kind == "blob"}
    out: list[GpuPool] = []
    if not config.pools:
        return out
    store = JobStore(
        f"{config.workspace.name}-job-store",
        pools=[p.name for p in config.pools],
        resource_group=workspace.ref.resource_group_name,
        account_name=workspace.ref.storage_account_name,
    )
    for p in config.pools:
        image_id = p.image.gallery_image_id
        if image_id is None:
            assert artifacts is not None  # declared whenever a pool bakes its image
            image = AgentImage(
                f"{p.name}-agent-image",
                AgentImageArgs(
                    image=p.image,
                    wheel=wheel_path(project_dir),
                    location=location,
                    scope=scope,
                    build_subnet_id=config.build_subnet(p),
                ),
                resource_group=workspace.ref.resource_group_name,
                storage_account_name=artifacts.account_name,
                tags=tags,
            )
        out.append(
            GpuPool(
                p.name,
                p,
                image_id=image_id or image.gallery_image_id,
                resource_group=workspace.ref.resource_group_name,
                location=location,
                storage_account_name=workspace.ref.storage_account_name,
                datastores={name: containers[name] for name in p.datastores},
                scope=scope,
                environments=config.pool_environments(p),
                tags=tags,
                # Its roles are on the store's containers and queues: they must exist first.
                opts=pulumi.ResourceOptions(depends_on=[store]),
            )
        )
    return out


def _load_runs(config: StackConfig, project_dir: Path) -> dict[tuple[str, str], JobSpec]:
    problems: list[Problem] = []
    out: dict[tuple[str, str], JobSpec] = {}
    for e in config.experiments:
        for run in e.runs:
            path = Path(run.job) if Path(run.job).is_absolute() else project_dir / run.job
            try:
                spec = load_job(path)
                # Checked now, so that a run Azure ML cannot take fails before anything is declared.
                command_job_properties(spec, JobTarget("", "", e.name, 1), display_name=run.name)
            except JobSpecError as exc:
                problems.extend(exc.problems)
                continue
            except NotDeclarableError as exc:
                problems.append(Problem(str(path), "", str(exc)))
                continue
            out[(e.name, run.name)] = spec
    if problems:
        raise ConfigError(problems)
    return out
