"""`Experiment`: an Azure ML environment (from a container image) and the declared runs of
one experiment, each a `machinelearningservices.Job` built from a job file.

A run's code folder is uploaded to a `trainstack-code` container of the deployment's own
account (`DeployArtifacts`: no node can write there) under its content hash and registered as a
code version, so unchanged code is uploaded once. The files are those a pool's submit would
pack (`jobrunner.node.staging.code_files`: `.amlignore`/`.gitignore` apply), without links that
lead out of the folder. The workspace's identity reads the container. Jobs are immutable: the
job name carries a hash of everything the run is, so a changed file, cluster, image or code
declares a new job and leaves the old one as history.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi_azure_native import machinelearningservices as ml
from pulumi_azure_native import storage

from components import roles
from components.config import ExperimentConfig, environment_name, environment_version
from components.job_properties import JobTarget, command_job_properties, job_name
from components.workspace import WorkspaceRef
from jobrunner.node import staging
from jobrunner.spec.job import JobSpec

CODE_CONTAINER = "trainstack-code"


@dataclass(frozen=True)
class DeclaredRun:
    """A run ready to declare: its loaded job file and the cluster it goes to."""

    name: str
    spec: JobSpec
    compute_id: pulumi.Output[str]
    gpus_per_node: int


def code_files(folder: Path) -> list[Path]:
    """The files of a code folder that a pool's submit would pack, sorted, as paths under
    `folder`. A link out of the folder raises ConfigError (`jobrunner.node.staging.code_files`:
    its content is not the folder's, and could be anything on the deploying machine) unless
    an ignore file lists it; whatever still resolves outside is left out."""
    root = folder.resolve()
    out = []
    for rel in staging.code_files(folder):
        path = folder / rel
        if path.is_file() and path.resolve().is_relative_to(root):
            out.append(path)
    return sorted(out)


def code_hash(folder: Path) -> str:
    """A digest of every file's relative path and content: equal code, equal hash."""
    digest = hashlib.sha256()
    for path in code_files(folder):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


class Experiment(pulumi.ComponentResource):
    """The environment and runs of one experiment in `workspace`."""

    def __init__(
        self,
        name: str,
        config: ExperimentConfig,
        *,
        workspace: WorkspaceRef,
        runs: list[DeclaredRun],
        code_account: pulumi.Input[str] | None = None,
        scope: tuple[str, ...] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`code_account`: the account the runs' code goes to (`DeployArtifacts`), needed when a
        run has code; `scope` fixes the workspace's reader role's GUID."""
        super().__init__("trainstack:experiment:Experiment", name, None, opts)
        self._code_account = code_account
        self._scope = scope
        self._prefix = name
        self._workspace = workspace
        self._child = pulumi.ResourceOptions(parent=self)
        environment = ml.EnvironmentVersion(
            f"{name}-env",
            name=environment_name(config.name),
            version=environment_version(config.environment.image),
            resource_group_name=workspace.resource_group_name,
            workspace_name=workspace.workspace_name,
            properties=ml.EnvironmentVersionPropertiesArgs(
                image=config.environment.image,
                os_type="Linux",
                description=f"container image {config.environment.image}",
            ),
            opts=pulumi.ResourceOptions(parent=self, replace_on_changes=["properties"]),
        )
        self._container: storage.BlobContainer | None = None
        self.jobs: dict[str, ml.Job] = {}
        for run in runs:
            code_id = self._code_version(f"{name}-{run.name}", run.spec) if run.spec.code else None
            self.jobs[run.name] = self._job(f"{name}-{run.name}", config.name, run, environment.id, code_id)
        self.register_outputs({"jobs": {k: j.name for k, j in self.jobs.items()}})

    def _code_version(self, name: str, spec: JobSpec) -> pulumi.Output[str]:
        folder = Path(spec.code or ".")
        digest = code_hash(folder)
        if self._code_account is None:
            raise ValueError(f"run {name} has code but the experiment was given no code account")
        account = self._code_account
        if self._container is None:
            self._container = storage.BlobContainer(
                f"{self._prefix}-code",
                container_name=CODE_CONTAINER,
                account_name=account,
                resource_group_name=self._workspace.resource_group_name,
                public_access=storage.PublicAccess.NONE,
                opts=self._child,
            )
            if self._workspace.principal_id is not None:
                roles.assign_role(
                    f"{self._prefix}-workspace-reads-code",
                    role=roles.STORAGE_BLOB_DATA_READER,
                    principal_id=self._workspace.principal_id,
                    scope=roles.container_id(
                        roles.storage_account_id(self._workspace.resource_group_name, account), CODE_CONTAINER
                    ),
                    key=(*self._scope, self._prefix, "code"),
                    description="the workspace reads the declared runs' code",
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[self._container]),
                )
        container = self._container
        blobs = [
            storage.Blob(
                f"{name}-code-{path.relative_to(folder).as_posix()}",
                blob_name=f"{digest}/{path.relative_to(folder).as_posix()}",
                container_name=container.name,
                account_name=account,
                resource_group_name=self._workspace.resource_group_name,
                type=storage.BlobType.BLOCK,
                source=pulumi.FileAsset(str(path)),
                opts=self._child,
            )
            for path in code_files(folder)
        ]
        uri = pulumi.Output.concat(
            "https://",
            account,
            ".blob.core.windows.net/",
            CODE_CONTAINER,
            "/",
            digest,
        )
        version = ml.CodeVersion(
            f"{name}-code",
            name=f"{name}-code",
            version=digest,
            resource_group_name=self._workspace.resource_group_name,
            workspace_name=self._workspace.workspace_name,
            properties=ml.CodeVersionPropertiesArgs(code_uri=uri),
            opts=pulumi.ResourceOptions(parent=self, depends_on=blobs, replace_on_changes=["properties"]),
        )
        return version.id

    def _job(
        self,
        name: str,
        experiment: str,
        run: DeclaredRun,
        environment_id: pulumi.Output[str],
        code_id: pulumi.Output[str] | None,
    ) -> ml.Job:
        def build(ids: list[Any]) -> dict[str, Any]:
            target = JobTarget(
                compute_id=ids[0],
                environment_id=ids[1],
                experiment_name=experiment,
                gpus_per_node=run.gpus_per_node,
                code_id=ids[2],
            )
            return command_job_properties(run.spec, target, display_name=run.name)

        properties = pulumi.Output.all(run.compute_id, environment_id, code_id).apply(build)
        return ml.Job(
            f"{name}-job",
            id=properties.apply(lambda p: job_name(experiment, run.name, p)),
            resource_group_name=self._workspace.resource_group_name,
            workspace_name=self._workspace.workspace_name,
            properties=properties.apply(command_job_args),
            # Everything but display name, description and tags is fixed at submission.
            opts=pulumi.ResourceOptions(parent=self, replace_on_changes=["properties"]),
        )


def command_job_args(props: dict[str, Any]) -> ml.CommandJobArgs:
    """`command_job_properties`' plain dict as the SDK's typed args (the union needs them)."""
    p = dict(props)
    p["inputs"] = {k: _typed_input(v) for k, v in p["inputs"].items()}
    p["outputs"] = {
        k: (ml.UriFileJobOutputArgs if v["job_output_type"] == "uri_file" else ml.UriFolderJobOutputArgs)(**v)
        for k, v in p["outputs"].items()
    }
    p["resources"] = ml.JobResourceConfigurationArgs(**p["resources"])
    if "limits" in p:
        p["limits"] = ml.CommandJobLimitsArgs(**p["limits"])
    if "distribution" in p:
        kind = {"PyTorch": ml.PyTorchArgs, "Mpi": ml.MpiArgs, "TensorFlow": ml.TensorFlowArgs}
        p["distribution"] = kind[p["distribution"]["distribution_type"]](**p["distribution"])
    return ml.CommandJobArgs(**p)


def _typed_input(value: dict[str, Any]) -> Any:
    kind = {
        "literal": ml.LiteralJobInputArgs,
        "uri_file": ml.UriFileJobInputArgs,
        "uri_folder": ml.UriFolderJobInputArgs,
    }
    return kind[value["job_input_type"]](**value)
