"""A Batch AI cluster as a stack entry: `trainstack:clusters` (Azure ML compute) or
`trainstack:pools` (a self-managed GPU pool, which alone can run node setup tasks and
arbitrary mounts, as Batch AI did)."""

from __future__ import annotations

import re
from typing import Any

from components.skus import find_sku
from trainstack.batchai.fates import Ledger
from trainstack.batchai.job import Target
from trainstack.batchai.models import ClusterProperties
from trainstack.batchai.mounts import CLUSTER_ROOT, MountTable

S = "stack.yaml"


def compute_name(stem: str) -> str:
    """An Azure ML compute name (2-16 of a-z, 0-9, `-`, starting with a letter) from a file name."""
    name = re.sub(r"[^a-z0-9-]+", "-", stem.lower()).strip("-")
    name = name if name[:1].isalpha() else f"c-{name}"
    return (name[:16].rstrip("-") or "cluster").ljust(2, "0")


def needs_pool(props: ClusterProperties) -> bool:
    """True when the cluster does what only a pool can: a setup task, or mounts on the node."""
    setup = props.node_setup
    return bool(setup and (setup.setup_task or setup.mount_volumes))


def convert_cluster(
    props: ClusterProperties, name: str, mounts: MountTable, ledger: Ledger, *, target: Target
) -> tuple[str, dict[str, Any]]:
    """(`clusters` or `pools`, the entry) for one Batch AI cluster; its mounts go into `mounts`."""
    pool = target == "pool"
    key = "pools" if pool else "clusters"
    where = f"{S}: trainstack:{key}[0]"
    entry: dict[str, Any] = {"name": name, "vmSize": _vm_size(props.vm_size, f"{where}.vmSize", ledger)}
    low = props.vm_priority == "lowpriority"
    if pool:
        entry["priority"] = "Spot" if low else "Regular"
        if low:
            entry.update(evictionPolicy="Delete", maxPrice=-1)
    else:
        entry["priority"] = "LowPriority" if low else "Dedicated"
    if props.vm_priority:
        if pool and low:
            ledger.approximated(
                "properties.vmPriority",
                f"{where}.priority = Spot",
                "scale sets offer Spot where Batch AI offered low priority: evicted nodes "
                "are deleted and their jobs requeued; maxPrice -1 pays up to on-demand",
            )
        else:
            ledger.mapped("properties.vmPriority", f"{where}.priority = {entry['priority']}")
    _scale(props, entry, where, ledger)
    if props.subnet:
        entry["subnetId"] = props.subnet.id
        ledger.mapped("properties.subnet.id", f"{where}.subnetId")
    _image(props, entry, where, pool, ledger)
    _user(props, entry, where, pool, ledger)
    _node_setup(props, entry, where, mounts, pool, ledger)
    return key, entry


def _vm_size(size: str | None, where: str, ledger: Ledger) -> str:
    if size is None:
        ledger.placeholder(
            "<VM_SIZE>", where, "the VM size (the file left it to `az batchai cluster create -s`)"
        )
        return "<VM_SIZE>"
    sku = find_sku(size)
    if sku is None:
        ledger.approximated(
            "properties.vmSize",
            where,
            f"`{size}` is not in the GPU catalog "
            "(components/skus.py): check that it is a GPU size still offered",
        )
        return size
    if sku.retired and sku.successor:
        new = find_sku(sku.successor)
        gpu = f" ({new.gpus} x {new.gpu_model})" if new else ""
        ledger.approximated(
            "properties.vmSize",
            f"{where} = {sku.successor}",
            f"{sku.name} ({sku.gpus} x {sku.gpu_model}) was retired on {sku.retired}: "
            f"{sku.successor}{gpu} is its successor; check quota and batch sizes",
        )
        return sku.successor
    ledger.mapped("properties.vmSize", where)
    return sku.name


def _scale(props: ClusterProperties, entry: dict[str, Any], where: str, ledger: Ledger) -> None:
    scale = props.scale_settings
    base = "properties.scaleSettings"
    if scale is None:
        entry.update(minNodes=0, maxNodes=1)  # `az batchai cluster create` without -t: one node at most
        return
    if scale.manual:
        n = scale.manual.target_node_count
        entry.update(minNodes=n, maxNodes=max(n, 1))
        ledger.mapped(f"{base}.manual.targetNodeCount", f"{where}.minNodes = maxNodes = {max(n, 1)}")
        option = scale.manual.node_deallocation_option
        if option:
            ledger.approximated(
                f"{base}.manual.nodeDeallocationOption",
                "-",
                f"`{option}` has no equivalent: when nodes go away (scale-in, eviction) running "
                "jobs are requeued, as with `requeue`; to let jobs finish, keep minNodes up",
            )
    if scale.auto_scale:
        auto = scale.auto_scale
        entry.update(minNodes=auto.minimum_node_count, maxNodes=auto.maximum_node_count)
        ledger.mapped(f"{base}.autoScale.minimumNodeCount", f"{where}.minNodes")
        ledger.mapped(f"{base}.autoScale.maximumNodeCount", f"{where}.maxNodes")
        if auto.initial_node_count is not None:
            ledger.unsupported(
                f"{base}.autoScale.initialNodeCount",
                "clusters and pools start at minNodes and grow with the job queue",
            )


def _image(props: ClusterProperties, entry: dict[str, Any], where: str, pool: bool, ledger: Ledger) -> None:
    vmc = props.virtual_machine_configuration
    ref = vmc.image_reference if vmc else None
    if ref is None:
        return
    base = "properties.virtualMachineConfiguration.imageReference"
    leaves = ["publisher", "offer", "sku"] + [k for k in ("version",) if ref.version]
    if ref.virtual_machine_image_id:
        leaves.append("virtualMachineImageId")
    if pool:
        entry["image"] = ref.virtual_machine_image_id or ":".join(
            [ref.publisher, ref.offer, ref.sku, ref.version or "latest"]
        )
        for leaf in leaves:
            ledger.approximated(
                f"{base}.{leaf}",
                f"{where}.image",
                "the pool's image is built from this base with the agent installed "
                "(AgentImage); GPU drivers must be on it (microsoft-dsvm:ubuntu-hpc has them)",
            )
    else:
        for leaf in leaves:
            ledger.unsupported(
                f"{base}.{leaf}",
                "Azure ML compute runs its own OS image: put what the job "
                "needs in its container image, or use --target pool",
            )


def _user(props: ClusterProperties, entry: dict[str, Any], where: str, pool: bool, ledger: Ledger) -> None:
    user = props.user_account_settings
    if user is None:
        return
    base = "properties.userAccountSettings"
    if pool:
        for leaf in ("adminUserName", "adminUserSshPublicKey", "adminUserPassword"):
            if getattr(
                user,
                {
                    "adminUserName": "admin_user_name",
                    "adminUserSshPublicKey": "admin_user_ssh_public_key",
                    "adminUserPassword": "admin_user_password",
                }[leaf],
            ):
                ledger.unsupported(
                    f"{base}.{leaf}",
                    "pool nodes have no admin login: reach a node with "
                    "`az ssh vm` (Entra ID) or Azure Bastion",
                )
        return
    ssh: dict[str, Any] = {"adminUser": user.admin_user_name}
    ledger.mapped(f"{base}.adminUserName", f"{where}.ssh.adminUser")
    if user.admin_user_ssh_public_key:
        ssh["publicKey"] = {"secure": "<SSH_PUBLIC_KEY>"}
        ledger.approximated(
            f"{base}.adminUserSshPublicKey",
            f"{where}.ssh.publicKey (a Pulumi secret)",
            "the key is not copied into the stack file: set it as a secret (see Values to fill in)",
        )
        ledger.placeholder(
            "<SSH_PUBLIC_KEY>",
            f"{where}.ssh.publicKey",
            "pulumi config set --secret --path 'trainstack:clusters[0].ssh.publicKey' "
            '"$(cat ~/.ssh/id_rsa.pub)"',
        )
    if user.admin_user_password:
        ledger.unsupported(
            f"{base}.adminUserPassword",
            "password login is not offered (and the password is not copied anywhere): use an SSH key",
        )
    entry["ssh"] = ssh
    entry["remoteLogin"] = True
    entry["nodePublicIp"] = props.subnet is None


def _node_setup(
    props: ClusterProperties,
    entry: dict[str, Any],
    where: str,
    mounts: MountTable,
    pool: bool,
    ledger: Ledger,
) -> None:
    setup = props.node_setup
    if setup is None:
        return
    base = "properties.nodeSetup"
    if setup.mount_volumes:
        before = len(mounts.datastores)
        mounts.add_volumes(setup.mount_volumes, CLUSTER_ROOT, f"{base}.mountVolumes", ledger, pool=pool)
        names = [str(d["name"]) for d in mounts.datastores[before:]]
        if pool:
            entry["datastores"] = names
    task = setup.setup_task
    if task is not None:
        t = f"{base}.setupTask"
        if pool:
            exports = [f"export {v.name}={_quote(v.value)}" for v in task.environment_variables]
            entry["nodeSetup"] = "\n".join([*exports, task.command_line])
            ledger.mapped(f"{t}.commandLine", f"{where}.nodeSetup")
            for i, _ in enumerate(task.environment_variables):
                for leaf in ("name", "value"):
                    ledger.mapped(f"{t}.environmentVariables[{i}].{leaf}", f"{where}.nodeSetup (export)")
            ledger.approximated(
                f"{t}.stdOutErrPathPrefix",
                "the node's journal (journalctl -u trainstack-node-setup)",
                "setup logs stay on the node instead of going to a file share",
            )
        else:
            for leaf in ("commandLine", "stdOutErrPathPrefix"):
                ledger.unsupported(
                    f"{t}.{leaf}",
                    "Azure ML compute has no setup task: use --target pool, or "
                    "move the setup into the job's container image",
                )
            for i, _ in enumerate(task.environment_variables):
                for leaf in ("name", "value"):
                    ledger.unsupported(f"{t}.environmentVariables[{i}].{leaf}", "belongs to the setup task")
        for i, _ in enumerate(task.secrets):
            for leaf in (
                "name",
                "value",
                "valueSecretReference.sourceVault.id",
                "valueSecretReference.secretUrl",
            ):
                ledger.unsupported(
                    f"{t}.secrets[{i}].{leaf}",
                    "secrets are not copied into files: read them "
                    "from Key Vault in the setup command with the pool's identity",
                )
    if setup.performance_counters_settings:
        p = f"{base}.performanceCountersSettings.appInsightsReference"
        for leaf in (
            "component.id",
            "instrumentationKey",
            "instrumentationKeySecretReference.sourceVault.id",
            "instrumentationKeySecretReference.secretUrl",
        ):
            ledger.unsupported(
                f"{p}.{leaf}",
                "node performance counters: use Azure Monitor's VM insights, or "
                "the workspace's Application Insights (created by MlWorkspace)",
            )


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"
