"""Rules for who can reach the stack's data: storage and key vault network access, shared-key
access to storage, and the scope and role of what an identity is granted.

A private data plane refuses public traffic twice: `publicNetworkAccess: Disabled` and a network
rule set that denies by default (Azure applies the rule set when public access is enabled, so
a stack that says only one of them is one setting away from public). Shared keys bypass every
identity and role: an account that identities sign in to must not also take its key, unless
the account says why (`shared-key-use: deployment-uploads`, the deployment's own uploads,
which Pulumi signs with the key). A role assignment is judged by its role and scope alone: a
managed identity (a node, a cluster, the image builder) never needs Owner, Contributor or User
Access Administrator on a subscription, group or storage account, nor a storage data role on
a whole account: container and queue scope say what it may touch.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from policies.compute import public_ip_violations
from policies.model import Policy, PolicyContext, Resource, Severity, Violation
from policies.tokens import KEY_VAULT, ML_COMPUTE, ROLE_ASSIGNMENT, SCALE_SET, STORAGE_ACCOUNT

SHARED_KEY_TAG = "shared-key-use"
SHARED_KEY_REASONS = frozenset({"deployment-uploads"})

# Built-in role definition ids.
_BROAD_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
}
_DATA_ROLES = {
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": "Storage Blob Data Reader",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "19e7f393-937e-4f77-808e-94535e297925": "Storage Queue Data Reader",
    "8a0f0c08-91a1-4084-bc3d-661d67233fed": "Storage Queue Data Message Processor",
    "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a": "Storage Queue Data Message Sender",
    "0c867c2a-1d8c-454a-a3db-ab2ea1bdc8bb": "Storage File Data SMB Share Contributor",
    "69566ab7-960f-475b-8e7c-b3118f30c6bd": "Storage File Data Privileged Contributor",
}
# Scopes from a subscription down to one storage account (and no further).
_ACCOUNT_OR_WIDER = re.compile(
    r"(?i)^/subscriptions/[^/]+(/resourceGroups/[^/]+(/providers/Microsoft\.Storage/storageAccounts/[^/]+)?)?/?$"
)
_GROUP_OR_WIDER = re.compile(r"(?i)^/subscriptions/[^/]+(/resourceGroups/[^/]+)?/?$")


def _refuses_public(r: Resource, what: str, access: str, rules: str) -> Iterator[Violation]:
    """`r` (a `what`) with public access at input `access` and a default action at `rules`."""
    state = r.get(access)
    if state != "Disabled":
        shown = state or "not set (Azure's default: Enabled)"
        yield Violation(r, f"{what} is reachable from the public internet (publicNetworkAccess: {shown})")
    elif r.get(rules) != "Deny":
        yield Violation(r, f"{what}'s network rules do not deny by default ({rules})")


def _storage_private(r: Resource, ctx: PolicyContext) -> Iterator[Violation]:
    if ctx.is_prod:
        yield from _refuses_public(
            r, "storage account", "publicNetworkAccess", "networkRuleSet.defaultAction"
        )


def _vault_private(r: Resource, ctx: PolicyContext) -> Iterator[Violation]:
    if ctx.is_prod:
        yield from _refuses_public(
            r, "key vault", "properties.publicNetworkAccess", "properties.networkAcls.defaultAction"
        )


def _no_shared_key(r: Resource, ctx: PolicyContext) -> Iterator[Violation]:
    if not ctx.is_prod or r.get("allowSharedKeyAccess") is False:
        return
    tags = r.get("tags") or {}
    if isinstance(tags, dict) and tags.get(SHARED_KEY_TAG) in SHARED_KEY_REASONS:
        return
    state = "true" if r.get("allowSharedKeyAccess") else "not set (Azure's default: true)"
    yield Violation(
        r,
        "storage account accepts its account key, bypassing identities and roles "
        f"(allowSharedKeyAccess: {state})",
    )


def _role_id(r: Resource) -> str:
    return str(r.get("roleDefinitionId") or "").rstrip("/").rsplit("/", 1)[-1].lower()


def _least_privilege(r: Resource, ctx: PolicyContext) -> Iterator[Violation]:
    role, scope = _role_id(r), str(r.get("scope") or "")
    if role in _BROAD_ROLES and _ACCOUNT_OR_WIDER.match(scope):
        where = (
            "a storage account" if not _GROUP_OR_WIDER.match(scope) else "a subscription or resource group"
        )
        yield Violation(
            r,
            f"an identity holds {_BROAD_ROLES[role]} on {where} ({scope}): "
            "it can change or read everything there",
            "grant a data role at container or queue scope, or a narrow role on the one resource it manages",
        )
    elif role in _DATA_ROLES and _ACCOUNT_OR_WIDER.match(scope):
        yield Violation(
            r,
            f"an identity holds {_DATA_ROLES[role]} on the whole account ({scope}): every container and "
            "queue there, other pools' and Azure ML's included",
        )


def _public_ip_outside_prod(r: Resource, ctx: PolicyContext) -> Iterator[Violation]:
    if not ctx.is_prod:
        yield from public_ip_violations(r)


POLICIES: tuple[Policy, ...] = (
    Policy(
        "storage-private-network",
        "Storage refuses public network access in prod",
        Severity.MANDATORY,
        "set `publicNetworkAccess: Disabled` with a deny-by-default network rule set, and reach the "
        "account through a private endpoint (`workspace.publicNetworkAccess: false`)",
        frozenset({STORAGE_ACCOUNT}),
        check=_storage_private,
    ),
    Policy(
        "keyvault-private-network",
        "Key vault refuses public network access in prod",
        Severity.MANDATORY,
        "set `properties.publicNetworkAccess: Disabled` with deny-by-default network ACLs, and reach "
        "the vault through a private endpoint",
        frozenset({KEY_VAULT}),
        check=_vault_private,
    ),
    Policy(
        "storage-no-shared-key",
        "Storage takes identities, not its account key, in prod",
        Severity.MANDATORY,
        "set `allowSharedKeyAccess: false` and use identity-based datastores",
        frozenset({STORAGE_ACCOUNT}),
        check=_no_shared_key,
    ),
    Policy(
        "identity-least-privilege",
        "No Owner, Contributor or account-wide data role for an identity",
        Severity.MANDATORY,
        "grant data roles at container or queue scope (`.../containers/<name>`, `.../queues/<name>`)",
        frozenset({ROLE_ASSIGNMENT}),
        check=_least_privilege,
    ),
    Policy(
        "compute-public-ip-outside-prod",
        "Nodes without public IPs outside prod too",
        Severity.ADVISORY,
        "set `nodePublicIp: false` and put the cluster on a subnet with outbound access",
        frozenset({ML_COMPUTE, SCALE_SET}),
        check=_public_ip_outside_prod,
    ),
)
