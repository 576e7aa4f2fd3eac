"""Rules for where data and secrets live: the storage account, the key vault, the
workspace's network exposure and how datastores authenticate.

A missing input is judged by what Azure does when the field is left out: HTTPS-only and
soft delete default to on, so only an explicit `false` breaks them; the minimum TLS version
and blob public access have had other defaults in older API versions, so they must be set.
"""

from __future__ import annotations

from collections.abc import Iterator

from policies.model import Policy, PolicyContext, Resource, Severity, Violation
from policies.tokens import KEY_VAULT, ML_DATASTORE, ML_WORKSPACE, STORAGE_ACCOUNT


def _storage_https_only(r: Resource, ctx: PolicyContext) -> Iterator[Violation]:
    if r.get("enableHttpsTrafficOnly") is False:
        yield Violation(r, "storage account accepts plain HTTP (enableHttpsTrafficOnly: false)")


def _storage_tls12(r: Resource, ctx: PolicyContext) -> Iterator[Violation]:
    tls = r.get("minimumTlsVersion")
    if tls is None:
        yield Violation(r, "minimum TLS version is not set; older clients could connect with TLS 1.0")
    elif tls not in ("TLS1_2", "TLS1_3"):
        yield Violation(r, f"minimum TLS version is {tls}")


def _storage_no_public_blobs(r: Resource, ctx: PolicyContext) -> Iterator[Violation]:
    if r.get("allowBlobPublicAccess") is not False:
        state = "allowed" if r.get("allowBlobPublicAccess") else "not set, so older API versions allow it"
        yield Violation(r, f"anonymous public read access to blobs is {state}")


def _vault_recoverable(r: Resource, ctx: PolicyContext) -> Iterator[Violation]:
    if not ctx.is_prod:
        return
    if r.get("properties.enablePurgeProtection") is not True:
        yield Violation(r, "purge protection is off: a deleted vault and its secrets can be purged at once")
    if r.get("properties.enableSoftDelete") is False:
        yield Violation(r, "soft delete is off: deleted secrets cannot be recovered")


def _workspace_private(r: Resource, ctx: PolicyContext) -> Iterator[Violation]:
    if ctx.is_prod and r.get("publicNetworkAccess") != "Disabled":
        state = r.get("publicNetworkAccess") or "not set (Azure's default: Enabled)"
        yield Violation(r, f"workspace is reachable from the public internet (publicNetworkAccess: {state})")


_SECRET_CREDENTIALS = ("AccountKey", "Sas", "ServicePrincipal", "Certificate")


def _datastore_identity(r: Resource, ctx: PolicyContext) -> Iterator[Violation]:
    kind = r.get("properties.credentials.credentialsType")
    if ctx.is_prod and kind in _SECRET_CREDENTIALS:
        yield Violation(r, f"datastore authenticates with a stored secret ({kind}), not an identity")


POLICIES: tuple[Policy, ...] = (
    Policy(
        "storage-https-only",
        "Storage accepts HTTPS only",
        Severity.MANDATORY,
        "set `enableHttpsTrafficOnly: true` on the storage account",
        frozenset({STORAGE_ACCOUNT}),
        check=_storage_https_only,
    ),
    Policy(
        "storage-tls12",
        "Storage requires TLS 1.2 or newer",
        Severity.MANDATORY,
        "set `minimumTlsVersion: TLS1_2` on the storage account",
        frozenset({STORAGE_ACCOUNT}),
        check=_storage_tls12,
    ),
    Policy(
        "storage-no-public-blob-access",
        "No anonymous access to blobs",
        Severity.MANDATORY,
        "set `allowBlobPublicAccess: false` on the storage account",
        frozenset({STORAGE_ACCOUNT}),
        check=_storage_no_public_blobs,
    ),
    Policy(
        "keyvault-recoverable",
        "Key vault has purge protection and soft delete in prod",
        Severity.MANDATORY,
        "set `properties.enablePurgeProtection: true` and leave soft delete on",
        frozenset({KEY_VAULT}),
        check=_vault_recoverable,
    ),
    Policy(
        "workspace-no-public-network",
        "Workspace is private in prod",
        Severity.MANDATORY,
        "set `publicNetworkAccess: Disabled` and reach the workspace through a private endpoint",
        frozenset({ML_WORKSPACE}),
        check=_workspace_private,
    ),
    Policy(
        "datastore-identity-access",
        "Datastores use identity access in prod",
        Severity.MANDATORY,
        "use `credentials: {credentialsType: None}` with the workspace identity, and grant it a data role",
        frozenset({ML_DATASTORE}),
        check=_datastore_identity,
    ),
)
