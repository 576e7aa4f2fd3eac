"""Each component run alone under Pulumi's mocks (`record_program`): the resources it
declares and the properties that matter."""

from __future__ import annotations

from typing import Any

import pulumi

from components.cluster import GpuCluster
from components.config import ClusterConfig, DatastoreConfig, WorkspaceConfig
from components.datastore import Datastore
from components.workspace import MlWorkspace, WorkspaceRef
from trainstack.plan import StackPlan, record_program

REF = WorkspaceRef(
    resource_group_name="rg-test",
    workspace_name="mlw-test",
    location="westeurope",
    storage_account_name="sttest",
    tags={"stack": "test"},
)


def plan_of(build: Any) -> StackPlan:
    return record_program(build, stack_name="test")


def only(plan: StackPlan, type_token: str) -> dict[str, Any]:
    (resource,) = plan.of_type(type_token)
    return dict(resource.inputs)


def test_gpu_cluster_declares_a_low_priority_amlcompute_with_closed_ssh() -> None:
    config = ClusterConfig.model_validate(
        {
            "name": "a100",
            "vmSize": "Standard_NC48ads_A100_v4",
            "priority": "LowPriority",
            "maxNodes": 4,
            "idleSecondsBeforeScaleDown": 900,
            "ssh": {"adminUser": "azureuser", "publicKey": "ssh-ed25519 AAAA"},
        }
    )
    plan = plan_of(lambda: GpuCluster("a100", config, workspace=REF))
    (component,) = plan.of_type("trainstack:cluster:GpuCluster")
    (compute,) = plan.of_type("azure-native:machinelearningservices:Compute")
    assert compute.parent == "a100" and compute.parent_urn == component.urn
    inputs = compute.inputs
    assert inputs["computeName"] == "a100" and inputs["workspaceName"] == "mlw-test"
    assert inputs["identity"] == {"type": "SystemAssigned"}
    props = inputs["properties"]["properties"]
    assert props["vmSize"] == "Standard_NC48ads_A100_v4" and props["vmPriority"] == "LowPriority"
    assert props["scaleSettings"] == {
        "minNodeCount": 0,
        "maxNodeCount": 4,
        "nodeIdleTimeBeforeScaleDown": "PT900S",
    }
    assert props["remoteLoginPortPublicAccess"] == "Disabled" and props["enableNodePublicIp"] is True
    assert "subnet" not in props
    # The SSH key travels as a Pulumi secret.
    assert compute.secret_inputs == ("properties",)
    assert props["userAccountCredentials"]["adminUserName"] == "azureuser"
    assert "properties.properties.vmSize" in compute.replace_on_changes
    assert not any("scaleSettings" in p for p in compute.replace_on_changes)
    assert compute.delete_before_replace


def test_gpu_cluster_in_a_subnet_without_public_ips() -> None:
    subnet = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/aml"
    config = ClusterConfig.model_validate(
        {
            "name": "h100",
            "vmSize": "Standard_ND96isr_H100_v5",
            "maxNodes": 2,
            "subnetId": subnet,
            "nodePublicIp": False,
        }
    )
    compute = only(
        plan_of(lambda: GpuCluster("h100", config, workspace=REF)),
        "azure-native:machinelearningservices:Compute",
    )
    props = compute["properties"]["properties"]
    assert props["subnet"] == {"id": subnet} and props["enableNodePublicIp"] is False
    assert props["vmPriority"] == "Dedicated" and "userAccountCredentials" not in props


def workspace_plan(**changes: Any) -> StackPlan:
    config = WorkspaceConfig.model_validate({"name": "mlw-test", "resourceGroup": "rg-test", **changes})
    return plan_of(lambda: MlWorkspace("ws", config, location="westeurope", environment="dev", tags={}))


def test_workspace_declares_its_dependencies_with_safe_defaults() -> None:
    plan = workspace_plan()
    types = sorted(r.type for r in plan.resources if r.custom)
    assert types == [
        "azure-native:applicationinsights:Component",
        "azure-native:keyvault:Vault",
        "azure-native:machinelearningservices:Workspace",
        "azure-native:operationalinsights:Workspace",
        "azure-native:resources:ResourceGroup",
        "azure-native:storage:StorageAccount",
    ]
    account = only(plan, "azure-native:storage:StorageAccount")
    assert account["enableHttpsTrafficOnly"] is True and account["minimumTlsVersion"] == "TLS1_2"
    assert account["allowBlobPublicAccess"] is False
    assert 3 <= len(account["accountName"]) <= 24 and account["accountName"].isalnum()
    vault = only(plan, "azure-native:keyvault:Vault")["properties"]
    assert vault["enableRbacAuthorization"] is True
    workspace = only(plan, "azure-native:machinelearningservices:Workspace")
    assert workspace["identity"] == {"type": "SystemAssigned"}
    assert workspace["publicNetworkAccess"] == "Enabled"
    assert workspace["storageAccount"].endswith(f"/storageAccounts/{account['accountName']}")
    assert workspace["keyVault"].endswith("/vaults/" + only(plan, "azure-native:keyvault:Vault")["vaultName"])
    assert "/components/appi-mlw-test" in workspace["applicationInsights"]


SUBNET = (
    "/subscriptions/s/resourceGroups/rg-net/providers/Microsoft.Network/"
    "virtualNetworks/vnet/subnets/endpoints"
)


def test_private_workspace_closes_every_public_endpoint() -> None:
    plan = workspace_plan(
        publicNetworkAccess=False,
        containerRegistry=True,
        createResourceGroup=False,
        privateEndpointSubnetId=SUBNET,
    )
    assert plan.of_type("azure-native:resources:ResourceGroup") == []
    account = only(plan, "azure-native:storage:StorageAccount")
    assert account["publicNetworkAccess"] == "Disabled"
    assert account["networkRuleSet"]["defaultAction"] == "Deny"
    assert account["allowSharedKeyAccess"] is False
    assert only(plan, "azure-native:keyvault:Vault")["properties"]["publicNetworkAccess"] == "Disabled"
    registry = only(plan, "azure-native:containerregistry:Registry")
    assert registry["sku"] == {"name": "Premium"} and registry["adminUserEnabled"] is False
    workspace = only(plan, "azure-native:machinelearningservices:Workspace")
    assert workspace["publicNetworkAccess"] == "Disabled"
    assert workspace["managedNetwork"]["isolationMode"] == "AllowInternetOutbound"
    assert workspace["containerRegistry"].endswith("/registries/" + registry["registryName"])
    assert workspace["systemDatastoresAuthMode"] == "Identity"


def test_private_workspace_reaches_each_data_plane_through_a_private_endpoint_and_its_zone() -> None:
    plan = workspace_plan(publicNetworkAccess=False, containerRegistry=True, privateEndpointSubnetId=SUBNET)
    endpoints = plan.of_type("azure-native:network:PrivateEndpoint")
    by_group = {
        tuple(e.inputs["privateLinkServiceConnections"][0]["groupIds"]): e.inputs[
            "privateLinkServiceConnections"
        ][0]["privateLinkServiceId"]
        for e in endpoints
    }
    assert sorted(g for (g,) in by_group) == ["amlworkspace", "blob", "file", "queue", "registry", "vault"]
    assert by_group[("blob",)].endswith(
        "/storageAccounts/" + only(plan, "azure-native:storage:StorageAccount")["accountName"]
    )
    assert by_group[("vault",)].endswith("/vaults/" + only(plan, "azure-native:keyvault:Vault")["vaultName"])
    assert all(e.inputs["subnet"]["id"] == SUBNET for e in endpoints)
    zones = {z.inputs["privateZoneName"] for z in plan.of_type("azure-native:privatedns:PrivateZone")}
    assert zones == {
        "privatelink.blob.core.windows.net",
        "privatelink.queue.core.windows.net",
        "privatelink.file.core.windows.net",
        "privatelink.vaultcore.azure.net",
        "privatelink.azurecr.io",
        "privatelink.api.azureml.ms",
        "privatelink.notebooks.azure.net",
    }
    links = plan.of_type("azure-native:privatedns:VirtualNetworkLink")
    assert len(links) == len(zones)
    assert {link.inputs["virtualNetwork"]["id"] for link in links} == {SUBNET.rsplit("/subnets/", 1)[0]}
    assert all(link.inputs["registrationEnabled"] is False for link in links)
    groups = {
        g.inputs["privateEndpointName"]: g.inputs
        for g in plan.of_type("azure-native:network:PrivateDnsZoneGroup")
    }
    assert set(groups) == {e.inputs["privateEndpointName"] for e in endpoints}
    workspace_group = next(g for name, g in groups.items() if name.endswith("-amlworkspace"))
    assert sorted(
        c["privateDnsZoneId"].rsplit("/", 1)[1] for c in workspace_group["privateDnsZoneConfigs"]
    ) == [
        "privatelink.api.azureml.ms",
        "privatelink.notebooks.azure.net",
    ]


def test_a_private_workspace_needs_the_subnet_of_its_endpoints() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="privateEndpointSubnetId"):
        WorkspaceConfig.model_validate(
            {"name": "mlw-test", "resourceGroup": "rg-test", "publicNetworkAccess": False}
        )


def datastore_plan(**data: Any) -> StackPlan:
    config = DatastoreConfig.model_validate({"name": "data", "kind": "blob", "container": "data", **data})
    return plan_of(lambda: Datastore("data", config, workspace=REF, scope=("rg-test", "mlw-test")))


def test_blob_datastore_uses_the_workspace_identity() -> None:
    plan = datastore_plan()
    container = only(plan, "azure-native:storage:BlobContainer")
    assert container["publicAccess"] == "None" and container["accountName"] == "sttest"
    store = only(plan, "azure-native:machinelearningservices:Datastore")
    props = store["properties"]
    assert props["datastoreType"] == "AzureBlob" and props["containerName"] == "data"
    assert props["credentials"] == {"credentialsType": "None"}
    assert props["serviceDataAccessAuthIdentity"] == "WorkspaceSystemAssignedIdentity"


def test_file_share_with_an_account_key_sends_it_as_a_secret() -> None:
    plan = datastore_plan(kind="fileshare", auth="accountKey", accountKey="key-from-config")
    assert only(plan, "azure-native:storage:FileShare")["shareName"] == "data"
    (store,) = plan.of_type("azure-native:machinelearningservices:Datastore")
    assert store.secret_inputs == ("properties",)
    credentials = store.inputs["properties"]["credentials"]
    assert (
        credentials["credentialsType"] == "AccountKey"
        and credentials["secrets"]["secretsType"] == "AccountKey"
    )
    assert store.inputs["properties"]["serviceDataAccessAuthIdentity"] == "None"


def test_adls_gen2_datastore_gets_its_own_hierarchical_account() -> None:
    plan = datastore_plan(kind="adlsgen2", container="lake")
    account = only(plan, "azure-native:storage:StorageAccount")
    assert account["isHnsEnabled"] is True and account["accountName"].startswith("dl")
    props = only(plan, "azure-native:machinelearningservices:Datastore")["properties"]
    assert props["datastoreType"] == "AzureDataLakeGen2" and props["filesystem"] == "lake"
    assert props["accountName"] == account["accountName"]
    assert account["allowSharedKeyAccess"] is False and account["publicNetworkAccess"] == "Enabled"


def test_adls_account_of_a_private_workspace_is_private_with_its_endpoints() -> None:
    from components.private_network import PrivateNetwork

    config = DatastoreConfig.model_validate({"name": "lake", "kind": "adlsgen2", "container": "lake"})

    def build() -> None:
        private = PrivateNetwork(
            "net", subnet_id=SUBNET, resource_group="rg-test", location="westeurope", tags={}
        )
        ref = WorkspaceRef(**{**REF.__dict__, "private_network": private})
        Datastore("lake", config, workspace=ref, scope=("rg-test", "mlw-test"))

    plan = plan_of(build)
    account = only(plan, "azure-native:storage:StorageAccount")
    assert (
        account["publicNetworkAccess"] == "Disabled" and account["networkRuleSet"]["defaultAction"] == "Deny"
    )
    groups = sorted(
        e.inputs["privateLinkServiceConnections"][0]["groupIds"][0]
        for e in plan.of_type("azure-native:network:PrivateEndpoint")
    )
    assert groups == ["blob", "dfs"]
    assert {z.inputs["privateZoneName"] for z in plan.of_type("azure-native:privatedns:PrivateZone")} == {
        "privatelink.blob.core.windows.net",
        "privatelink.dfs.core.windows.net",
    }


def test_a_program_error_reaches_the_caller_and_the_next_recording_still_works() -> None:
    def broken() -> None:
        pulumi.Output.from_input(1).apply(lambda _: 1 / 0)

    try:
        plan_of(broken)
    except ZeroDivisionError:
        pass
    else:
        raise AssertionError("the program's error was swallowed")
    assert datastore_plan().of_type("azure-native:machinelearningservices:Datastore")
