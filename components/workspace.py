"""`MlWorkspace`: an Azure ML workspace and everything it depends on.

Declares the resource group (unless it exists), a storage account (HTTPS only, TLS 1.2, no
anonymous blob access unless asked), a key vault (RBAC, soft delete; purge protection in
prod), Log Analytics + Application Insights, an optional container registry and the
`machinelearningservices.Workspace` with a system-assigned identity. With
`publicNetworkAccess: false` the workspace, storage, key vault and registry refuse public
traffic, the workspace gets a managed network, and each of them a private endpoint in
`privateEndpointSubnetId` with its `privatelink.*` DNS zone (`PrivateNetwork`).

Shared-key access to the storage account is off unless a datastore in it authenticates with
an account key or SAS token: agents, clusters and the workspace (its system datastores
included, `systemDatastoresAuthMode: identity`) sign in with identities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pulumi
from pulumi_azure_native import (
    applicationinsights,
    authorization,
    containerregistry,
    keyvault,
    machinelearningservices,
    operationalinsights,
    resources,
    storage,
)

from components import naming
from components.config import WorkspaceConfig
from components.private_network import PrivateNetwork, account_network


@dataclass(frozen=True)
class WorkspaceRef:
    """What other components need to place resources in the workspace."""

    resource_group_name: pulumi.Input[str]
    workspace_name: pulumi.Input[str]
    location: str
    storage_account_name: pulumi.Input[str]
    tags: dict[str, str]
    # Where the stack's private endpoints go (None: public data planes).
    private_network: PrivateNetwork | None = None
    principal_id: pulumi.Input[str] | None = None  # the workspace's system-assigned identity


def _access(public: bool) -> Literal["Enabled", "Disabled"]:
    return "Enabled" if public else "Disabled"


class MlWorkspace(pulumi.ComponentResource):
    """An Azure ML workspace with its storage, key vault, monitoring and (optional) registry.

    Raises ValueError before declaring anything when a derived Azure name would be invalid.
    """

    def __init__(
        self,
        name: str,
        config: WorkspaceConfig,
        *,
        location: str,
        environment: str,
        tags: dict[str, str],
        shared_key_access: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`shared_key_access`: a datastore in the workspace's account uses its key or a SAS."""
        scope = (config.resource_group, config.name)
        storage_name = naming.storage_account_name("st", *scope)
        vault_name = naming.key_vault_name(*scope)
        registry_name = naming.registry_name(*scope) if config.container_registry else None
        super().__init__("trainstack:workspace:MlWorkspace", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        public = config.public_network_access
        prod = environment == "prod"

        if config.create_resource_group:
            group = resources.ResourceGroup(
                f"{name}-rg",
                resource_group_name=config.resource_group,
                location=location,
                tags=tags,
                opts=child,
            )
            group_name: pulumi.Input[str] = group.name
        else:
            group_name = config.resource_group

        account = storage.StorageAccount(
            f"{name}-storage",
            account_name=storage_name,
            resource_group_name=group_name,
            location=location,
            kind="StorageV2",
            sku=storage.SkuArgs(name="Standard_ZRS" if prod else "Standard_LRS"),
            enable_https_traffic_only=True,
            minimum_tls_version="TLS1_2",
            allow_blob_public_access=config.allow_blob_public_access,
            **account_network(not public),
            allow_shared_key_access=shared_key_access,
            default_to_o_auth_authentication=not shared_key_access,
            tags=tags,
            # Azure cannot change an account's kind or hierarchical namespace in place.
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(replace_on_changes=["kind"])),
        )

        client = authorization.get_client_config_output()
        vault = keyvault.Vault(
            f"{name}-vault",
            vault_name=vault_name,
            resource_group_name=group_name,
            location=location,
            properties=keyvault.VaultPropertiesArgs(
                tenant_id=client.tenant_id,
                sku=keyvault.SkuArgs(family="A", name=keyvault.SkuName.STANDARD),
                enable_rbac_authorization=True,
                enable_soft_delete=True,
                soft_delete_retention_in_days=90 if prod else 7,
                # Purge protection cannot be turned off again: only where data must survive.
                enable_purge_protection=True if prod else None,
                public_network_access=_access(public),
                network_acls=None
                if public
                else keyvault.NetworkRuleSetArgs(default_action="Deny", bypass="AzureServices"),
            ),
            tags=tags,
            opts=child,
        )

        logs = operationalinsights.Workspace(
            f"{name}-logs",
            workspace_name=f"log-{config.name}",
            resource_group_name=group_name,
            location=location,
            sku=operationalinsights.WorkspaceSkuArgs(name="PerGB2018"),
            retention_in_days=90 if prod else 30,
            tags=tags,
            opts=child,
        )
        insights = applicationinsights.Component(
            f"{name}-insights",
            resource_name_=f"appi-{config.name}",
            resource_group_name=group_name,
            location=location,
            kind="web",
            application_type="web",
            ingestion_mode="LogAnalytics",
            workspace_resource_id=logs.id,
            tags=tags,
            opts=child,
        )

        registry_id: pulumi.Input[str] | None = None
        if registry_name:
            registry = containerregistry.Registry(
                f"{name}-registry",
                registry_name=registry_name,
                resource_group_name=group_name,
                location=location,
                # Private endpoints need Premium.
                sku=containerregistry.SkuArgs(name="Basic" if public else "Premium"),
                admin_user_enabled=False,
                public_network_access=_access(public),
                tags=tags,
                opts=child,
            )
            registry_id = registry.id

        self.workspace = machinelearningservices.Workspace(
            f"{name}-workspace",
            workspace_name=config.name,
            resource_group_name=group_name,
            location=location,
            friendly_name=config.name,
            kind="Default",
            sku=machinelearningservices.SkuArgs(name="Basic", tier=machinelearningservices.SkuTier.BASIC),
            identity=machinelearningservices.ManagedServiceIdentityArgs(type="SystemAssigned"),
            storage_account=account.id,
            key_vault=vault.id,
            application_insights=insights.id,
            container_registry=registry_id,
            public_network_access=_access(public),
            managed_network=None
            if public
            else machinelearningservices.ManagedNetworkSettingsArgs(isolation_mode="AllowInternetOutbound"),
            hbi_workspace=prod,
            system_datastores_auth_mode=None if shared_key_access else "Identity",
            tags=tags,
            # A workspace cannot move to another storage account or change its HBI flag.
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(replace_on_changes=["storageAccount", "hbiWorkspace"])
            ),
        )
        self.private_network: PrivateNetwork | None = None
        if not public:
            assert config.private_endpoint_subnet_id is not None  # checked by WorkspaceConfig
            self.private_network = PrivateNetwork(
                f"{name}-private",
                subnet_id=config.private_endpoint_subnet_id,
                resource_group=group_name,
                location=location,
                tags=tags,
                opts=child,
            )
            targets: list[tuple[str, pulumi.Input[str], tuple[str, ...]]] = [
                (f"{name}-storage", account.id, ("blob", "queue", "file")),
                (f"{name}-vault", vault.id, ("vault",)),
                (f"{name}-workspace", self.workspace.id, ("amlworkspace",)),
            ]
            if registry_id is not None:
                targets.append((f"{name}-registry", registry_id, ("registry",)))
            for target, target_id, groups in targets:
                for sub_resource in groups:
                    self.private_network.connect(target, target_id=target_id, group=sub_resource, parent=self)
        self.ref = WorkspaceRef(
            resource_group_name=group_name,
            workspace_name=self.workspace.name,
            location=location,
            storage_account_name=account.name,
            tags=tags,
            private_network=self.private_network,
            principal_id=self.workspace.identity.apply(lambda i: i.principal_id if i else ""),
        )
        self.register_outputs(
            {
                "workspaceName": self.workspace.name,
                "workspaceId": self.workspace.id,
                "storageAccountName": account.name,
                "keyVaultName": vault.name,
            }
        )
