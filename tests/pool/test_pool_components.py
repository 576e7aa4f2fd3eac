"""`AgentImage` and `GpuPool` under Pulumi's mocks, the pool stack's plan, the custom data the
scale set carries (read back by the agent's own loader), and review on the real resources."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from components import roles
from components.agent_image import AgentImage, AgentImageArgs, recipe_digest, template_name
from components.config import GpuPoolConfig, PoolImageConfig, StackConfig
from components.gpu_pool import GpuPool, agent_config
from jobrunner.node.config import parse_agent_config
from policies.capacity import capacities
from policies.model import Resource
from trainstack.plan import StackPlan, record_program, record_stack

ROOT = Path(__file__).resolve().parents[2]
SUBNET = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/gpu"
POOL = {
    "name": "h100",
    "vmSize": "Standard_ND96isr_H100_v5",
    "priority": "Spot",
    "maxPrice": 40.5,
    "maxNodes": 8,
    "subnetId": SUBNET,
    "nodeSetup": "mount -a",
    "datastores": ["training_data"],
    "ssh": {"adminUser": "azureuser", "publicKey": "ssh-ed25519 AAAA"},
}


def only(plan: StackPlan, type_token: str) -> dict[str, Any]:
    (resource,) = plan.of_type(type_token)
    return dict(resource.inputs)


@pytest.fixture(scope="module")
def pool_plan() -> StackPlan:
    config = GpuPoolConfig.model_validate(POOL)
    return record_program(
        lambda: GpuPool(
            "h100",
            config,
            image_id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/i",
            resource_group="rg-test",
            location="westeurope",
            storage_account_name="sttest",
            datastores={"training_data": "training-data"},
            scope=("rg-test", "mlw-test"),
            tags={"stack": "test"},
        ),
        stack_name="test",
    )


def test_gpu_pool_declares_a_spot_scale_set_without_public_ips(pool_plan: StackPlan) -> None:
    vmss = only(pool_plan, "azure-native:compute:VirtualMachineScaleSet")
    assert vmss["sku"] == {"name": "Standard_ND96isr_H100_v5", "tier": "Standard", "capacity": 0}
    assert vmss["overprovision"] is False and vmss["singlePlacementGroup"] is True  # InfiniBand
    assert vmss["tags"]["infiniband"] == "true"
    profile = vmss["virtualMachineProfile"]
    assert profile["priority"] == "Spot" and profile["evictionPolicy"] == "Delete"
    assert profile["billingProfile"] == {"maxPrice": 40.5}
    (nic,) = profile["networkProfile"]["networkInterfaceConfigurations"]
    assert nic["enableAcceleratedNetworking"] is True
    assert all("publicIPAddressConfiguration" not in ip for ip in nic["ipConfigurations"])
    assert nic["ipConfigurations"][0]["subnet"]["id"] == SUBNET
    assert profile["scheduledEventsProfile"]["terminateNotificationProfile"] == {
        "enable": True,
        "notBeforeTimeout": "PT5M",
    }
    assert profile["osProfile"]["linuxConfiguration"]["disablePasswordAuthentication"] is True
    identity = only(pool_plan, "azure-native:managedidentity:UserAssignedIdentity")
    assert vmss["identity"]["type"] == "UserAssigned"
    assert vmss["identity"]["userAssignedIdentities"][0].endswith("/" + identity["resourceName"])


def test_the_agents_identity_holds_data_roles_only_on_its_containers_and_queues(pool_plan: StackPlan) -> None:
    grants = pool_plan.of_type("azure-native:authorization:RoleAssignment")
    account = "/providers/Microsoft.Storage/storageAccounts/sttest"
    held = sorted(
        (g.inputs["scope"].split(account, 1)[1], g.inputs["roleDefinitionId"].rsplit("/", 1)[-1])
        for g in grants
        if account in g.inputs["scope"]  # the workspace's tracking role: tests/tracking
    )
    blob, processor, sender, delegator = (
        "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
        "8a0f0c08-91a1-4084-bc3d-661d67233fed",
        "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a",
        "db58b8e5-c6ad-4a2a-8342-4190687cbf4a",  # user delegation keys only, no data
    )
    assert held == [
        ("", delegator),
        ("/blobServices/default/containers/pools", blob),
        ("/blobServices/default/containers/runs", blob),
        ("/blobServices/default/containers/training-data", blob),
        ("/queueServices/default/queues/pool-h100", processor),
        ("/queueServices/default/queues/pool-h100", sender),
        ("/queueServices/default/queues/pool-h100-demand", processor),
        ("/queueServices/default/queues/pool-h100-demand", sender),
        ("/queueServices/default/queues/pool-h100-idle", processor),
        ("/queueServices/default/queues/pool-h100-idle", sender),
        ("/queueServices/default/queues/pool-h100-poison", sender),
    ]
    for grant in grants:
        assert grant.inputs["principalType"] == "ServicePrincipal" and grant.inputs["principalId"]
    assert len({g.inputs["roleAssignmentName"] for g in grants}) == len(grants)


def test_the_stack_declares_the_job_stores_containers_and_each_pools_queues() -> None:
    plan = record_stack("pool", ROOT)
    (store,) = plan.of_type("trainstack:job_store:JobStore")
    containers = {
        r.inputs["containerName"] for r in plan.children(store.urn) if r.type.endswith("BlobContainer")
    }
    queues = {r.inputs["queueName"] for r in plan.children(store.urn) if r.type.endswith(":Queue")}
    assert containers == {"runs", "pools"}
    assert queues == {
        "pool-a100-spot",
        "pool-a100-spot-poison",
        "pool-a100-spot-demand",
        "pool-a100-spot-idle",
    }
    grants = [g for g in plan.of_type("azure-native:authorization:RoleAssignment") if g.parent == "a100-spot"]
    data = [g for g in grants if "/Microsoft.Storage/" in g.inputs["scope"]]
    (delegator,) = [g for g in data if g.inputs["roleDefinitionId"].endswith(roles.STORAGE_BLOB_DELEGATOR)]
    # on the account (the only scope Azure takes for user delegation keys), and no data role
    assert "/" not in delegator.inputs["scope"].split("/storageAccounts/", 1)[1]
    data.remove(delegator)
    assert data and all(
        "/blobServices/" in g.inputs["scope"] or "/queueServices/" in g.inputs["scope"] for g in data
    )
    # the one grant outside the store: the workspace, whose MLflow server keeps the metrics
    (tracking,) = [g for g in grants if g not in data and g is not delegator]
    assert tracking.inputs["scope"].endswith(
        "/Microsoft.MachineLearningServices/workspaces/mlw-trainstack-pool"
    )


def test_autoscale_follows_the_pools_demand_in_nodes_within_the_node_range(pool_plan: StackPlan) -> None:
    setting = only(pool_plan, "azure-native:monitor:AutoscaleSetting")
    (profile,) = setting["profiles"]
    assert profile["capacity"] == {"minimum": "0", "maximum": "8", "default": "0"}
    rules = profile["rules"]
    out = [r for r in rules if r["scaleAction"]["direction"] == "Increase"]
    scale_in = [r for r in rules if r["scaleAction"]["direction"] == "Decrease"]
    queues = "/storageAccounts/sttest/services/queue/queues/"
    # out: steps of 1 and 4 nodes (16 is past the pool's 8), each when the demand reaches it
    assert [(r["metricTrigger"]["threshold"], r["scaleAction"]["value"]) for r in out] == [(1, "1"), (4, "4")]
    assert all(r["metricTrigger"]["metricResourceUri"].endswith(queues + "pool-h100-demand") for r in out)
    # in: only while the demand stayed zero and some node stood idle the whole window
    (no_demand,) = [r for r in scale_in if r["metricTrigger"]["metricResourceUri"].endswith("-demand")]
    (idle,) = [
        r for r in scale_in if r["metricTrigger"]["metricResourceUri"].endswith(queues + "pool-h100-idle")
    ]
    assert (
        no_demand["metricTrigger"]["operator"] == "LessThanOrEqual"
        and no_demand["metricTrigger"]["threshold"] == 0
    )
    assert idle["metricTrigger"]["timeAggregation"] == "Minimum" and idle["metricTrigger"]["threshold"] == 1
    assert all(
        r["metricTrigger"]["timeWindow"] == "PT10M" and r["scaleAction"]["value"] == "1" for r in scale_in
    )
    vmss = pool_plan.of_type("azure-native:compute:VirtualMachineScaleSet")[0]
    assert setting["targetResourceUri"].endswith("/virtualMachineScaleSets/h100")
    resources = [Resource.from_record(r.to_json()) for r in pool_plan.resources]
    (capacity,) = capacities(resources)
    assert (capacity.resource.name, capacity.min_nodes, capacity.max_nodes, capacity.evictable) == (
        vmss.name,
        0,
        8,
        True,
    )


def test_custom_data_is_the_config_the_agent_loads(pool_plan: StackPlan) -> None:
    vmss = only(pool_plan, "azure-native:compute:VirtualMachineScaleSet")
    raw = vmss["virtualMachineProfile"]["osProfile"]["customData"]
    loaded = parse_agent_config(base64.b64decode(raw), source="customData")
    identity = pool_plan.of_type("azure-native:managedidentity:UserAssignedIdentity")[0]
    config = GpuPoolConfig.model_validate(POOL)
    expected = agent_config(
        config,
        account="sttest",
        client_id=loaded.identity_client_id,
        datastores={"training_data": "training-data"},
        tracking_uri=loaded.tracking_uri,  # checked in tests/tracking/test_pool_tracking.py
    )
    assert loaded == expected and loaded.identity_client_id  # the identity's client id, filled by Azure
    assert (loaded.store, loaded.pool, loaded.max_nodes) == (
        "https://sttest.blob.core.windows.net",
        "h100",
        8,
    )
    assert loaded.node_setup == "mount -a" and loaded.datastores["training_data"].container == "training-data"
    assert identity.name == "h100-identity"


def test_regular_priority_has_no_eviction_or_price() -> None:
    config = GpuPoolConfig.model_validate({**POOL, "priority": "Regular", "maxPrice": None})
    plan = record_program(
        lambda: GpuPool(
            "reg", config, image_id="img", resource_group="rg", location="westeurope",
            storage_account_name="st1", datastores={}, scope=("rg", "w"), tags={},
        ),
        stack_name="test",
    )  # fmt: skip
    profile = only(plan, "azure-native:compute:VirtualMachineScaleSet")["virtualMachineProfile"]
    assert (
        profile["priority"] == "Regular"
        and "evictionPolicy" not in profile
        and "billingProfile" not in profile
    )


def image_plan(base: str = "microsoft-dsvm:ubuntu-hpc:2204") -> StackPlan:
    args = AgentImageArgs(
        image=PoolImageConfig(base_image=base),
        wheel=Path("dist/jobrunner-0.1.0-py3-none-any.whl"),
        location="westeurope",
        scope=("rg-test", "mlw-test"),
    )
    return record_program(
        lambda: AgentImage("gpu", args, resource_group="rg-test", storage_account_name="sttest", tags={}),
        stack_name="test",
    )


def test_agent_image_bakes_the_wheel_onto_the_hpc_image_and_distributes_to_the_gallery() -> None:
    plan = image_plan()
    template = only(plan, "azure-native:virtualmachineimages:VirtualMachineImageTemplate")
    assert template["source"] == {
        "type": "PlatformImage",
        "publisher": "microsoft-dsvm",
        "offer": "ubuntu-hpc",
        "sku": "2204",
        "version": "latest",
    }
    assert template["identity"]["type"] == "UserAssigned"
    steps = template["customize"]
    files = {s["destination"]: s for s in steps if s["type"] == "File"}
    assert set(files) == {
        "/tmp/jobrunner-0.1.0-py3-none-any.whl",
        "/tmp/install-agent.sh",
        "/tmp/jobrunner-agent.service",
        "/tmp/guard-metadata.sh",
    }
    assert all(s["sourceUri"].startswith("https://sttest.blob.core.windows.net/") for s in files.values())
    (shell,) = [s for s in steps if s["type"] == "Shell"]
    assert (
        "install-agent.sh /tmp/jobrunner-0.1.0-py3-none-any.whl /tmp/jobrunner-agent.service"
        in shell["inline"][0]
    )
    (dist,) = template["distribute"]
    image = only(plan, "azure-native:compute:GalleryImage")
    assert dist["type"] == "SharedImage" and dist["galleryImageId"].endswith(
        "/images/" + image["galleryImageName"]
    )
    assert image["hyperVGeneration"] == "V2" and image["osState"] == "Generalized"
    gallery = only(plan, "azure-native:compute:Gallery")
    assert "-" not in gallery["galleryName"]
    (recorded,) = plan.of_type("azure-native:virtualmachineimages:VirtualMachineImageTemplate")
    assert "*" in recorded.replace_on_changes
    assert len(plan.of_type("azure-native:authorization:RoleAssignment")) == 2
    assert all(
        len(s["sha256Checksum"]) == 64 for s in files.values() if not s["destination"].endswith(".whl")
    )


def test_every_file_the_image_bakes_carries_its_sha256(tmp_path: Path) -> None:
    import hashlib

    from components.agent_image import WHEEL_NOT_BUILT

    (wheel_step,) = [
        s
        for s in only(image_plan(), "azure-native:virtualmachineimages:VirtualMachineImageTemplate")[
            "customize"
        ]
        if s.get("destination", "").endswith(".whl")
    ]
    assert wheel_step["sha256Checksum"] == WHEEL_NOT_BUILT  # no dist/ here: such a plan cannot be deployed
    wheel = tmp_path / "jobrunner-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"a wheel's bytes")
    args = AgentImageArgs(image=PoolImageConfig(), wheel=wheel, location="westeurope", scope=("rg", "w"))
    plan = record_program(
        lambda: AgentImage("gpu", args, resource_group="rg-test", storage_account_name="sttest", tags={}),
        stack_name="test",
    )
    (step,) = [
        s
        for s in only(plan, "azure-native:virtualmachineimages:VirtualMachineImageTemplate")["customize"]
        if s.get("destination", "").endswith(".whl")
    ]
    assert step["sha256Checksum"] == hashlib.sha256(b"a wheel's bytes").hexdigest()


def test_the_image_builders_files_and_the_runs_code_live_where_no_node_holds_a_role() -> None:
    plan = record_stack("pool", ROOT)
    (artifacts,) = plan.of_type("trainstack:artifacts:DeployArtifacts")
    (account,) = [r for r in plan.children(artifacts.urn) if r.type.endswith(":StorageAccount")]
    name = account.inputs["accountName"]
    for blob in plan.of_type("azure-native:storage:Blob"):
        assert blob.inputs["accountName"] == name, blob.name
    node_grants = [
        g for g in plan.of_type("azure-native:authorization:RoleAssignment") if g.parent == "a100-spot"
    ]
    assert node_grants and not any(f"/storageAccounts/{name}" in g.inputs["scope"] for g in node_grants)


def test_the_template_name_changes_with_the_base_image_and_the_wheel() -> None:
    names = {
        only(image_plan(base), "azure-native:virtualmachineimages:VirtualMachineImageTemplate")[
            "imageTemplateName"
        ]
        for base in ("microsoft-dsvm:ubuntu-hpc:2204", "microsoft-dsvm:ubuntu-hpc:2204:22.04.2025")
    }
    assert len(names) == 2
    recipe = recipe_digest(PoolImageConfig(), "jobrunner-0.1.0-py3-none-any.whl")
    assert template_name("gpu", recipe, "md5-a") != template_name("gpu", recipe, "md5-b")
    assert template_name("gpu", recipe, "md5-a") == template_name("gpu", recipe, "md5-a")


def test_the_pool_stack_lists_what_a_gpu_pool_needs() -> None:
    plan = record_stack("pool", ROOT)
    types = [r.type for r in plan.resources]
    for needed in (
        "azure-native:compute:Gallery",
        "azure-native:compute:GalleryImage",
        "azure-native:virtualmachineimages:VirtualMachineImageTemplate",
        "azure-native:monitor:AutoscaleSetting",
        "azure-native:managedidentity:UserAssignedIdentity",
    ):
        assert needed in types
    assert types.count("azure-native:authorization:RoleAssignment") >= 2
    (vmss,) = plan.of_type("azure-native:compute:VirtualMachineScaleSet")
    assert vmss.inputs["sku"]["name"] == "Standard_NC24ads_A100_v4"
    assert vmss.inputs["virtualMachineProfile"]["priority"] == "Spot"
    custom = base64.b64decode(vmss.inputs["virtualMachineProfile"]["osProfile"]["customData"])
    loaded = parse_agent_config(custom, source="customData")
    (account,) = [
        r.inputs["accountName"]
        for r in plan.of_type("azure-native:storage:StorageAccount")
        if r.parent == "mlw-trainstack-pool"
    ]
    assert loaded.store == f"https://{account}.blob.core.windows.net" and loaded.pool == "a100-spot"
    assert loaded.datastores["training_data"].container == "training-data"


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"vmSize": "Standard_NC24ads_A100"}, "did you mean `Standard_NC24ads_A100_v4`?"),
        (
            {"priority": "Regular", "evictionPolicy": "Delete", "maxPrice": None},
            "evictionPolicy is only for Spot",
        ),
        ({"priority": "Low", "maxPrice": 3}, "maxPrice is only for Spot"),
        ({"maxPrice": 0}, "a positive USD price per hour, or -1"),
        ({"minNodes": 9}, "minNodes (9) is larger than maxNodes (8)"),
        ({"maxNodes": 101}, "one placement group of at most 100 nodes"),
        ({"name": "A100_pool"}, "invalid name 'A100_pool'"),
        ({"idleMinutesBeforeScaleIn": 2}, "greater than or equal to 5"),
        ({"subnetId": "snet-gpu"}, "not a subnet id"),
    ],
)
def test_pool_config_refuses_what_azure_would(change: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=None) as caught:
        GpuPoolConfig.model_validate({**POOL, **change})
    assert needle in str(caught.value)


def stack_with(pool: dict[str, Any]) -> dict[str, Any]:
    return {
        "environment": "dev",
        "workspace": {"name": "mlw-x", "resourceGroup": "rg-x"},
        "datastores": [
            {"name": "training_data", "kind": "blob", "container": "training-data"},
            {"name": "shared", "kind": "fileshare", "container": "shared"},
        ],
        "pools": [pool],
    }


def test_pool_datastores_must_be_declared_blob_datastores() -> None:
    assert StackConfig.model_validate(stack_with(POOL)).pools[0].datastores == ["training_data"]
    with pytest.raises(ValueError, match=r"pools\[0\].datastores\[0\]: no datastore named 'trainig_data'"):
        StackConfig.model_validate(stack_with({**POOL, "datastores": ["trainig_data"]}))
    with pytest.raises(ValueError, match="pool agents read blob containers only"):
        StackConfig.model_validate(stack_with({**POOL, "datastores": ["shared"]}))


def test_review_prices_the_pool_from_its_autoscale_range() -> None:
    from typer.testing import CliRunner

    from trainstack.cli import app

    result = CliRunner().invoke(app, ["review", "--stack", "pool", "--project-dir", str(ROOT)])
    assert result.exit_code == 0, result.output
    assert "| `a100-spot-vmss` | pool | Standard_NC24ads_A100_v4 | spot | 0–4 |" in result.stdout
    assert "Policies: passes" in result.stdout
