"""Azure RBAC role assignments for managed identities: the built-in roles the pool and its
image builder need, and ARM ids built from plain names so that scopes read like Azure's.

Role assignment names must be GUIDs; they are derived (uuid5) from the scope's names, the
principal's logical name and the role, so the same stack always asks for the same
assignment and a second `pulumi up` never creates a duplicate.
"""

from __future__ import annotations

import uuid

import pulumi
from pulumi_azure_native import authorization

# Built-in role definition ids (the same in every Azure subscription).
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
STORAGE_BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
# Peek, receive and delete messages; and add them: what an agent does with its pool's queue.
STORAGE_QUEUE_DATA_MESSAGE_PROCESSOR = "8a0f0c08-91a1-4084-bc3d-661d67233fed"
STORAGE_QUEUE_DATA_MESSAGE_SENDER = "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a"
# Only `generateUserDelegationKey` (account scope is the only one Azure accepts for it), no
# data: a user delegation SAS grants at most what its signer's data roles allow.
STORAGE_BLOB_DELEGATOR = "db58b8e5-c6ad-4a2a-8342-4190687cbf4a"
STORAGE_QUEUE_DATA_READER = "19e7f393-937e-4f77-808e-94535e297925"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
# Create runs and log metrics, params and artifacts to a workspace (its MLflow tracking server).
AZUREML_DATA_SCIENTIST = "f6c7c914-8db3-469d-8ca1-694a8f32e121"

_NAMESPACE = uuid.UUID("5f0c6f1e-4f7e-4d55-9d43-6b7f6c3e2a10")


def subscription_id() -> pulumi.Output[str]:
    """The subscription the stack deploys into (as the Azure CLI / provider sign-in sees it)."""
    return authorization.get_client_config_output().subscription_id


def _resource_id(
    resource_group: pulumi.Input[str], provider: str, name: pulumi.Input[str]
) -> pulumi.Output[str]:
    return pulumi.Output.concat(
        "/subscriptions/",
        subscription_id(),
        "/resourceGroups/",
        resource_group,
        f"/providers/{provider}/",
        name,
    )


def container_id(account_id: pulumi.Input[str], container: str) -> pulumi.Output[str]:
    """A blob container as a role assignment scope."""
    return pulumi.Output.concat(account_id, "/blobServices/default/containers/", container)


def queue_id(account_id: pulumi.Input[str], queue: str) -> pulumi.Output[str]:
    """A queue as a role assignment scope."""
    return pulumi.Output.concat(account_id, "/queueServices/default/queues/", queue)


def storage_account_id(resource_group: pulumi.Input[str], account: pulumi.Input[str]) -> pulumi.Output[str]:
    return _resource_id(resource_group, "Microsoft.Storage/storageAccounts", account)


def workspace_id(resource_group: pulumi.Input[str], workspace: pulumi.Input[str]) -> pulumi.Output[str]:
    return _resource_id(resource_group, "Microsoft.MachineLearningServices/workspaces", workspace)


def role_guid(key: tuple[str, ...], role: str) -> str:
    """The GUID that names `role` for the scope and principal in `key`: the same stack always
    asks for the same one (a role assignment's name, a custom role definition's id)."""
    return str(uuid.uuid5(_NAMESPACE, "/".join((*key, role))))


def assign_role(
    name: str,
    *,
    role: str,
    principal_id: pulumi.Input[str],
    scope: pulumi.Input[str],
    key: tuple[str, ...],
    description: str,
    opts: pulumi.ResourceOptions,
) -> authorization.RoleAssignment:
    """Grant `role` (a built-in or custom role's id) to a service principal (a managed
    identity) at `scope`.

    `key` (plain names that identify the scope and principal) fixes the assignment's GUID.
    `principal_type` is set because a new identity is not yet visible everywhere in Entra ID:
    without it, Azure may refuse the assignment for a principal it cannot find.
    """
    return authorization.RoleAssignment(
        name,
        role_assignment_name=role_guid(key, role),
        principal_id=principal_id,
        principal_type="ServicePrincipal",
        role_definition_id=pulumi.Output.concat(
            "/subscriptions/", subscription_id(), "/providers/Microsoft.Authorization/roleDefinitions/", role
        ),
        scope=scope,
        description=description,
        opts=opts,
    )
