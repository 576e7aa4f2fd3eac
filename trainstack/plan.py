"""The offline plan: run the Pulumi program (`__main__.py`) in-process under Pulumi's mocks
with a stack's config, and record every resource it declares, as `pulumi preview` would list
them. No Azure credentials, no Pulumi CLI, no network.

    plan = record_stack("dev", project_dir=".")
    for r in plan.resources: r.type, r.name, r.parent, r.inputs

Inputs are recorded as the provider would receive them (camelCase); secrets are shown as
`[secret]` and are never decrypted (the stack file's ciphertext is replaced by a placeholder).
The mocks answer each resource with Azure-shaped ids (`/subscriptions/.../providers/...`) so
that references between resources read like the real ones. One process can record many
stacks one after the other; recording is not thread-safe (Pulumi's runtime is global).
"""

from __future__ import annotations

import runpy
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime
from pulumi.runtime import mocks, rpc, settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from trainstack.stack import LoadedStack, load_stack, runtime_config

PROJECT = "trainstack"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
TENANT = "11111111-1111-1111-1111-111111111111"
STACK_TYPE = "pulumi:pulumi:Stack"

# Where each type's Azure resource id points: `{key}` is an input; `{rg}` the resource group.
_ARM = "/subscriptions/" + SUBSCRIPTION + "/resourceGroups/{resourceGroupName}/providers/"
_ML = _ARM + "Microsoft.MachineLearningServices/workspaces/{workspaceName}/"
_ACCOUNT = _ARM + "Microsoft.Storage/storageAccounts/{accountName}"
_ID_TEMPLATES: dict[str, tuple[str, str]] = {
    # type token: (id template, the input that is the resource's Azure name)
    "azure-native:resources:ResourceGroup": (
        "/subscriptions/" + SUBSCRIPTION + "/resourceGroups/{resourceGroupName}",
        "resourceGroupName",
    ),
    "azure-native:storage:StorageAccount": (_ACCOUNT, "accountName"),
    "azure-native:storage:BlobContainer": (
        _ACCOUNT + "/blobServices/default/containers/{containerName}",
        "containerName",
    ),
    "azure-native:storage:FileShare": (_ACCOUNT + "/fileServices/default/shares/{shareName}", "shareName"),
    "azure-native:storage:Blob": (
        _ACCOUNT + "/blobServices/default/containers/{containerName}/blobs/{blobName}",
        "blobName",
    ),
    "azure-native:keyvault:Vault": (_ARM + "Microsoft.KeyVault/vaults/{vaultName}", "vaultName"),
    "azure-native:operationalinsights:Workspace": (
        _ARM + "Microsoft.OperationalInsights/workspaces/{workspaceName}",
        "workspaceName",
    ),
    "azure-native:applicationinsights:Component": (
        _ARM + "Microsoft.Insights/components/{resourceName}",
        "resourceName",
    ),
    "azure-native:containerregistry:Registry": (
        _ARM + "Microsoft.ContainerRegistry/registries/{registryName}",
        "registryName",
    ),
    "azure-native:machinelearningservices:Workspace": (
        _ARM + "Microsoft.MachineLearningServices/workspaces/{workspaceName}",
        "workspaceName",
    ),
    "azure-native:machinelearningservices:Compute": (_ML + "computes/{computeName}", "computeName"),
    "azure-native:machinelearningservices:Datastore": (_ML + "datastores/{name}", "name"),
    "azure-native:machinelearningservices:EnvironmentVersion": (
        _ML + "environments/{name}/versions/{version}",
        "version",
    ),
    "azure-native:machinelearningservices:CodeVersion": (_ML + "codes/{name}/versions/{version}", "version"),
    "azure-native:machinelearningservices:Job": (_ML + "jobs/{id}", "id"),
    "azure-native:managedidentity:UserAssignedIdentity": (
        _ARM + "Microsoft.ManagedIdentity/userAssignedIdentities/{resourceName}",
        "resourceName",
    ),
    "azure-native:compute:Gallery": (_ARM + "Microsoft.Compute/galleries/{galleryName}", "galleryName"),
    "azure-native:compute:GalleryImage": (
        _ARM + "Microsoft.Compute/galleries/{galleryName}/images/{galleryImageName}",
        "galleryImageName",
    ),
    "azure-native:compute:VirtualMachineScaleSet": (
        _ARM + "Microsoft.Compute/virtualMachineScaleSets/{vmScaleSetName}",
        "vmScaleSetName",
    ),
    "azure-native:virtualmachineimages:VirtualMachineImageTemplate": (
        _ARM + "Microsoft.VirtualMachineImages/imageTemplates/{imageTemplateName}",
        "imageTemplateName",
    ),
    "azure-native:monitor:AutoscaleSetting": (
        _ARM + "Microsoft.Insights/autoscalesettings/{autoscaleSettingName}",
        "autoscaleSettingName",
    ),
    "azure-native:storage:Queue": (_ACCOUNT + "/queueServices/default/queues/{queueName}", "queueName"),
    "azure-native:network:PrivateEndpoint": (
        _ARM + "Microsoft.Network/privateEndpoints/{privateEndpointName}",
        "privateEndpointName",
    ),
    "azure-native:privatedns:PrivateZone": (
        _ARM + "Microsoft.Network/privateDnsZones/{privateZoneName}",
        "privateZoneName",
    ),
}
# Read-only outputs Azure adds that other resources consume (a managed identity's principal).
_IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"


@dataclass(frozen=True)
class RecordedResource:
    """One declared resource: type token, logical name, parent's logical name, inputs."""

    type: str
    name: str
    parent: str | None
    inputs: Mapping[str, Any]
    urn: str
    parent_urn: str | None
    custom: bool
    secret_inputs: tuple[str, ...] = ()  # top-level inputs Pulumi marked secret
    replace_on_changes: tuple[str, ...] = ()
    delete_before_replace: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "parent": self.parent, "inputs": dict(self.inputs)}


@dataclass(frozen=True)
class StackPlan:
    """Everything one stack declares: the stack resource first, each parent before its
    children, siblings sorted by type and name."""

    stack: str
    resources: tuple[RecordedResource, ...]

    def of_type(self, type_token: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_token]

    def children(self, urn: str | None) -> list[RecordedResource]:
        return [r for r in self.resources if r.parent_urn == urn]

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "resources": [r.to_json() for r in self.resources]}


def record_stack(
    stack_name: str, project_dir: str | Path = ".", *, stack: LoadedStack | None = None
) -> StackPlan:
    """Check `stacks/Pulumi.<stack_name>.yaml`, run `__main__.py` with it under mocks, record.

    Raises ConfigError when the stack file (or a job file it names) is invalid, and whatever
    the program raises when it refuses the config (ConfigError, ValueError).
    """
    project = Path(project_dir).resolve()
    loaded = stack or load_stack(stack_name, project)
    config, secret_keys = runtime_config(loaded)
    main = project / "__main__.py"

    def program() -> None:
        runpy.run_path(str(main), run_name="__main__")

    return record_program(
        program, stack_name=stack_name, config=config, secret_keys=secret_keys, path=project
    )


def record_program(
    program: Callable[[], None],
    *,
    stack_name: str,
    config: Mapping[str, str] | None = None,
    secret_keys: list[str] | None = None,
    path: Path | None = None,
) -> StackPlan:
    """Run any Pulumi program function under mocks and record what it declares. Tests use
    this to run one component at a time. `path` is put first on `sys.path` meanwhile."""
    monitor = _RecordingMonitor(_AzureMocks())
    settings.reset_options(project=PROJECT, stack=stack_name, preview=False)
    pulumi.runtime.set_all_config(dict(config or {}), list(secret_keys or []))
    mocks.set_mocks(monitor.mocks, project=PROJECT, stack=stack_name, preview=False, monitor=monitor)
    added = str(path) if path is not None and str(path) not in sys.path else None
    if added:
        sys.path.insert(0, added)
    try:
        _sync_await(run_pulumi_func(program))
    finally:
        if added:
            sys.path.remove(added)
        pulumi.runtime.set_all_config({}, [])
        settings.reset_options()
    return StackPlan(stack_name, tuple(_tree_order(monitor.recorded())))


def _tree_order(resources: list[RecordedResource]) -> list[RecordedResource]:
    """Parents before children, siblings by type and name: registrations arrive in whatever
    order the runtime's tasks finish, and a plan must read the same on every run."""
    children: dict[str | None, list[RecordedResource]] = {}
    for r in resources:
        children.setdefault(r.parent_urn, []).append(r)
    out: list[RecordedResource] = []

    def visit(urn: str | None) -> None:
        for r in sorted(children.get(urn, []), key=lambda r: (r.type, r.name)):
            out.append(r)
            visit(r.urn)

    visit(None)
    return out


class _AzureMocks(pulumi.runtime.Mocks):
    """Answers like Azure would, enough for the program to run: ids and names."""

    def __init__(self) -> None:
        self.inputs: dict[tuple[str, str], dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        self.inputs[(args.typ, args.name)] = args.inputs
        template, name_key = _ID_TEMPLATES.get(args.typ, ("", "name"))
        values = {k: v for k, v in args.inputs.items() if isinstance(v, str | int)}
        try:
            resource_id = template.format(**values) if template else f"{args.name}-id"
        except KeyError:
            resource_id = f"{args.name}-id"
        state = {**args.inputs, "name": args.inputs.get(name_key, args.name)}
        if args.typ == _IDENTITY:
            fake = str(uuid.uuid5(uuid.NAMESPACE_URL, resource_id))
            state.update(principalId=fake, clientId=fake, tenantId=TENANT)
        identity = state.get("identity")
        if isinstance(identity, Mapping) and identity.get("type") == "SystemAssigned":
            fake = str(uuid.uuid5(uuid.NAMESPACE_URL, resource_id + "/identity"))
            state["identity"] = {**identity, "principalId": fake, "tenantId": TENANT}
        if isinstance(identity, Mapping) and isinstance(identity.get("userAssignedIdentities"), list):
            # A list of ids as input, a map of id -> details as output (see AZURE-NOTES).
            state["identity"] = {
                **identity,
                "userAssignedIdentities": {i: {} for i in identity["userAssignedIdentities"]},
            }
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        if args.token == "azure-native:authorization:getClientConfig":
            return {
                "clientId": "trainstack-plan",
                "objectId": "trainstack-plan",
                "subscriptionId": SUBSCRIPTION,
                "tenantId": TENANT,
            }, []
        return {}, []


class _RecordingMonitor(mocks.MockMonitor):
    """The SDK's mock monitor, also noting each registration's parent (which `Mocks` never sees)."""

    mocks: _AzureMocks

    def __init__(self, azure_mocks: _AzureMocks) -> None:
        super().__init__(azure_mocks)
        self.registrations: list[tuple[str, Any]] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]  # pulumi's is unannotated
        self.registrations.append((response.urn, request))
        return response

    def recorded(self) -> list[RecordedResource]:
        names = {urn: request.name for urn, request in self.registrations}
        out = []
        for urn, request in self.registrations:
            inputs = (
                {} if request.type == STACK_TYPE else self.mocks.inputs.get((request.type, request.name), {})
            )
            out.append(
                RecordedResource(
                    type=request.type,
                    name=request.name,
                    parent=names.get(request.parent) if request.parent else None,
                    inputs=_plain(inputs),
                    urn=urn,
                    parent_urn=request.parent or None,
                    custom=request.custom,
                    secret_inputs=tuple(sorted(k for k, v in inputs.items() if rpc.is_rpc_secret(v))),
                    replace_on_changes=tuple(request.replaceOnChanges),
                    delete_before_replace=request.deleteBeforeReplace,
                )
            )
        return out


def _plain(value: Any) -> Any:
    """Inputs as JSON values with keys sorted (stable snapshots).

    A secret anywhere inside an input makes Pulumi mark the whole input secret; it is
    unwrapped here so that the plan shows its structure. That exposes nothing: the plan only
    ever runs with the `[secret]` placeholder in place of each secret value.
    """
    if rpc.is_rpc_secret(value):
        return _plain(rpc.unwrap_rpc_secret(value))
    if isinstance(value, float) and value.is_integer():
        return int(value)  # protobuf sends every number as a double
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, pulumi.Asset | pulumi.Archive):
        path = getattr(value, "path", None)
        return {"asset": path and Path(path).name}
    return str(value)
