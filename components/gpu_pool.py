"""`GpuPool`: a self-managed GPU pool, a VM scale set whose nodes run the jobrunner agent.

Declares a user-assigned identity with data roles on exactly what its agents use in the job
store (the workspace's storage account, see `data_scopes`): Storage Blob Data Contributor on the
`runs` and `pools` containers and on each mapped datastore's container, Storage Queue Data
Message Processor and Sender on the pool's queue (declared by `JobStore`); AzureML Data
Scientist on the workspace, whose MLflow tracking server (`azureml://<region>.api.azureml.ms/
mlflow/v1.0/...`, in the agent config as `trackingUri`) keeps every job's metrics, so pool runs
show in Azure ML studio beside AmlCompute runs (docs/metrics.md); the scale set and its
autoscale setting.

The scale set: the pool's GPU size, Spot/Low/Regular priority with its eviction policy and
maximum price, no public IPs (nodes join `subnetId`), accelerated networking, the agent image
(`AgentImage`, or an existing gallery image), Scheduled Events termination notices (so an
agent hears of a scale-in as of an eviction and requeues its job), no overprovisioning (an
extra VM would start an agent that takes a job and is then deleted), and one placement group
on InfiniBand sizes (InfiniBand connects only VMs inside one). The agent's config (store URL,
identity, pool name and size, datastore map, node setup) is a cloud-init document in custom
data, written by `jobrunner.node.config.render_cloud_init`: what the pool writes is what the
agent reads.

Autoscale reads the queue's `ApproximateMessageCount` (messages held by busy agents count
too): one more node while messages wait, one fewer after the idle minutes with none, always
within minNodes..maxNodes. A gang job's message leaves the queue once its nodes have taken
their seats, so a pool that only runs gangs may scale in under them after the idle minutes;
the agents then get a termination notice and requeue the job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi_azure_native import compute, managedidentity, monitor

from components import roles
from components.config import GpuPoolConfig
from components.job_store import pool_queues
from jobrunner.node.config import AgentConfig, DatastoreLocation, custom_data
from jobrunner.node.isolation import IMAGE_JOB_USER
from jobrunner.scheduler.autoscale import demand_queue, idle_queue, scale_out_steps
from jobrunner.store.client import POOLS, RUNS, queue_name

# Azure Scheduled Events: how long a node may finish up before a scale-in deletes it.
TERMINATE_NOTICE = "PT5M"
# Autoscale looks at storage metrics over at least 5 minutes.
SCALE_OUT_WINDOW = "PT5M"


def agent_config(
    config: GpuPoolConfig,
    *,
    account: str,
    client_id: str | None,
    datastores: dict[str, str],
    environments: Mapping[str, str] | None = None,
    tracking_uri: str | None = None,
) -> AgentConfig:
    """The agent config every node of `config`'s pool gets (`datastores`: name -> container;
    `environments`: the stack's map, `StackConfig.pool_environments`; default the pool's own)."""
    return AgentConfig(
        store=f"https://{account}.blob.core.windows.net",
        identity_client_id=client_id,
        pool=config.name,
        max_nodes=config.max_nodes,
        node_setup=config.node_setup,
        job_user=IMAGE_JOB_USER,  # the baked image's unprivileged user, refused the metadata service
        datastores={name: DatastoreLocation(container=c) for name, c in sorted(datastores.items())},
        environments=dict(sorted((config.environments if environments is None else environments).items())),
        tracking_uri=tracking_uri,
    )


def workspace_tracking_uri(location: str, workspace_id: str) -> str:
    """The workspace's MLflow tracking URI, as Azure ML gives it (`mlflow_tracking_uri`)."""
    region = location.replace(" ", "").lower()
    return f"azureml://{region}.api.azureml.ms/mlflow/v1.0{workspace_id}"


def queue_resource_id(account_id: pulumi.Input[str], queue: str) -> pulumi.Output[str]:
    """A queue as an Azure Monitor metric source (the form autoscale takes)."""
    return pulumi.Output.concat(account_id, "/services/queue/queues/", queue)


def autoscale_profile(config: GpuPoolConfig, account_id: pulumi.Input[str]) -> monitor.AutoscaleProfileArgs:
    """Scale by the pool's demand in nodes (`jobrunner.scheduler.autoscale`): out in steps that
    follow the demand gauge (Azure takes the largest step whose rule fires), in by one only
    while the demand is zero and a node stood idle for the whole window (scale-in needs every
    rule). A busy node that scale-in still picks gets its Terminate notice: the attempt is
    requeued, budget untouched."""
    demand = queue_resource_id(account_id, demand_queue(config.name))
    idle_gauge = queue_resource_id(account_id, idle_queue(config.name))

    def trigger(
        queue: pulumi.Input[str], operator: monitor.ComparisonOperationType, threshold: float, window: str,
        aggregation: monitor.TimeAggregationType,
    ) -> monitor.MetricTriggerArgs:  # fmt: skip
        return monitor.MetricTriggerArgs(
            metric_name="ApproximateMessageCount",
            metric_namespace="",
            metric_resource_uri=queue,
            operator=operator,
            threshold=threshold,
            statistic=monitor.MetricStatisticType.AVERAGE,
            time_grain="PT1M",
            time_window=window,
            time_aggregation=aggregation,
        )

    def change(direction: monitor.ScaleDirection, count: int, cooldown: str) -> monitor.ScaleActionArgs:
        return monitor.ScaleActionArgs(
            direction=direction, type=monitor.ScaleType.CHANGE_COUNT, value=str(count), cooldown=cooldown
        )

    out_rules = [
        monitor.ScaleRuleArgs(
            metric_trigger=trigger(
                demand,
                monitor.ComparisonOperationType.GREATER_THAN_OR_EQUAL,
                step,
                SCALE_OUT_WINDOW,
                monitor.TimeAggregationType.MAXIMUM,
            ),
            scale_action=change(monitor.ScaleDirection.INCREASE, step, "PT1M"),
        )  # fmt: skip
        for step in scale_out_steps(config.max_nodes)
    ]
    idle = f"PT{config.idle_minutes_before_scale_in}M"
    in_rules = [
        monitor.ScaleRuleArgs(
            metric_trigger=trigger(demand, monitor.ComparisonOperationType.LESS_THAN_OR_EQUAL, 0, idle,
                                   monitor.TimeAggregationType.MAXIMUM),
            scale_action=change(monitor.ScaleDirection.DECREASE, 1, idle),
        ),
        monitor.ScaleRuleArgs(
            metric_trigger=trigger(idle_gauge, monitor.ComparisonOperationType.GREATER_THAN_OR_EQUAL, 1, idle,
                                   monitor.TimeAggregationType.MINIMUM),
            scale_action=change(monitor.ScaleDirection.DECREASE, 1, idle),
        ),
    ]  # fmt: skip
    return monitor.AutoscaleProfileArgs(
        name="pool-demand",
        capacity=monitor.ScaleCapacityArgs(
            minimum=str(config.min_nodes), maximum=str(config.max_nodes), default=str(config.min_nodes)
        ),
        rules=[*out_rules, *in_rules],
    )


def vm_profile(
    config: GpuPoolConfig, *, image_id: pulumi.Input[str], user_data: pulumi.Input[str]
) -> compute.VirtualMachineScaleSetVMProfileArgs:
    """The nodes: image, admin user (key only), custom data, one NIC without public IP."""
    evictable = config.priority != "Regular"
    ssh_key = pulumi.Output.secret(config.ssh.public_key)
    return compute.VirtualMachineScaleSetVMProfileArgs(
        priority=config.priority,
        eviction_policy=config.effective_eviction_policy,
        billing_profile=compute.BillingProfileArgs(
            max_price=config.max_price if config.max_price is not None else -1
        )
        if config.priority == "Spot"
        else None,
        os_profile=compute.VirtualMachineScaleSetOSProfileArgs(
            computer_name_prefix=config.name[:9].rstrip("-"),
            admin_username=config.ssh.admin_user,
            custom_data=user_data,
            linux_configuration=compute.LinuxConfigurationArgs(
                disable_password_authentication=True,
                ssh=compute.SshConfigurationArgs(
                    public_keys=[
                        compute.SshPublicKeyArgs(
                            path=f"/home/{config.ssh.admin_user}/.ssh/authorized_keys", key_data=ssh_key
                        )
                    ]
                ),
            ),
        ),
        storage_profile=compute.VirtualMachineScaleSetStorageProfileArgs(
            image_reference=compute.ImageReferenceArgs(id=image_id),
            os_disk=compute.VirtualMachineScaleSetOSDiskArgs(
                create_option="FromImage",
                caching=compute.CachingTypes.READ_WRITE,
                managed_disk=compute.VirtualMachineScaleSetManagedDiskParametersArgs(
                    storage_account_type="Premium_LRS"
                ),
                # An evicted Spot node's disk goes with it; nothing on it outlives the node.
                delete_option="Delete" if evictable else None,
            ),
        ),
        network_profile=compute.VirtualMachineScaleSetNetworkProfileArgs(
            network_interface_configurations=[
                compute.VirtualMachineScaleSetNetworkConfigurationArgs(
                    name="nic",
                    primary=True,
                    enable_accelerated_networking=True,
                    ip_configurations=[
                        # No publicIPAddressConfiguration: nodes are reached inside the VNet only.
                        compute.VirtualMachineScaleSetIPConfigurationArgs(
                            name="ipconfig",
                            primary=True,
                            subnet=compute.ApiEntityReferenceArgs(id=config.subnet_id),
                        )
                    ],
                )
            ]
        ),
        scheduled_events_profile=compute.ScheduledEventsProfileArgs(
            terminate_notification_profile=compute.TerminateNotificationProfileArgs(
                enable=True, not_before_timeout=TERMINATE_NOTICE
            )
        ),
    )


def data_scopes(pool: str, datastores: dict[str, str]) -> list[tuple[str, str, str]]:
    """(what, role, scope suffix) for each data role a pool's node identity holds: Blob Data
    Contributor on `runs`, `pools` and each mapped datastore's container; Queue Data Message
    Processor (receive, renew, delete) and Sender on the pool's queue and its two autoscale
    gauges, Sender on its poison queue. No data role at account scope: a node cannot reach
    another pool's queue, Azure ML's own containers or the image builder's files. At account
    scope only Storage Blob Delegator, which asks Entra ID for user delegation keys (the SAS a
    job gets for its own blobs, `jobrunner.store.run_sas`) and carries no data access: such a SAS
    allows at most what the container roles allow."""
    job_queue, poison, demand, idle = pool_queues(pool)
    out = [
        (f"blob-{c}", roles.STORAGE_BLOB_DATA_CONTRIBUTOR, f"/blobServices/default/containers/{c}")
        for c in sorted({RUNS, POOLS, *datastores.values()})
    ]
    out += [
        (
            "queue-process",
            roles.STORAGE_QUEUE_DATA_MESSAGE_PROCESSOR,
            f"/queueServices/default/queues/{job_queue}",
        ),
        ("queue-send", roles.STORAGE_QUEUE_DATA_MESSAGE_SENDER, f"/queueServices/default/queues/{job_queue}"),
        ("poison-send", roles.STORAGE_QUEUE_DATA_MESSAGE_SENDER, f"/queueServices/default/queues/{poison}"),
        ("sas-signing", roles.STORAGE_BLOB_DELEGATOR, ""),
    ]
    for gauge, queue in (("demand", demand), ("idle", idle)):  # the leader keeps them (autoscale reads)
        out += [
            (
                f"{gauge}-process",
                roles.STORAGE_QUEUE_DATA_MESSAGE_PROCESSOR,
                f"/queueServices/default/queues/{queue}",
            ),
            (
                f"{gauge}-send",
                roles.STORAGE_QUEUE_DATA_MESSAGE_SENDER,
                f"/queueServices/default/queues/{queue}",
            ),
        ]
    return out


def data_role_grants(
    name: str,
    pool: str,
    *,
    principal_id: pulumi.Input[str],
    account_id: pulumi.Input[str],
    datastores: dict[str, str],
    scope: tuple[str, ...],
    opts: pulumi.ResourceOptions,
) -> list[pulumi.Resource]:
    """The role assignments of `data_scopes`, on the job store account `account_id`."""
    return [
        roles.assign_role(
            f"{name}-{what}",
            role=role,
            principal_id=principal_id,
            scope=pulumi.Output.concat(account_id, suffix),
            key=(*scope, pool, what),
            description=f"pool {pool}'s agents use the job store ({what})",
            opts=opts,
        )
        for what, role, suffix in data_scopes(pool, datastores)
    ]


class GpuPool(pulumi.ComponentResource):
    """A GPU VM scale set running the jobrunner agent, scaled on its job queue."""

    def __init__(
        self,
        name: str,
        config: GpuPoolConfig,
        *,
        image_id: pulumi.Input[str],
        resource_group: pulumi.Input[str],
        location: str,
        storage_account_name: pulumi.Input[str],
        datastores: dict[str, str],
        scope: tuple[str, ...],
        environments: Mapping[str, str] | None = None,
        tags: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("trainstack:gpu_pool:GpuPool", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        pool_tags = {**tags, "pool": config.name, "gpu": config.sku.gpu_model}
        if config.sku.infiniband:
            pool_tags["infiniband"] = "true"

        self.identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity",
            resource_name_=f"id-pool-{config.name}",
            resource_group_name=resource_group,
            location=location,
            tags=tags,
            opts=child,
        )
        account_id = roles.storage_account_id(resource_group, storage_account_name)
        grants = data_role_grants(
            name,
            config.name,
            principal_id=self.identity.principal_id,
            account_id=account_id,
            datastores=datastores,
            scope=scope,
            opts=child,
        )
        # scope is (resource group, workspace): the workspace's tracking server keeps the metrics
        workspace_id = roles.workspace_id(resource_group, scope[-1])
        grants.append(
            roles.assign_role(
                f"{name}-tracking",
                role=roles.AZUREML_DATA_SCIENTIST,
                principal_id=self.identity.principal_id,
                scope=workspace_id,
                key=(*scope, config.name, "tracking"),
                description=f"pool {config.name}'s jobs log their metrics to the workspace (MLflow)",
                opts=child,
            )
        )

        def user_data(values: list[Any]) -> str:
            account, client_id, workspace = values
            tracking = workspace_tracking_uri(location, workspace)
            return custom_data(
                agent_config(
                    config,
                    account=account,
                    client_id=client_id,
                    datastores=datastores,
                    environments=environments,
                    tracking_uri=tracking,
                )  # fmt: skip
            )

        self.scale_set = compute.VirtualMachineScaleSet(
            f"{name}-vmss",
            vm_scale_set_name=config.name,
            resource_group_name=resource_group,
            location=location,
            sku=compute.SkuArgs(name=config.vm_size, tier="Standard", capacity=config.min_nodes),
            identity=compute.VirtualMachineScaleSetIdentityArgs(
                type=compute.ResourceIdentityType.USER_ASSIGNED, user_assigned_identities=[self.identity.id]
            ),
            orchestration_mode="Uniform",
            overprovision=False,
            single_placement_group=config.sku.infiniband,
            upgrade_policy=compute.UpgradePolicyArgs(mode=compute.UpgradeMode.MANUAL),
            scale_in_policy=compute.ScaleInPolicyArgs(rules=["NewestVM"]),
            virtual_machine_profile=vm_profile(
                config,
                image_id=image_id,
                user_data=pulumi.Output.all(
                    storage_account_name, self.identity.client_id, workspace_id
                ).apply(user_data),
            ),
            tags=pool_tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                # Agents must reach the store before the first node boots.
                depends_on=grants,
                # Autoscale owns the node count after creation.
                ignore_changes=["sku.capacity"],
                replace_on_changes=[
                    "virtualMachineProfile.priority",
                    "singlePlacementGroup",
                    "orchestrationMode",
                ],
            ),
        )
        self.autoscale = monitor.AutoscaleSetting(
            f"{name}-autoscale",
            autoscale_setting_name=f"autoscale-{config.name}",
            resource_group_name=resource_group,
            location=location,
            enabled=True,
            target_resource_uri=self.scale_set.id,
            profiles=[autoscale_profile(config, account_id)],
            tags=tags,
            opts=child,
        )
        self.register_outputs(
            {
                "scaleSetName": self.scale_set.name,
                "identityClientId": self.identity.client_id,
                "queue": queue_name(config.name),
            }
        )
