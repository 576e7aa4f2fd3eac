"""Contract: every recorded input of the resources both stacks declare is one that Azure's own
API models know, required properties are present, and enum values are valid."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.ai.ml._restclient.arm_ml_service import models as ml
from azure.mgmt.applicationinsights.v2020_02_02 import models as insights
from azure.mgmt.authorization.v2022_05_01_preview import models as authorization
from azure.mgmt.imagebuilder import models as imagebuilder
from azure.mgmt.keyvault import models as keyvault
from azure.mgmt.network import models as network
from azure.mgmt.privatedns import models as privatedns
from azure.mgmt.storage import models as storage

from tests.stacks.arm_contract import check
from trainstack.plan import StackPlan, record_stack
from trainstack.stack import stack_names

ROOT = Path(__file__).resolve().parents[2]

# type token -> (API model of the request body, inputs that are URL path parameters)
CONTRACTS: dict[str, tuple[type, set[str]]] = {
    "azure-native:machinelearningservices:Workspace": (ml.Workspace, {"resourceGroupName", "workspaceName"}),
    "azure-native:machinelearningservices:Compute": (
        ml.ComputeResource,
        {"resourceGroupName", "workspaceName", "computeName"},
    ),
    "azure-native:machinelearningservices:Datastore": (
        ml.Datastore,
        {"resourceGroupName", "workspaceName", "name"},
    ),
    "azure-native:machinelearningservices:Job": (ml.JobBase, {"resourceGroupName", "workspaceName", "id"}),
    "azure-native:machinelearningservices:EnvironmentVersion": (
        ml.EnvironmentVersion,
        {"resourceGroupName", "workspaceName", "name", "version"},
    ),
    "azure-native:machinelearningservices:CodeVersion": (
        ml.CodeVersion,
        {"resourceGroupName", "workspaceName", "name", "version"},
    ),
    "azure-native:storage:StorageAccount": (
        storage.StorageAccountCreateParameters,
        {"resourceGroupName", "accountName"},
    ),
    "azure-native:storage:BlobContainer": (
        storage.BlobContainer,
        {"resourceGroupName", "accountName", "containerName"},
    ),
    "azure-native:storage:FileShare": (storage.FileShare, {"resourceGroupName", "accountName", "shareName"}),
    "azure-native:keyvault:Vault": (
        keyvault.VaultCreateOrUpdateParameters,
        {"resourceGroupName", "vaultName"},
    ),
    "azure-native:applicationinsights:Component": (
        insights.ApplicationInsightsComponent,
        {"resourceGroupName", "resourceName"},
    ),
    "azure-native:storage:Queue": (storage.StorageQueue, {"resourceGroupName", "accountName", "queueName"}),
    "azure-native:network:PrivateEndpoint": (
        network.PrivateEndpoint,
        {"resourceGroupName", "privateEndpointName"},
    ),
    "azure-native:network:PrivateDnsZoneGroup": (
        network.PrivateDnsZoneGroup,
        {"resourceGroupName", "privateEndpointName", "privateDnsZoneGroupName"},
    ),
    "azure-native:privatedns:PrivateZone": (privatedns.PrivateZone, {"resourceGroupName", "privateZoneName"}),
    "azure-native:privatedns:VirtualNetworkLink": (
        privatedns.VirtualNetworkLink,
        {"resourceGroupName", "privateZoneName", "virtualNetworkLinkName"},
    ),
    # A private stack's image build joins its VNet (vmProfile.vnetConfig) with a custom role.
    "azure-native:virtualmachineimages:VirtualMachineImageTemplate": (
        imagebuilder.ImageTemplate,
        {"resourceGroupName", "imageTemplateName"},
    ),
    "azure-native:authorization:RoleDefinition": (
        authorization.RoleDefinition,
        {"scope", "roleDefinitionId"},
    ),
}
# Types only some stacks declare: file shares and code where a stack has them, the job store's
# queues with a pool, private endpoints and their DNS with `publicNetworkAccess: false`.
SOMETIMES = (
    "CodeVersion",
    "FileShare",
    "Queue",
    "PrivateEndpoint",
    "PrivateDnsZoneGroup",
    "PrivateZone",
    "VirtualNetworkLink",
    "VirtualMachineImageTemplate",
    "RoleDefinition",
)
# Each of those is declared by at least one stack (so every contract is exercised).


@pytest.fixture(scope="module", params=stack_names(ROOT))
def plan(request: pytest.FixtureRequest) -> StackPlan:
    return record_stack(request.param, ROOT)


@pytest.mark.parametrize("type_token", sorted(CONTRACTS))
def test_inputs_match_the_azure_api(plan: StackPlan, type_token: str) -> None:
    model, path_params = CONTRACTS[type_token]
    resources = plan.of_type(type_token)
    if not resources and type_token.rsplit(":", 1)[1] in SOMETIMES:
        pytest.skip(f"{plan.stack} declares no {type_token}")
    assert resources, f"{plan.stack} declares no {type_token}"
    for resource in resources:
        body = {k: v for k, v in resource.inputs.items() if k not in path_params}
        assert check(body, model) == [], resource.name


@pytest.mark.parametrize("type_token", sorted(t for t in CONTRACTS if t.rsplit(":", 1)[1] in SOMETIMES))
def test_every_sometimes_declared_type_is_declared_by_a_stack(type_token: str) -> None:
    assert any(record_stack(s, ROOT).of_type(type_token) for s in stack_names(ROOT)), type_token


def test_the_checker_catches_what_the_api_refuses() -> None:
    good = {
        "location": "westeurope",
        "properties": {
            "computeType": "AmlCompute",
            "properties": {"vmSize": "Standard_NC24ads_A100_v4", "scaleSettings": {"maxNodeCount": 2}},
        },
    }
    assert check(good, ml.ComputeResource) == []
    bad = {
        "location": "westeurope",
        "properties": {
            "computeType": "AmlCompute",
            "properties": {
                "vmSize": "Standard_NC24ads_A100_v4",
                "vmPriority": "Spot",
                "maxNodes": 2,
                "scaleSettings": {"minNodeCount": 0},
                "currentNodeCount": 1,
            },
        },
    }
    problems = check(bad, ml.ComputeResource)
    assert any("maxNodes: not a property of AmlComputeProperties" in p for p in problems)
    assert any("maxNodeCount: required" in p for p in problems)
    assert any("'Spot' is not one of" in p for p in problems)
    assert any("currentNodeCount: read-only" in p for p in problems)
