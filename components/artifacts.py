"""`DeployArtifacts`: the storage account for what the deployment uploads and nothing else
writes: the image builder's files (the agent wheel, install script and unit) and the code of
declared runs.

No node identity holds a role on this account, so a job on a pool cannot replace the wheel
that the next image bakes or the code of a declared run; Image Builder and the workspace only
read it (Storage Blob Data Reader on their container). Pulumi uploads these blobs with the
account key (`storage.Blob` signs with it), so shared-key access stays on here, and the
account says why in its `shared-key-use` tag, which the `storage-shared-key-access` policy
reads. With `publicNetworkAccess: false` it is private like the rest of the stack's data.
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import storage

from components import naming
from components.private_network import account_network
from components.workspace import WorkspaceRef

# The tag that marks an account whose shared key is used on purpose, and the only reason allowed.
SHARED_KEY_TAG = "shared-key-use"
DEPLOYMENT_UPLOADS = "deployment-uploads"


class DeployArtifacts(pulumi.ComponentResource):
    """A storage account only the deployment writes (see the module docstring)."""

    def __init__(
        self,
        name: str,
        *,
        workspace: WorkspaceRef,
        scope: tuple[str, ...],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        account_name = naming.storage_account_name("art", *scope)
        super().__init__("trainstack:artifacts:DeployArtifacts", name, None, opts)
        private = workspace.private_network
        self.account = storage.StorageAccount(
            f"{name}-account",
            account_name=account_name,
            resource_group_name=workspace.resource_group_name,
            location=workspace.location,
            kind="StorageV2",
            sku=storage.SkuArgs(name="Standard_LRS"),
            enable_https_traffic_only=True,
            minimum_tls_version="TLS1_2",
            allow_blob_public_access=False,
            **account_network(private is not None),
            allow_shared_key_access=True,
            tags={**workspace.tags, SHARED_KEY_TAG: DEPLOYMENT_UPLOADS},
            opts=pulumi.ResourceOptions(parent=self),
        )
        if private is not None:
            private.connect(f"{name}-account", target_id=self.account.id, group="blob", parent=self)
        self.account_name: pulumi.Output[str] = self.account.name
        self.register_outputs({"accountName": self.account.name})
