"""`GpuCluster`: an Azure ML AmlCompute cluster on a GPU size from the catalog.

What Azure cannot change on a live cluster (VM size, priority, subnet, OS, SSH account,
public IPs, remote login) replaces it, deleting the old one first because the compute name
is fixed; scale settings update in place so that resizing never recreates a cluster.
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import machinelearningservices as ml

from components.config import ClusterConfig
from components.workspace import WorkspaceRef

# Paths of the inputs Azure ignores or refuses on update (camelCase, as the provider sees them).
IMMUTABLE_PROPERTIES = [
    f"properties.properties.{field}"
    for field in (
        "vmSize",
        "vmPriority",
        "subnet",
        "osType",
        "userAccountCredentials",
        "enableNodePublicIp",
        "remoteLoginPortPublicAccess",
    )
]


def idle_time_iso8601(seconds: int) -> str:
    """Azure wants the scale-down delay as an ISO 8601 duration: 1800 -> `PT1800S`."""
    return f"PT{seconds}S"


def compute_properties(config: ClusterConfig) -> ml.AmlComputeArgs:
    """The AmlCompute properties for `config`; the SSH key is wrapped as a Pulumi secret."""
    credentials = None
    if config.ssh is not None:
        credentials = ml.UserAccountCredentialsArgs(
            admin_user_name=config.ssh.admin_user,
            admin_user_ssh_public_key=pulumi.Output.secret(config.ssh.public_key),
        )
    return ml.AmlComputeArgs(
        compute_type="AmlCompute",
        description=f"{config.sku.gpus} x {config.sku.gpu_model} per node ({config.sku.name})",
        properties=ml.AmlComputePropertiesArgs(
            vm_size=config.vm_size,
            vm_priority=config.priority,
            os_type="Linux",
            scale_settings=ml.ScaleSettingsArgs(
                min_node_count=config.min_nodes,
                max_node_count=config.max_nodes,
                node_idle_time_before_scale_down=idle_time_iso8601(config.idle_seconds_before_scale_down),
            ),
            subnet=ml.ResourceIdArgs(id=config.subnet_id) if config.subnet_id else None,
            user_account_credentials=credentials,
            # Set explicitly: the API's defaults are a public IP and `NotSpecified`, which
            # leaves SSH open on clusters outside a VNet.
            enable_node_public_ip=config.node_public_ip,
            remote_login_port_public_access="Enabled" if config.remote_login else "Disabled",
            isolated_network=False,
        ),
    )


class GpuCluster(pulumi.ComponentResource):
    """One AmlCompute cluster in `workspace`, with a system-assigned identity."""

    def __init__(
        self,
        name: str,
        config: ClusterConfig,
        *,
        workspace: WorkspaceRef,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("trainstack:cluster:GpuCluster", name, None, opts)
        self.compute = ml.Compute(
            f"{name}-compute",
            compute_name=config.name,
            resource_group_name=workspace.resource_group_name,
            workspace_name=workspace.workspace_name,
            location=workspace.location,
            identity=ml.ManagedServiceIdentityArgs(type="SystemAssigned"),
            properties=compute_properties(config),
            tags=workspace.tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                replace_on_changes=IMMUTABLE_PROPERTIES,
                delete_before_replace=True,
            ),
        )
        self.compute_name = config.name
        self.register_outputs({"computeId": self.compute.id, "computeName": self.compute.name})
