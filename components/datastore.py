"""`Datastore`: storage for training data, registered in the workspace as a datastore.

`blob` and `fileshare` live in the workspace's storage account; `adlsgen2` needs a
hierarchical namespace, which the workspace's account cannot have, so it gets an account of
its own, private (public access off, a private endpoint for `dfs` and `blob`) when the
workspace is, and without shared-key access when the datastore uses identity. Access is
identity-based by default (the workspace's system-assigned identity); an account key or SAS
token only ever comes from a Pulumi secret and is sent as one. Azure never returns those
secrets, so a changed key cannot be seen as drift: prefer identity.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi_azure_native import machinelearningservices as ml
from pulumi_azure_native import storage

from components import naming
from components.config import DatastoreConfig
from components.private_network import account_network
from components.workspace import WorkspaceRef


def datastore_credentials(config: DatastoreConfig) -> Any:
    """The datastore's `credentials`: none (identity), or a secret account key / SAS token."""
    if config.auth == "accountKey" and config.account_key is not None:
        return ml.AccountKeyDatastoreCredentialsArgs(
            credentials_type="AccountKey",
            secrets=ml.AccountKeyDatastoreSecretsArgs(
                secrets_type="AccountKey", key=pulumi.Output.secret(config.account_key)
            ),
        )
    if config.auth == "sas" and config.sas_token is not None:
        return ml.SasDatastoreCredentialsArgs(
            credentials_type="Sas",
            secrets=ml.SasDatastoreSecretsArgs(
                secrets_type="Sas", sas_token=pulumi.Output.secret(config.sas_token)
            ),
        )
    return ml.NoneDatastoreCredentialsArgs(credentials_type="None")


def datastore_properties(config: DatastoreConfig, account_name: pulumi.Input[str]) -> Any:
    """The datastore's `properties`, one member of the union by `datastore_type`."""
    common: dict[str, Any] = {
        "account_name": account_name,
        "credentials": datastore_credentials(config),
        "endpoint": "core.windows.net",
        "protocol": "https",
        "description": f"{config.kind} `{config.container}` ({config.auth} access)",
    }
    # Said explicitly: with a key or token, the service uses the secret, not an identity.
    common["service_data_access_auth_identity"] = (
        "WorkspaceSystemAssignedIdentity" if config.auth == "identity" else "None"
    )
    if config.kind == "blob":
        return ml.AzureBlobDatastoreArgs(
            datastore_type="AzureBlob", container_name=config.container, **common
        )
    if config.kind == "fileshare":
        return ml.AzureFileDatastoreArgs(
            datastore_type="AzureFile", file_share_name=config.container, **common
        )
    return ml.AzureDataLakeGen2DatastoreArgs(
        datastore_type="AzureDataLakeGen2", filesystem=config.container, **common
    )


class Datastore(pulumi.ComponentResource):
    """A container, share or filesystem and its `machinelearningservices.Datastore`.

    Raises ValueError before declaring anything when a derived storage account name is invalid.
    """

    def __init__(
        self,
        name: str,
        config: DatastoreConfig,
        *,
        workspace: WorkspaceRef,
        scope: tuple[str, ...],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        own_account = (
            naming.storage_account_name("dl", *scope, config.name) if config.kind == "adlsgen2" else None
        )
        super().__init__("trainstack:datastore:Datastore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        group = workspace.resource_group_name
        account_name: pulumi.Input[str] = workspace.storage_account_name
        private = workspace.private_network

        if own_account is not None:
            account = storage.StorageAccount(
                f"{name}-account",
                account_name=own_account,
                resource_group_name=group,
                location=workspace.location,
                kind="StorageV2",
                sku=storage.SkuArgs(name="Standard_LRS"),
                is_hns_enabled=True,
                enable_https_traffic_only=True,
                minimum_tls_version="TLS1_2",
                allow_blob_public_access=False,
                # The workspace's network rule: a private workspace's data is private too.
                **account_network(private is not None),
                allow_shared_key_access=config.auth != "identity",
                default_to_o_auth_authentication=config.auth == "identity",
                tags=workspace.tags,
                opts=pulumi.ResourceOptions.merge(
                    child, pulumi.ResourceOptions(replace_on_changes=["kind", "isHnsEnabled"])
                ),
            )
            account_name = account.name
            if private is not None:
                for group in ("dfs", "blob"):
                    private.connect(f"{name}-account", target_id=account.id, group=group, parent=self)

        if config.kind == "fileshare":
            store: pulumi.Resource = storage.FileShare(
                f"{name}-share",
                share_name=config.container,
                account_name=account_name,
                resource_group_name=group,
                opts=child,
            )
        else:
            store = storage.BlobContainer(
                f"{name}-container",
                container_name=config.container,
                account_name=account_name,
                resource_group_name=group,
                public_access=storage.PublicAccess.NONE,
                opts=child,
            )

        self.datastore = ml.Datastore(
            f"{name}-datastore",
            name=config.name,
            resource_group_name=group,
            workspace_name=workspace.workspace_name,
            properties=datastore_properties(config, account_name),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[store]),
        )
        self.register_outputs({"datastoreId": self.datastore.id})
