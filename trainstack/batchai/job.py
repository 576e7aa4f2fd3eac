"""A Batch AI job as a jobrunner job file (an Azure ML CLI v2 command job).

Paths under mounts become datastore inputs/outputs, and the command's references to them
(`$AZ_BATCHAI_JOB_MOUNT_ROOT/scripts/...`, `$AZ_BATCHAI_INPUT_<ID>`, `$AZ_BATCHAI_OUTPUT_<ID>`)
become `${{inputs.x}}` / `${{outputs.x}}`, which both a pool and Azure ML resolve. The other
`AZ_BATCHAI_*` variables (task index, host lists, temp folders) are left in the command: the
pool's agent sets them per process.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from trainstack.batchai.fates import Ledger, placeholders_in
from trainstack.batchai.models import JobProperties
from trainstack.batchai.mounts import JOB_ROOT, MountTable, datastore_name, unknown_mount
from trainstack.batchai.timespan import parse_duration_seconds
from trainstack.batchai.toolkits import plan_toolkit

Target = Literal["pool", "amlcompute"]
Y = "job.yml"
COMMAND_JOB_SCHEMA = "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json"
DEFAULT_WALL_CLOCK_SECONDS = 7 * 24 * 3600  # Batch AI's default maxWallClockTime
# Azure ML's expression for the job's name in an output path (a pool's run id): it stands
# where Batch AI put a folder generated per job, so a rerun does not overwrite outputs.
RUN_SEGMENT = "${{name}}"


def convert_job(
    props: JobProperties, name: str, mounts: MountTable, ledger: Ledger, *, target: Target
) -> dict[str, Any]:
    """The job file (as a mapping, keys in Azure ML's order) for one Batch AI job.

    `mounts` already holds the cluster's mounts when a cluster was converted with the job;
    the job's own mounts are added to it. Never fails on a validated file.
    """
    pool = target == "pool"
    nodes = props.node_count or 1
    if props.node_count is not None:
        ledger.mapped("properties.nodeCount", f"{Y}: resources.instance_count")
    if props.mount_volumes:
        mounts.add_volumes(props.mount_volumes, JOB_ROOT, "properties.mountVolumes", ledger, pool=pool)
    ((toolkit_field, toolkit),) = props.toolkits().items()
    plan = plan_toolkit(toolkit_field, toolkit, nodes, ledger)
    job: dict[str, Any] = {
        "$schema": COMMAND_JOB_SCHEMA,
        "type": "command",
        "display_name": name,
        "experiment_name": "batchai-migrated",
    }
    inputs: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    rewrites: list[tuple[str, str]] = []

    for i, d in enumerate(props.input_directories):
        path = f"properties.inputDirectories[{i}]"
        uri = _data_uri(d.path, mounts, f"{path}.path", ledger)
        # A path on the node (an unmanaged mount) is no data to stage: the command gets it as is.
        staged = uri.startswith("azureml://")
        inputs[d.id] = {"type": "uri_folder", "path": uri, "mode": "ro_mount"} if staged else uri
        ledger.mapped(
            f"{path}.id", f"{Y}: inputs.{d.id} ($AZ_BATCHAI_INPUT_{d.id} -> ${{{{inputs.{d.id}}}}})"
        )
        rewrites.append((rf"\$\{{?AZ_BATCHAI_INPUT_{re.escape(d.id)}\}}?(?!\w)", f"${{{{inputs.{d.id}}}}}"))
    writable = [o.path_prefix for o in props.output_directories] + [props.std_out_err_path_prefix or ""]
    for i, o in enumerate(props.output_directories):
        path = f"properties.outputDirectories[{i}]"
        segment = "/".join(p for p in (RUN_SEGMENT, o.path_suffix) if p)
        uri = _data_uri(o.path_prefix.rstrip("/") + "/" + segment, mounts, f"{path}.pathPrefix", ledger)
        outputs[o.id] = {"type": "uri_folder", "mode": "rw_mount"}
        if uri.startswith("azureml://"):
            outputs[o.id]["path"] = uri
        ledger.mapped(
            f"{path}.id", f"{Y}: outputs.{o.id} ($AZ_BATCHAI_OUTPUT_{o.id} -> ${{{{outputs.{o.id}}}}})"
        )
        if o.path_suffix:
            ledger.mapped(
                f"{path}.pathSuffix",
                f"{Y}: outputs.{o.id}.path (after {RUN_SEGMENT})",
                f"Batch AI's generated folder between prefix and suffix is {RUN_SEGMENT}, the run's "
                "id (Azure ML: the job's name), so every run writes its own folder",
            )
        rewrites.append((rf"\$\{{?AZ_BATCHAI_OUTPUT_{re.escape(o.id)}\}}?(?!\w)", f"${{{{outputs.{o.id}}}}}"))

    # Each mount the command uses becomes an input (read-only) or, where the job writes, an output.
    # On a pool the preparation keeps Batch AI's variables (the agent sets them); on Azure ML it
    # is part of the command and is rewritten with it.
    prep = _preparation(props, mounts, pool, ledger)
    command = plan.command if pool or not prep else f"{prep}\n{plan.command}"
    for mount in mounts.mounts:
        if mount.datastore is None:
            continue
        ref = f"${mount.root}/{mount.relative.strip('/')}"
        pattern = rf"\$\{{?{mount.root}\}}?/{re.escape(mount.relative.strip('/'))}(?![\w.-])"
        if not re.search(pattern, command):
            continue
        key = _free(datastore_name(mount.relative), inputs, outputs)
        uri = f"azureml://datastores/{mount.datastore}/paths/{mount.subpath}".rstrip("/") + "/"
        if any(w == ref or w.startswith(ref + "/") for w in writable):
            outputs[key] = {"type": "uri_folder", "path": uri, "mode": "rw_mount"}
            rewrites.append((pattern, f"${{{{outputs.{key}}}}}"))
        else:
            inputs[key] = {"type": "uri_folder", "path": uri, "mode": "ro_mount"}
            rewrites.append((pattern, f"${{{{inputs.{key}}}}}"))

    job["command"] = _rewrite(command, rewrites)
    if props.container_settings:
        cs = props.container_settings
        registry = cs.image_source_registry
        image = registry.image
        if registry.server_url:
            host = re.sub(r"^https?://", "", registry.server_url).rstrip("/")
            image = image if image.startswith(host + "/") else f"{host}/{image}"
            ledger.mapped(
                "properties.containerSettings.imageSourceRegistry.serverUrl", f"{Y}: environment.image"
            )
        job["environment"] = {"image": image}
        ledger.mapped("properties.containerSettings.imageSourceRegistry.image", f"{Y}: environment.image")
        if registry.credentials:
            creds = "properties.containerSettings.imageSourceRegistry.credentials"
            for leaf in (
                "username",
                "password",
                "passwordSecretReference.sourceVault.id",
                "passwordSecretReference.secretUrl",
            ):
                ledger.approximated(
                    f"{creds}.{leaf}",
                    "-",
                    "registry credentials are not written to job files: "
                    "give the compute's identity AcrPull on the registry (or `docker login` "
                    "in the pool's nodeSetup)",
                )
        if cs.shm_size:
            ledger.mapped("properties.containerSettings.shmSize", f"{Y}: resources.shm_size")
    env = {v.name: v.value for v in props.environment_variables}
    env.update(plan.environment)
    for i, v in enumerate(props.environment_variables):
        ledger.mapped(f"properties.environmentVariables[{i}].name", f"{Y}: environment_variables.{v.name}")
        ledger.mapped(f"properties.environmentVariables[{i}].value", f"{Y}: environment_variables.{v.name}")
    for i, s in enumerate(props.secrets):
        base = f"properties.secrets[{i}]"
        why = (
            f"job files are plain text, so `{s.name}` is not written; keep the value in Key Vault and "
            "read it at run time (the compute's identity needs get access), or set it on the pool"
        )
        ledger.unsupported(f"{base}.name", why)
        for leaf in ("value", "valueSecretReference.sourceVault.id", "valueSecretReference.secretUrl"):
            ledger.unsupported(f"{base}.{leaf}", why)
    if env:
        job["environment_variables"] = env
    if inputs:
        job["inputs"] = inputs
    if outputs:
        job["outputs"] = outputs
    resources: dict[str, Any] = {"instance_count": nodes}
    if props.container_settings and props.container_settings.shm_size:
        resources["shm_size"] = props.container_settings.shm_size
    job["resources"] = resources
    if plan.distribution:
        job["distribution"] = plan.distribution
    wall = props.constraints.max_wall_clock_time if props.constraints else None
    seconds = parse_duration_seconds(wall) if wall else DEFAULT_WALL_CLOCK_SECONDS
    job["limits"] = {"timeout": seconds}
    if wall:
        ledger.mapped("properties.constraints.maxWallClockTime", f"{Y}: limits.timeout = {seconds}")
    if prep and pool:
        job["trainstack"] = {"preparation": {"command": prep}}
    _record_rest(props, name, target, ledger)
    for ph in placeholders_in(str(job)):
        ledger.placeholder(ph, Y, "a value the Batch AI file left to `az batchai`'s arguments")
    return job


def _preparation(props: JobProperties, mounts: MountTable, pool: bool, ledger: Ledger) -> str | None:
    lines: list[str] = []
    for m in mounts.mounts:
        if m.datastore is None and m.root == JOB_ROOT and pool:
            fs = next(
                f
                for f in props.mount_volumes.unmanaged_file_systems  # type: ignore[union-attr]
                if f.relative_mount_path == m.relative
            )
            target = f"${JOB_ROOT}/{m.relative.strip('/')}"
            lines.append(f'mkdir -p "{target}" && {fs.mount_command} "{target}"')
    if props.job_preparation:
        lines.append(props.job_preparation.command_line)
        if pool:
            ledger.mapped("properties.jobPreparation.commandLine", f"{Y}: trainstack.preparation.command")
        else:
            ledger.approximated(
                "properties.jobPreparation.commandLine",
                f"{Y}: command (prepended)",
                "Azure ML has no job preparation: it runs at the start of the command, in "
                "every process rather than once per node",
            )
    return "\n".join(lines) or None


def _record_rest(props: JobProperties, name: str, target: Target, ledger: Ledger) -> None:
    if props.scheduling_priority:
        ledger.approximated(
            "properties.schedulingPriority",
            "-",
            "jobs on a pool run in submission order; Azure ML job priority is set per "
            "compute (`queue_settings.priority`) where the workspace allows it",
        )
    if props.cluster:
        cluster = props.cluster.id.rstrip("/").split("/")[-1]
        became = f"submit with --pool {cluster}" if target == "pool" else f"{Y}: compute azureml:{cluster}"
        ledger.mapped("properties.cluster.id", became)
    if props.std_out_err_path_prefix:
        ledger.approximated(
            "properties.stdOutErrPathPrefix",
            "kept with the run (`jobrunner logs`, and `logs/` of `jobrunner outputs`)",
            "on a pool each process's output is also written under Batch AI's names "
            "(stdout-wk-<i>.txt, stderr-wk-<i>.txt, -ps-<i> for parameter servers) into "
            "$AZ_BATCHAI_STDOUTERR_DIR, the job's ./logs, which is kept with the run instead of "
            f"under {props.std_out_err_path_prefix}",
        )


def _data_uri(path: str, mounts: MountTable, field: str, ledger: Ledger) -> str:
    """A datastore URI for a path under a mount; the path itself (noted) otherwise."""
    found = mounts.resolve(path)
    unknown = unknown_mount(path)
    if found is None and unknown:
        root, relative, _ = unknown
        mounts.add_guessed(root, relative, ledger)  # type: ignore[arg-type]
        found = mounts.resolve(path)
    if found:
        mount, rest = found
        if mount.datastore is not None:
            sub = "/".join(p for p in (mount.subpath.strip("/"), rest) if p)
            uri = f"azureml://datastores/{mount.datastore}/paths/{sub}"
            if not mount.guessed:
                ledger.mapped(field, f"{Y}: {uri}")
                return uri
            ledger.approximated(
                field,
                f"{Y}: {uri}; stack.yaml: datastore `{mount.datastore}`",
                _guessed_mount_note(mount.root, mount.relative, mount.datastore),
            )
            return uri
    ledger.approximated(
        field,
        f"{Y}: {path}",
        "not under a mount: kept as a path on the node, or, for "
        "outputs, kept with the run; move the data to a datastore",
    )
    return path


def _guessed_mount_note(root: str, relative: str, datastore: str) -> str:
    """Why a mount was guessed: Batch AI put the job's own mounts under
    `$AZ_BATCHAI_JOB_MOUNT_ROOT` and the cluster's under `$AZ_BATCHAI_MOUNT_ROOT`."""
    guess = (
        f"stack.yaml declares datastore `{datastore}` for it as a guess (an Azure Files share "
        f"`{datastore}`); check it"
    )
    if root == JOB_ROOT:
        return (
            f"${root}/{relative} is one of the job's own mounts ($AZ_BATCHAI_JOB_MOUNT_ROOT holds what "
            "the job's mountVolumes, or `az batchai job create --afs-name/--bfs-name`, mounted), and "
            f"the file declares none at `{relative}`: {guess}, or add it to the job's mountVolumes"
        )
    return (
        f"${root}/{relative} was mounted by the cluster (its nodeSetup.mountVolumes, under "
        f"$AZ_BATCHAI_MOUNT_ROOT), whose file was not given: {guess}, or convert the cluster too "
        "with --cluster"
    )


def _free(key: str, *taken: dict[str, Any]) -> str:
    name, n = key, 2
    while any(name in t for t in taken):
        name, n = f"{key}_{n}", n + 1
    return name


def _rewrite(text: str, rewrites: list[tuple[str, str]]) -> str:
    for pattern, replacement in rewrites:
        text = re.sub(pattern, replacement.replace("\\", r"\\"), text)  # taken literally
    return text
